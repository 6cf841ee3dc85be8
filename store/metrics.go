package store

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the Store's Prometheus collector. Gauges are read from Raft at
// scrape time; histograms and counters are updated as things happen.
type metrics struct {
	s *Store

	submit    *prometheus.HistogramVec // by result
	fsmApply  prometheus.Histogram
	authFails atomic.Uint64

	quorum, stateIndex, raftState, term, commit, applied, lastContact, records, fileBytes, authDesc *prometheus.Desc
	leaderCommit, behind, canApply, applyErrors, restoring, memberContact                           *prometheus.Desc
}

func newMetrics(s *Store) *metrics {
	buckets := []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}
	return &metrics{
		s: s,
		submit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gslb", Subsystem: "store", Name: "apply_duration_seconds",
			Help:    "Time from Submit to the command being applied on the leader (forwarding included), by result.",
			Buckets: buckets,
		}, []string{"result"}),
		fsmApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "gslb", Subsystem: "store", Name: "fsm_batch_duration_seconds",
			Help:    "Time to apply one batch of committed entries to state.db (one fsync).",
			Buckets: buckets,
		}),
		quorum:        prometheus.NewDesc("gslb_cluster_quorum", "1 when this node is in contact with a leader that has a quorum and can apply what it commits, else 0.", nil, nil),
		stateIndex:    prometheus.NewDesc("gslb_state_index", "Raft index of the last command in the state this node serves.", nil, nil),
		raftState:     prometheus.NewDesc("gslb_store_raft_state", "Raft role of this node: 1 for the current role.", []string{"state"}, nil),
		term:          prometheus.NewDesc("gslb_store_raft_term", "Current Raft term.", nil, nil),
		commit:        prometheus.NewDesc("gslb_store_commit_index", "Raft commit index.", nil, nil),
		applied:       prometheus.NewDesc("gslb_store_applied_index", "Last Raft index this node's state machine has applied.", nil, nil),
		leaderCommit:  prometheus.NewDesc("gslb_store_leader_commit_index", "The leader's commit index as this node last heard it (its own on the leader).", nil, nil),
		behind:        prometheus.NewDesc("gslb_store_behind_entries", "Entries the leader has committed that this node has not applied.", nil, nil),
		canApply:      prometheus.NewDesc("gslb_store_can_apply", "1 when state.db and raft.db accept writes, 0 while writes fail (full or failing disk).", nil, nil),
		applyErrors:   prometheus.NewDesc("gslb_store_write_errors_total", "Failed writes to a database (state: the state machine, raft: the log).", []string{"db"}, nil),
		restoring:     prometheus.NewDesc("gslb_store_restoring", "1 until the state machine holds what the local snapshot and log held at start.", nil, nil),
		memberContact: prometheus.NewDesc("gslb_store_member_last_contact_seconds", "Seconds since this node last heard from a member (the leader knows every member; a follower only the leader).", []string{"member"}, nil),
		lastContact:   prometheus.NewDesc("gslb_store_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader).", nil, nil),
		records:       prometheus.NewDesc("gslb_store_fsm_records", "Records in the replicated state (verdicts, RTT summaries, overrides, zones, members).", nil, nil),
		fileBytes:     prometheus.NewDesc("gslb_store_bbolt_file_bytes", "Size of a bbolt file.", []string{"db"}, nil),
		authDesc:      prometheus.NewDesc("gslb_store_auth_failures_total", "Inbound connections refused for failing the cluster TLS handshake.", nil, nil),
	}
}

func (m *metrics) observeSubmit(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.submit.WithLabelValues(result).Observe(d.Seconds())
}

func (m *metrics) observeFSMApply(d time.Duration) { m.fsmApply.Observe(d.Seconds()) }

func (m *metrics) authFailed() { m.authFails.Add(1) }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.submit.Describe(ch)
	m.fsmApply.Describe(ch)
	for _, d := range []*prometheus.Desc{m.quorum, m.stateIndex, m.raftState, m.term, m.commit, m.applied, m.lastContact, m.records, m.fileBytes, m.authDesc,
		m.leaderCommit, m.behind, m.canApply, m.applyErrors, m.restoring, m.memberContact} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.submit.Collect(ch)
	m.fsmApply.Collect(ch)
	s := m.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	stats := s.Stats()
	gauge(m.quorum, bit(stats.Quorum))
	gauge(m.stateIndex, float64(stats.StateIndex))
	gauge(m.records, float64(stats.StateRecords))
	gauge(m.leaderCommit, float64(stats.LeaderCommitIndex))
	gauge(m.behind, float64(stats.Behind))
	gauge(m.canApply, bit(stats.CanApply))
	gauge(m.restoring, bit(stats.Restoring))
	ch <- prometheus.MustNewConstMetric(m.applyErrors, prometheus.CounterValue, float64(s.health.stateErrs.Load()), "state")
	ch <- prometheus.MustNewConstMetric(m.applyErrors, prometheus.CounterValue, float64(s.health.raftErrs.Load()), "raft")
	for _, mb := range stats.Members {
		if !mb.Self && !mb.LastContact.IsZero() {
			gauge(m.memberContact, time.Since(mb.LastContact).Seconds(), mb.ID)
		}
	}
	cur := s.raft.State()
	for _, rs := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if rs == cur {
			v = 1
		}
		gauge(m.raftState, v, rs.String())
	}
	gauge(m.term, float64(stats.Term))
	gauge(m.commit, float64(stats.CommitIndex))
	gauge(m.applied, float64(stats.AppliedIndex))
	lc := 0.0
	if !stats.LastContact.IsZero() {
		lc = time.Since(stats.LastContact).Seconds()
	}
	gauge(m.lastContact, lc)
	for _, db := range []string{"raft", "state"} {
		if fi, err := os.Stat(filepath.Join(s.cfg.DataDir, db+".db")); err == nil {
			gauge(m.fileBytes, float64(fi.Size()), db)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.authDesc, prometheus.CounterValue, float64(m.authFails.Load()))
}

// Collector returns the store's Prometheus collector; register it once.
func (s *Store) Collector() prometheus.Collector { return s.metrics }

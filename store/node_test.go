package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

func singleNode(t *testing.T, dir, clusterID string, bootstrap bool) (*store.Store, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.Config{
		NodeID:    "solo",
		DataDir:   dir,
		Listener:  ln,
		Secret:    storetest.Secret,
		ClusterID: clusterID,
		Logger:    storetest.Logger(),
		Tuning:    storetest.Tuning(),
	}
	if bootstrap {
		cfg.Peers = []store.Peer{{ID: "solo", Addr: ln.Addr().String(), Voter: true}}
	}
	return store.New(cfg)
}

func waitLeader(t *testing.T, s *store.Store) {
	t.Helper()
	storetest.WaitFor(t, "single node to lead", s.IsLeader)
}

// Issue 6 §7: a node started on a data directory of another cluster
// refuses to start.
func TestForeignDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := singleNode(t, dir, "prod-a", true)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, s)
	start := time.Now()
	s.Close()
	t.Logf("close took %v", time.Since(start))
	_, err = singleNode(t, dir, "prod-b", false)
	want := `belongs to cluster "prod-a", this node is configured for cluster "prod-b"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("start on foreign data dir = %v, want %q", err, want)
	}
	t.Logf("refused: %v", err)
	// The right cluster still opens it.
	s, err = singleNode(t, dir, "prod-a", false)
	if err != nil {
		t.Fatalf("reopen own data dir: %v", err)
	}
	s.Close()
}

// The per-probe results never reach the log: a ReportBatch, however many
// RTT summaries it carries, is one log entry, and it has no field for a
// probe sample (only transitions and summaries).
func TestReportBatchIsOneLogEntry(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	var s *store.Store
	// A leader change in the middle appends entries of its own; the
	// count is only meaningful within one term, so retry then.
	for attempt := 0; ; attempt++ {
		s = c.Nodes[c.WaitLeader()].Store
		term := s.Stats().Term
		var first, last uint64
		for i := range 10 {
			b := &store.ReportBatch{Prober: "us-east"}
			for j := range 50 {
				b.RTTs = append(b.RTTs, store.RTTSummary{Kind: store.RTTNetwork, Name: fmt.Sprintf("net-%d", j), EWMA: time.Duration(i+j) * time.Millisecond, At: t0.Add(time.Duration(attempt*10+i) * time.Second)})
			}
			idx, err := s.SubmitIndex(ctxT(t), b)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = idx
			}
			last = idx
		}
		if s.Stats().Term != term && attempt < 3 {
			continue
		}
		if got := last - first + 1; got != 10 {
			t.Fatalf("10 report batches took %d log entries", got)
		}
		break
	}
	if n := len(s.State().RTTs()); n != 50 {
		t.Fatalf("%d RTT summaries, want 50", n)
	}
}

func metricValue(t *testing.T, s *store.Store, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return value(m)
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// Issue 6 §9, §10: the metrics.
func TestMetrics(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	s := c.Nodes[leader].Store
	if err := s.Submit(ctxT(t), report("p", "k", true, t0)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
		want   string
	}{
		{"gslb_cluster_quorum", nil, func(v float64) bool { return v == 1 }, "1"},
		{"gslb_state_index", nil, func(v float64) bool { return v == float64(s.State().Index()) }, "State().Index()"},
		{"gslb_store_raft_state", map[string]string{"state": s.Stats().State}, func(v float64) bool { return v == 1 }, "1 for the current role"},
		{"gslb_store_raft_term", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"gslb_store_commit_index", nil, func(v float64) bool { return v >= float64(s.State().Index()) }, ">= state index"},
		{"gslb_store_apply_duration_seconds", map[string]string{"result": "ok"}, func(v float64) bool { return v >= 1 }, ">= 1 sample"},
		{"gslb_store_fsm_batch_duration_seconds", nil, func(v float64) bool { return v >= 1 }, ">= 1 sample"},
		{"gslb_store_fsm_records", nil, func(v float64) bool { return v == float64(s.State().Len()) }, "State().Len()"},
		{"gslb_store_bbolt_file_bytes", map[string]string{"db": "raft"}, func(v float64) bool { return v > 0 }, "> 0"},
		{"gslb_store_bbolt_file_bytes", map[string]string{"db": "state"}, func(v float64) bool { return v > 0 }, "> 0"},
		{"gslb_store_last_contact_seconds", nil, func(v float64) bool { return v == 0 }, "0 on the leader"},
	} {
		if v := metricValue(t, s, tc.name, tc.labels); !tc.check(v) {
			t.Errorf("%s%v = %v, want %s", tc.name, tc.labels, v, tc.want)
		}
	}
	// A node without quorum says so.
	f := follower(c, leader)
	c.Partition(f)
	fs := c.Nodes[f].Store
	storetest.WaitFor(t, "cut-off node to drop quorum", func() bool { return !fs.HasQuorum() })
	if v := metricValue(t, fs, "gslb_cluster_quorum", nil); v != 0 {
		t.Fatalf("gslb_cluster_quorum on a cut-off node = %v, want 0", v)
	}
}

// RF-06: in a single-node cluster an acknowledged write survives kill -9.
// The node runs in a child process (this test binary) that prints each
// acknowledged index; the parent kills it with SIGKILL mid-stream, reopens
// the data directory and finds every acknowledged write.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	if os.Getenv("GSLB_STORE_CHILD_DIR") != "" {
		t.Skip("child")
	}
	dir := filepath.Join(t.TempDir(), "solo")
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildNode$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GSLB_STORE_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked, _ = strconv.Atoi(n)
			if acked >= 40 {
				break
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if acked < 40 {
		t.Fatalf("child acknowledged only %d writes before exiting", acked)
	}
	s, err := singleNode(t, dir, "", false)
	if err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	defer s.Close()
	waitLeader(t, s)
	st := s.State()
	for i := 0; i <= acked; i++ {
		if _, ok := st.Verdict(fmt.Sprintf("k%d", i), "p"); !ok {
			t.Fatalf("acknowledged write k%d lost after kill -9 (acked up to k%d, state index %d)", i, acked, st.Index())
		}
	}
	t.Logf("killed after %d acknowledged writes; all present at index %d (%d verdicts)", acked+1, st.Index(), len(st.Transitions()))
}

// TestChildNode is the child process of TestAcknowledgedWritesSurviveKill9.
func TestChildNode(t *testing.T) {
	dir := os.Getenv("GSLB_STORE_CHILD_DIR")
	if dir == "" {
		t.Skip("only runs as the child of TestAcknowledgedWritesSurviveKill9")
	}
	s, err := singleNode(t, dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, s)
	for i := range 10000 {
		err := s.Submit(context.Background(), report("p", fmt.Sprintf("k%d", i), true, t0))
		if err != nil && !errors.Is(err, store.ErrClosed) {
			t.Fatal(err)
		}
		fmt.Printf("ACK %d\n", i)
	}
}

// ZL-12: a zone that does not load is refused before the Raft commit.
func TestCheckZoneBeforeCommit(t *testing.T) {
	c := storetest.NewCluster(t, 1, storetest.WithConfig(func(cfg *store.Config) {
		cfg.CheckZone = func(name string, content []byte) error {
			if !strings.Contains(string(content), "SOA") {
				return fmt.Errorf("%s: no SOA record", name)
			}
			return nil
		}
	}))
	s := c.Nodes[0].Store
	before := s.Stats().LastIndex
	err := s.Submit(ctxT(t), &store.ZoneUpdate{Name: "example.com.", Serial: 1, Content: []byte("www A 192.0.2.1")})
	if err == nil || err.Error() != "example.com.: no SOA record" {
		t.Fatalf("submit of a broken zone = %v", err)
	}
	if got := s.Stats().LastIndex; got != before {
		t.Fatalf("log grew from %d to %d for a refused zone", before, got)
	}
	if err := s.Submit(ctxT(t), &store.ZoneUpdate{Name: "example.com.", Serial: 1, Content: []byte("@ SOA ns h 1 1 1 1 1")}); err != nil {
		t.Fatal(err)
	}
}

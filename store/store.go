// Package store is the replicated cluster state: prober verdicts, RTT
// summaries, operator overrides, the zone set and the member list, agreed by
// Raft (hashicorp/raft) with the log, the stable store and the state machine
// in bbolt under the node's data directory.
//
// Readers never wait on Raft: State returns the last committed view with one
// atomic load, and Subscribe signals after each applied batch. Writers call
// Submit on any node; a follower forwards to the leader over the cluster's
// authenticated internal API. See DESIGN.md in this folder for the reasoning.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Sentinel errors that callers branch on.
var (
	// ErrNoQuorum: no leader is known, so nothing can be committed now.
	// The node keeps serving its last committed state.
	ErrNoQuorum = errors.New("no quorum: no cluster leader")
	// ErrNotLeader: the node asked is not (or no longer) the leader.
	ErrNotLeader = errors.New("not the cluster leader")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
)

// Store is one node's replica of the cluster state. Its methods may be
// called from any goroutine.
type Store struct {
	cfg    Config
	tun    Tuning
	log    *slog.Logger
	fsm    *fsm
	logs   *raftboltdb.BoltStore
	snaps  *raft.FileSnapshotStore
	mux    *mux
	trans  *watchedTransport
	health *diskHealth

	// restored is closed once the state machine has applied what the local
	// snapshot and log held at start (see WaitRestored); restoreTarget is
	// that index, 0 when nothing had to be restored.
	restored      chan struct{}
	restoreOnce   sync.Once
	restoreTarget uint64
	raft          *raft.Raft
	api           *apiServer
	metrics       *metrics

	contacts atomic.Pointer[leaderView] // on a follower, see pollContacts
	raftUp   chan struct{}              // closed once s.raft is set

	mu     sync.Mutex
	subs   []chan struct{}
	closed bool

	wg   sync.WaitGroup
	done chan struct{}
}

// New opens (or creates) the node's data directory, starts Raft and the
// internal API, and bootstraps the cluster when this node is listed in
// cfg.Peers and has no Raft state yet. It returns once the node is running;
// it does not wait for a leader.
func New(cfg Config) (_ *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{
		cfg:      cfg,
		tun:      cfg.Tuning.withDefaults(),
		log:      cfg.Logger.With("component", "store", "node", cfg.NodeID),
		done:     make(chan struct{}),
		restored: make(chan struct{}),
		raftUp:   make(chan struct{}),
	}
	s.health = newDiskHealth(s.log)
	s.health.onFailing = s.handOver
	s.metrics = newMetrics(s)
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	if cfg.Listener != nil {
		closers = append(closers, cfg.Listener.Close)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster.data_dir: %w", err)
	}
	if err := checkClusterID(cfg.DataDir, cfg.clusterID()); err != nil {
		return nil, err
	}

	// raft.db first: when it is damaged the node stops, and state.db is
	// left as it is.
	if s.logs, err = openLogs(cfg.DataDir); err != nil {
		return nil, err
	}
	closers = append(closers, s.logs.Close)
	stateRebuilt := false
	if s.fsm, stateRebuilt, err = openState(cfg.DataDir, s.log); err != nil {
		return nil, err
	}
	closers = append(closers, s.fsm.close)
	closers = append(closers, func() error { s.fsm.stopRetrying(); return nil })
	s.fsm.onApply = s.applied
	s.fsm.applyDur = s.metrics.observeFSMApply
	s.fsm.health = s.health

	hlog := newHCLogger(cfg.Logger.With("component", "raft", "node", cfg.NodeID), "raft")
	s.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("open snapshots in %s: %w", cfg.DataDir, err)
	}

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			return nil, fmt.Errorf("cluster.raft_addr: %w", err)
		}
		closers = append(closers, ln.Close)
	}
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	for _, p := range cfg.Peers {
		if p.ID == cfg.NodeID && p.Addr != adv {
			return nil, fmt.Errorf("cluster.peers: this node %q is listed at %s but advertises %s", p.ID, p.Addr, adv)
		}
	}
	auth, err := newClusterAuth(cfg.Secret, cfg.clusterID(), cfg.TLS)
	if err != nil {
		return nil, err
	}
	if s.mux, err = newMux(ln, adv, auth, cfg.Dial, s.metrics.authFailed); err != nil {
		return nil, err
	}
	closers = append(closers, s.mux.close)
	s.trans = newWatchedTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  streamLayer{s.mux.raft},
		MaxPool: 3,
		// One RPC in flight turns off hashicorp/raft's pipelined
		// replication. Its pipeline can deadlock when a follower refuses
		// an append (a full disk, a log gap): pipelineDecode returns, the
		// next send parks on the pipeline forever, the follower gets
		// heartbeats but no more entries, and Shutdown hangs
		// (hashicorp/raft#612; seen here in TestLeaderWithFullStateDBHandsOver
		// under load). Our write rate needs no pipelining.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hlog,
	}), s.done)
	closers = append(closers, func() error { close(s.done); return nil })

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = s.tun.HeartbeatTimeout
	rc.ElectionTimeout = s.tun.ElectionTimeout
	rc.LeaderLeaseTimeout = s.tun.LeaderLeaseTimeout
	rc.CommitTimeout = s.tun.CommitTimeout
	rc.SnapshotInterval = s.tun.SnapshotInterval
	rc.SnapshotThreshold = s.tun.SnapshotThreshold
	rc.TrailingLogs = s.tun.TrailingLogs
	rc.BatchApplyCh = true
	// The state machine is persistent: on start Raft only needs to restore a
	// snapshot when state.db is behind it (lost or replaced state.db).
	rc.NoSnapshotRestoreOnStart = true
	var snapIndex uint64
	if metas, err := s.snaps.List(); err == nil && len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	behind := snapIndex > s.fsm.current().index
	if behind {
		rc.NoSnapshotRestoreOnStart = false
	}
	s.startRestore(stateRebuilt || behind, snapIndex)
	// The recent log entries stay in memory: the leader reads the entry
	// before each AppendEntries it sends (every CommitTimeout per
	// follower, even idle), which otherwise is a bbolt read and a decode.
	logs, err := raft.NewLogCache(logCacheSize, watchedLogs{s.logs, s.health})
	if err != nil {
		return nil, err
	}
	if s.raft, err = raft.NewRaft(rc, s.fsm, logs, watchedStable{s.logs, s.health, s.done}, s.snaps, s.trans); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	closers = append(closers, func() error { return s.raft.Shutdown().Error() })
	close(s.raftUp)

	for _, p := range cfg.Peers {
		// Non-voters cannot bootstrap: they receive the configuration from
		// the leader, which contacts them because they are listed in it.
		if p.ID == cfg.NodeID && p.Voter {
			if err := s.Bootstrap(); err != nil {
				return nil, err
			}
			break
		}
	}
	s.api = newAPIServer(s)
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.api.serve(s.mux.api) }()
	go func() { defer s.wg.Done(); s.watchLeadership() }()
	go func() { defer s.wg.Done(); s.pollContacts() }()
	s.log.Info("store started", "addr", adv, "data_dir", cfg.DataDir, "index", s.fsm.current().index)
	return s, nil
}

// checkClusterID records want in dir/cluster-id, or refuses a directory
// that belongs to another cluster.
func checkClusterID(dir, want string) error {
	path := filepath.Join(dir, "cluster-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if got := strings.TrimSpace(string(b)); got != want {
			return fmt.Errorf("cluster.data_dir: %s belongs to cluster %q, this node is configured for cluster %q", dir, got, want)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cluster.data_dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		return fmt.Errorf("cluster.data_dir: %s has Raft state but no cluster-id file; refusing to guess its cluster", dir)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(want+"\n"), 0o600); err != nil {
		return fmt.Errorf("cluster.data_dir: %w", err)
	}
	if f, err := os.Open(tmp); err == nil {
		f.Sync()
		f.Close()
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cluster.data_dir: %w", err)
	}
	return nil
}

// Bootstrap starts a new cluster whose members are Config.Peers. It is a
// no-op on a node that already has Raft state. New calls it when this node
// is listed in Config.Peers.
func (s *Store) Bootstrap() error {
	var conf raft.Configuration
	self := false
	for _, p := range s.cfg.Peers {
		sv := raft.Nonvoter
		if p.Voter {
			sv = raft.Voter
		}
		self = self || p.ID == s.cfg.NodeID
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: sv, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	if !self {
		return fmt.Errorf("cluster.peers: this node %q is not listed; it cannot bootstrap", s.cfg.NodeID)
	}
	err := s.raft.BootstrapCluster(conf).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// Close stops the node: Raft, the API and the databases. It does not leave
// the cluster (see Leave). Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	s.fsm.stopRetrying()
	errs := []error{s.raft.Shutdown().Error()}
	s.api.close()
	errs = append(errs, s.trans.Close())
	s.mux.close()
	s.wg.Wait()
	errs = append(errs, s.logs.Close(), s.fsm.close())
	s.mu.Lock()
	for _, c := range s.subs {
		close(c)
	}
	s.subs = nil
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Addr returns the address other nodes reach this node at.
func (s *Store) Addr() string { return s.mux.advertise.String() }

// ID returns this node's ID.
func (s *Store) ID() string { return s.cfg.NodeID }

// State returns the last committed state. It never blocks.
func (s *Store) State() *State { return s.fsm.current() }

// Subscribe returns a channel that receives a (coalesced) signal after each
// applied batch and after a snapshot restore; read State then. The channel
// is closed by Close.
func (s *Store) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(c)
		return c
	}
	s.subs = append(s.subs, c)
	return c
}

// applied runs on Raft's FSM goroutine after a batch is published.
func (s *Store) applied(st *State) {
	s.mu.Lock()
	for _, c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// Submit commits cmd through the leader and returns once it is applied on
// the leader (so a following State on the leader includes it; followers
// see it within a heartbeat, see WaitIndex). It works on any node: a
// follower forwards to the leader. It returns ErrNoQuorum when no leader
// is known and none is elected within Tuning.LeaderWait, an error matching ErrRejected when the state refused the
// command, and the context's error when ctx ends first. A command whose
// Submit failed may still have been committed; every command type is safe
// to submit again.
func (s *Store) Submit(ctx context.Context, cmd Command) error {
	_, err := s.SubmitIndex(ctx, cmd)
	return err
}

// SubmitIndex is Submit that also returns the log index of the entry.
func (s *Store) SubmitIndex(ctx context.Context, cmd Command) (uint64, error) {
	data, err := Encode(cmd)
	if err != nil {
		return 0, err
	}
	if z, ok := cmd.(*ZoneUpdate); ok && z.Content != nil && s.cfg.CheckZone != nil {
		if err := s.cfg.CheckZone(z.Name, z.Content); err != nil {
			return 0, err
		}
	}
	return s.submit(ctx, data)
}

func (s *Store) submit(ctx context.Context, data []byte) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.tun.ApplyTimeout)
		defer cancel()
	}
	start := time.Now()
	idx, err := retry(ctx, s.tun.LeaderWait, s.done, func() (uint64, error) { return s.submitOnce(ctx, data) })
	s.metrics.observeSubmit(time.Since(start), err)
	return idx, err
}

// retry runs op until it succeeds or fails for good. A leader change
// (ErrNotLeader) is retried until ctx ends; having no leader (ErrNoQuorum)
// is retried for leaderWait, the time an ordinary election takes.
func retry(ctx context.Context, leaderWait time.Duration, done <-chan struct{}, op func() (uint64, error)) (uint64, error) {
	backoff := 5 * time.Millisecond
	var noLeaderSince time.Time
	for {
		idx, err := op()
		switch {
		case errors.Is(err, ErrNotLeader):
			noLeaderSince = time.Time{}
		case errors.Is(err, ErrNoQuorum):
			if noLeaderSince.IsZero() {
				noLeaderSince = time.Now()
			}
			if time.Since(noLeaderSince) >= leaderWait {
				return 0, err
			}
		default:
			return idx, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("submit: %w (%w)", ctx.Err(), err)
		case <-done:
			return 0, ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func (s *Store) submitOnce(ctx context.Context, data []byte) (uint64, error) {
	if s.raft.State() == raft.Leader {
		return s.applyLocal(ctx, data)
	}
	addr, _ := s.raft.LeaderWithID()
	if addr == "" {
		return 0, ErrNoQuorum
	}
	return s.api.forwardApply(ctx, string(addr), data)
}

// applyLocal proposes data on this node, which believes it is the leader.
func (s *Store) applyLocal(ctx context.Context, data []byte) (uint64, error) {
	select {
	case <-s.done:
		return 0, ErrClosed
	default:
	}
	timeout := s.tun.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := s.raft.Apply(data, timeout)
	if err := s.wait(ctx, f, "submit"); err != nil {
		return 0, err
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return f.Index(), err
	}
	return f.Index(), nil
}

func raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("submit: %w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// ConsistentState returns a State that includes every write acknowledged
// anywhere in the cluster before the call (a linearizable read, RF-03): the
// leader proves it still leads a quorum with a Raft barrier and hands out
// its applied index, and this node waits until it has applied that much. A
// node that cannot reach a leader with a quorum gets an error (ErrNoQuorum,
// or the context's), never a stale state. DNS does not use this; the admin
// API may.
func (s *Store) ConsistentState(ctx context.Context) (*State, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.tun.ApplyTimeout)
		defer cancel()
	}
	idx, err := retry(ctx, s.tun.LeaderWait, s.done, func() (uint64, error) {
		if s.raft.State() == raft.Leader {
			return s.leaderReadIndex(ctx)
		}
		addr, _ := s.raft.LeaderWithID()
		if addr == "" {
			return 0, ErrNoQuorum
		}
		return s.api.post(ctx, string(addr), "/v1/readindex", nil, false)
	})
	if err != nil {
		return nil, err
	}
	if err := s.WaitIndex(ctx, idx); err != nil {
		return nil, err
	}
	return s.State(), nil
}

// leaderReadIndex commits a barrier (which needs a quorum, so a deposed
// leader cannot pass it) and returns the index of the state applied then.
func (s *Store) leaderReadIndex(ctx context.Context) (uint64, error) {
	timeout := s.tun.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := s.wait(ctx, s.raft.Barrier(timeout), "read index"); err != nil {
		return 0, err
	}
	return s.State().Index(), nil
}

// wait waits for a Raft future, the caller's context or the store's close,
// whichever comes first.
func (s *Store) wait(ctx context.Context, f raft.Future, what string) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return raftErr(err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case <-s.done:
		// Raft may drop a queued proposal at shutdown without answering it.
		return ErrClosed
	}
}

// WaitIndex waits until this node has applied index (for read-your-writes
// on a follower), or ctx ends.
func (s *Store) WaitIndex(ctx context.Context, index uint64) error {
	if s.State().Index() >= index {
		return nil
	}
	c := s.Subscribe()
	defer s.unsubscribe(c)
	for s.State().Index() < index {
		select {
		case _, ok := <-c:
			if !ok {
				return ErrClosed
			}
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (at %d): %w", index, s.State().Index(), ctx.Err())
		}
	}
	return nil
}

func (s *Store) unsubscribe(c <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.subs {
		if x == c {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			return
		}
	}
}

// Join asks the cluster reachable at addr (any member) to add this node: a
// voter, or a non-voter when Config.NonVoter is set. Joining again with the
// same ID and address is a no-op.
func (s *Store) Join(ctx context.Context, addr string) error {
	p := Peer{ID: s.cfg.NodeID, Addr: s.Addr(), Voter: !s.cfg.NonVoter}
	return s.withTimeout(ctx, func(ctx context.Context) error {
		return s.api.forwardMember(ctx, addr, "/v1/join", p, false)
	})
}

// AddMember adds p to the cluster (called on any member).
func (s *Store) AddMember(ctx context.Context, p Peer) error {
	return s.withTimeout(ctx, func(ctx context.Context) error { return s.memberOp(ctx, "/v1/join", p) })
}

// Leave removes this node from the cluster. Its data directory then no
// longer belongs to a running configuration; a node that left should be
// started with a fresh data directory to join again.
func (s *Store) Leave(ctx context.Context) error {
	return s.Remove(ctx, s.cfg.NodeID)
}

// Remove removes the node id from the cluster (called on any member).
func (s *Store) Remove(ctx context.Context, id string) error {
	return s.withTimeout(ctx, func(ctx context.Context) error { return s.memberOp(ctx, "/v1/remove", Peer{ID: id}) })
}

func (s *Store) withTimeout(ctx context.Context, f func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.tun.ApplyTimeout)
		defer cancel()
	}
	_, err := retry(ctx, s.tun.LeaderWait, s.done, func() (uint64, error) { return 0, f(ctx) })
	return err
}

// memberOp runs a membership change on the leader, locally or forwarded.
func (s *Store) memberOp(ctx context.Context, path string, p Peer) error {
	if s.raft.State() == raft.Leader {
		return s.memberLocal(ctx, path, p)
	}
	addr, _ := s.raft.LeaderWithID()
	if addr == "" {
		return ErrNoQuorum
	}
	return s.api.forwardMember(ctx, string(addr), path, p, true)
}

// memberLocal changes the Raft configuration on the leader and records the
// change in the replicated state.
func (s *Store) memberLocal(ctx context.Context, path string, p Peer) error {
	timeout := s.tun.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return raftErr(err)
	}
	var existing *raft.Server
	for _, sv := range cf.Configuration().Servers {
		if string(sv.ID) == p.ID {
			existing = &sv
		}
	}
	now := time.Now().UTC()
	switch path {
	case "/v1/join":
		if p.ID == "" || p.Addr == "" {
			return fmt.Errorf("join: id and addr must be set, got %+v", p)
		}
		want := raft.Nonvoter
		if p.Voter {
			want = raft.Voter
		}
		if existing == nil || string(existing.Address) != p.Addr || existing.Suffrage != want {
			var f raft.IndexFuture
			if p.Voter {
				f = s.raft.AddVoter(raft.ServerID(p.ID), raft.ServerAddress(p.Addr), 0, timeout)
			} else {
				f = s.raft.AddNonvoter(raft.ServerID(p.ID), raft.ServerAddress(p.Addr), 0, timeout)
			}
			if err := f.Error(); err != nil {
				return fmt.Errorf("join %s at %s: %w", p.ID, p.Addr, raftErr(err))
			}
		}
		data, err := Encode(&MemberChange{Op: MemberJoin, ID: p.ID, Addr: p.Addr, Voter: p.Voter, At: now})
		if err != nil {
			return err
		}
		_, err = s.applyLocal(ctx, data)
		return err
	case "/v1/remove":
		if p.ID == "" {
			return errors.New("remove: id must be set")
		}
		// Record first: if the leader removes itself it steps down after
		// the configuration change and could no longer record it.
		data, err := Encode(&MemberChange{Op: MemberLeave, ID: p.ID, At: now})
		if err != nil {
			return err
		}
		if _, err := s.applyLocal(ctx, data); err != nil {
			return err
		}
		if existing == nil {
			return nil
		}
		if err := s.raft.RemoveServer(raft.ServerID(p.ID), 0, timeout).Error(); err != nil {
			return fmt.Errorf("remove %s: %w", p.ID, raftErr(err))
		}
		return nil
	}
	return fmt.Errorf("unknown member operation %q", path)
}

// watchLeadership records the members of a bootstrapped cluster in the
// state once a leader is elected, and keeps the record in step with the
// Raft configuration after each leadership change.
func (s *Store) watchLeadership() {
	for {
		select {
		case <-s.done:
			return
		case isLeader := <-s.raft.LeaderCh():
			if isLeader {
				s.reconcileMembers()
			}
		}
	}
}

func (s *Store) reconcileMembers() {
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	st := s.State()
	now := time.Now().UTC()
	for _, sv := range cf.Configuration().Servers {
		voter := sv.Suffrage == raft.Voter
		if m, ok := st.members[string(sv.ID)]; ok && m.Addr == string(sv.Address) && m.Voter == voter {
			continue
		}
		data, err := Encode(&MemberChange{Op: MemberJoin, ID: string(sv.ID), Addr: string(sv.Address), Voter: voter, At: now})
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.tun.ApplyTimeout)
		_, err = s.applyLocal(ctx, data)
		cancel()
		if err != nil {
			s.log.Warn("record member", "id", sv.ID, "err", err)
			return
		}
	}
}

// logCacheSize is how many recent log entries are kept in memory.
const logCacheSize = 512

// Members returns the current Raft configuration.
func (s *Store) Members() ([]Peer, error) {
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, raftErr(err)
	}
	var out []Peer
	for _, sv := range cf.Configuration().Servers {
		out = append(out, Peer{ID: string(sv.ID), Addr: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
	}
	return out, nil
}

// Leader returns the current leader's ID and address, empty when none is
// known.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Snapshot makes Raft take a snapshot now (and compact its log).
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Fingerprint returns the applied index of state.db and a SHA-256 of its
// whole content (every bucket, key and value). Replicas that applied the
// same entries have equal fingerprints.
func (s *Store) Fingerprint() (uint64, [32]byte, error) { return s.fsm.fingerprint() }

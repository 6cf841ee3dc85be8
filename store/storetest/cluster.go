// Package storetest runs in-process store clusters for tests: real TCP on
// 127.0.0.1 with free ports, bbolt in t.TempDir(), short Raft timeouts, and a
// switch per node that cuts it off the network.
package storetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
)

// Secret is the cluster secret of every test cluster (made by
// store.NewSecret).
const Secret = "J8vQ2mXr5TzL0cWk7YbN3fHs9GdP1uAe6oKiR4xVwE_"

// WaitTimeout bounds every wait in this package. Elections take a few
// hundred milliseconds; the margin is for a loaded 2-core machine.
const WaitTimeout = 20 * time.Second

// Tuning returns short Raft timeouts for in-process clusters.
func Tuning() store.Tuning {
	return store.Tuning{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Hour, // snapshots only when a test asks
		SnapshotThreshold:  1 << 20,
		ApplyTimeout:       5 * time.Second,
	}
}

// Logger returns a logger that discards, or writes to stderr when
// GSLB_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("GSLB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
}

// Node is one member of a test cluster.
type Node struct {
	ID    string
	Dir   string
	Addr  string
	Voter bool
	// Store is nil while the node is stopped.
	Store *store.Store
	net   *Switch
	cfg   store.Config
}

// Cluster is an in-process cluster.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	// Config, if set, is called on each node's config before it starts.
	Config func(*store.Config)
}

// Option changes how NewCluster builds the cluster.
type Option func(*options)

type options struct {
	nonVoters int
	config    func(*store.Config)
}

// NonVoters makes the last k of the n nodes non-voters.
func NonVoters(k int) Option { return func(o *options) { o.nonVoters = k } }

// WithConfig lets a test adjust every node's config.
func WithConfig(f func(*store.Config)) Option { return func(o *options) { o.config = f } }

// NewCluster starts n nodes bootstrapped together and waits for a leader.
// The cluster is closed by t.Cleanup.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	c := &Cluster{t: t, Config: o.config}
	t.Cleanup(c.Close)
	lns := make([]net.Listener, n)
	var peers []store.Peer
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns[i] = ln
		nd := &Node{
			ID:    fmt.Sprintf("n%d", i+1),
			Dir:   filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1)),
			Addr:  ln.Addr().String(),
			Voter: i < n-o.nonVoters,
			net:   NewSwitch(),
		}
		c.Nodes = append(c.Nodes, nd)
		peers = append(peers, store.Peer{ID: nd.ID, Addr: nd.Addr, Voter: nd.Voter})
	}
	for i, nd := range c.Nodes {
		nd.cfg = c.config(nd, peers)
		c.start(nd, lns[i])
	}
	c.WaitLeader()
	c.WaitSettled()
	return c
}

// WaitSettled waits until every running node that is not cut off has the
// same Raft configuration as the leader and has applied the leader's
// record of the members, so a test starts from a quiet cluster.
func (c *Cluster) WaitSettled() {
	c.t.Helper()
	leader := c.WaitLeader()
	want, err := c.Nodes[leader].Store.Members()
	if err != nil {
		c.t.Fatal(err)
	}
	WaitFor(c.t, "members recorded on every node", func() bool {
		for _, i := range c.Running() {
			nd := c.Nodes[i]
			if nd.net.IsCut() {
				continue
			}
			got, err := nd.Store.Members()
			if err != nil || len(got) != len(want) || len(nd.Store.State().Members()) != len(want) {
				return false
			}
		}
		return true
	})
}

func (c *Cluster) config(nd *Node, peers []store.Peer) store.Config {
	cfg := store.Config{
		NodeID:   nd.ID,
		DataDir:  nd.Dir,
		Peers:    peers,
		NonVoter: !nd.Voter,
		Secret:   Secret,
		Logger:   Logger(),
		Tuning:   Tuning(),
		Dial:     nd.net.Dial,
	}
	if c.Config != nil {
		c.Config(&cfg)
	}
	return cfg
}

func (c *Cluster) start(nd *Node, ln net.Listener) {
	c.t.Helper()
	if err := c.tryStart(nd, ln); err != nil {
		c.t.Fatalf("start %s: %v", nd.ID, err)
	}
}

func (c *Cluster) tryStart(nd *Node, ln net.Listener) error {
	cfg := nd.cfg
	cfg.Listener = nd.net.Listener(ln)
	s, err := store.New(cfg)
	if err != nil {
		return err
	}
	nd.Store = s
	return nil
}

// AddNode starts a new empty node and joins it through the member at
// index via. The node is a voter unless nonVoter.
func (c *Cluster) AddNode(via int, nonVoter bool) *Node {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatalf("listen: %v", err)
	}
	nd := &Node{
		ID:    fmt.Sprintf("n%d", len(c.Nodes)+1),
		Dir:   filepath.Join(c.t.TempDir(), fmt.Sprintf("n%d", len(c.Nodes)+1)),
		Addr:  ln.Addr().String(),
		Voter: !nonVoter,
		net:   NewSwitch(),
	}
	nd.cfg = c.config(nd, nil)
	c.start(nd, ln)
	c.Nodes = append(c.Nodes, nd)
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := nd.Store.Join(ctx, c.Nodes[via].Addr); err != nil {
		c.t.Fatalf("join %s via %s: %v", nd.ID, c.Nodes[via].ID, err)
	}
	return nd
}

// Stop closes node i's store (its data stays).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	nd := c.Nodes[i]
	if nd.Store == nil {
		return
	}
	if err := nd.Store.Close(); err != nil {
		c.t.Logf("close %s: %v", nd.ID, err)
	}
	nd.Store = nil
}

// Restart starts node i again on its data directory and address.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.TryRestart(i); err != nil {
		c.t.Fatalf("restart %s: %v", c.Nodes[i].ID, err)
	}
}

// TryRestart is Restart that returns the error of store.New (the node
// stays stopped) instead of failing the test.
func (c *Cluster) TryRestart(i int) error {
	c.t.Helper()
	nd := c.Nodes[i]
	c.Stop(i)
	var ln net.Listener
	var err error
	deadline := time.Now().Add(WaitTimeout)
	for {
		if ln, err = net.Listen("tcp", nd.Addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("restart %s: listen %s: %v", nd.ID, nd.Addr, err)
	}
	return c.tryStart(nd, ln)
}

// Partition cuts node i off: its connections are closed and new ones, in
// and out, are refused until Heal.
func (c *Cluster) Partition(i int) { c.Nodes[i].net.Cut() }

// Heal reconnects node i.
func (c *Cluster) Heal(i int) { c.Nodes[i].net.Heal() }

// Close stops every node.
func (c *Cluster) Close() {
	for i := range c.Nodes {
		c.Stop(i)
	}
}

// Running returns the indexes of the running nodes.
func (c *Cluster) Running() []int {
	var out []int
	for i, nd := range c.Nodes {
		if nd.Store != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitLeader waits until every running, connected node agrees on one
// leader, and returns its index.
func (c *Cluster) WaitLeader() int {
	c.t.Helper()
	leader := -1
	WaitFor(c.t, "one leader agreed by all running nodes", func() bool {
		leader = -1
		id := ""
		for i, nd := range c.Nodes {
			if nd.Store == nil || nd.net.IsCut() {
				continue
			}
			lid, _ := nd.Store.Leader()
			if lid == "" || (id != "" && lid != id) {
				return false
			}
			id = lid
			if nd.ID == lid {
				if !nd.Store.IsLeader() {
					return false
				}
				leader = i
			}
		}
		return leader >= 0
	})
	return leader
}

// WaitIndex waits until every running node that is not cut off has applied
// index.
func (c *Cluster) WaitIndex(index uint64) {
	c.t.Helper()
	for _, i := range c.Running() {
		nd := c.Nodes[i]
		if nd.net.IsCut() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
		err := nd.Store.WaitIndex(ctx, index)
		cancel()
		if err != nil {
			c.t.Fatalf("%s: %v", nd.ID, err)
		}
	}
}

// WaitFor polls cond every 5 ms until it holds, failing t after
// WaitTimeout. Raft state has no change notification, so polling is the
// honest way to wait on it.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", WaitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Switch wraps a node's listener and dialer so a test can cut the node off
// the network and reconnect it.
type Switch struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// NewSwitch returns a connected switch.
func NewSwitch() *Switch { return &Switch{conns: map[net.Conn]struct{}{}} }

// IsCut reports whether the switch is cut.
func (s *Switch) IsCut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut
}

// Cut closes every tracked connection and refuses new ones.
func (s *Switch) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = true
	for c := range s.conns {
		c.(*trackedConn).Conn.Close() // not Close: that takes s.mu
	}
	clear(s.conns)
}

// Heal allows connections again.
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = false
}

func (s *Switch) track(c net.Conn) (net.Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		c.Close()
		return nil, false
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, true
}

// Dial is a store.DialFunc that refuses to dial while cut.
func (s *Switch) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.IsCut() {
		return nil, fmt.Errorf("dial %s: partitioned by test", addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := s.track(c)
	if !ok {
		return nil, fmt.Errorf("dial %s: partitioned by test", addr)
	}
	return tc, nil
}

// Listener wraps ln so accepted connections are dropped while cut.
func (s *Switch) Listener(ln net.Listener) net.Listener { return &switchListener{Listener: ln, s: s} }

type switchListener struct {
	net.Listener
	s *Switch
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := l.s.track(c); ok {
			return tc, nil
		}
	}
}

type trackedConn struct {
	net.Conn
	s    *Switch
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

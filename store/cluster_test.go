package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), storetest.WaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func report(prober, key string, up bool, at time.Time) *store.ReportBatch {
	return &store.ReportBatch{
		Prober:      prober,
		Transitions: []store.Transition{{Key: key, Region: "us-east", Up: up, Reason: "test", At: at}},
		RTTs:        []store.RTTSummary{{Kind: store.RTTRegion, Name: "eu-west", EWMA: 80 * time.Millisecond, Min: 75 * time.Millisecond, At: at}},
	}
}

func follower(c *storetest.Cluster, leader int) int {
	for _, i := range c.Running() {
		if i != leader {
			return i
		}
	}
	return -1
}

// RF-07 (3 nodes), issue 6: reports and overrides submitted on a follower
// are forwarded to the leader and replicated to every node.
func TestClusterReplicatesReportsAndOverrides(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	s := c.Nodes[f].Store

	idx, err := s.SubmitIndex(ctxT(t), report("us-east", "web-us/192.0.2.10", false, t0))
	if err != nil {
		t.Fatalf("submit report on follower %s: %v", c.Nodes[f].ID, err)
	}
	o := &store.Override{Kind: store.KindRegion, Name: "eu-west", Action: store.ActionDrain, At: t0}
	idx2, err := s.SubmitIndex(ctxT(t), o)
	if err != nil {
		t.Fatalf("submit override: %v", err)
	}
	if idx2 <= idx {
		t.Fatalf("override index %d not after report index %d", idx2, idx)
	}
	c.WaitIndex(idx2)
	var fp [32]byte
	for i, nd := range c.Nodes {
		st := nd.Store.State()
		v, ok := st.Verdict("web-us/192.0.2.10", "us-east")
		if !ok || v.Up || v.Prober != "us-east" || !v.At.Equal(t0) {
			t.Errorf("%s: verdict = %+v, %v; want down from us-east at %v", nd.ID, v, ok, t0)
		}
		if r, ok := st.RTT("us-east", store.RTTRegion, "eu-west"); !ok || r.EWMA != 80*time.Millisecond {
			t.Errorf("%s: rtt = %+v, %v", nd.ID, r, ok)
		}
		if got, ok := st.Override(store.KindRegion, "eu-west"); !ok || got.Action != store.ActionDrain {
			t.Errorf("%s: override = %+v, %v", nd.ID, got, ok)
		}
		if st.Index() != idx2 {
			t.Errorf("%s: state index %d, want %d", nd.ID, st.Index(), idx2)
		}
		_, sum, err := nd.Store.Fingerprint()
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && sum != fp {
			t.Errorf("%s: state.db fingerprint %x differs from %s's %x", nd.ID, sum[:8], c.Nodes[0].ID, fp[:8])
		}
		fp = sum
	}
	t.Logf("replicated to 3 nodes at index %d, fingerprint %x", idx2, fp[:8])
}

// Kill the leader: a new one is elected and writes continue; the old
// leader, restarted on its data directory, catches up with what it missed.
func TestLeaderFailoverAndRestartCatchUp(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	old := c.WaitLeader()
	if _, err := c.Nodes[old].Store.SubmitIndex(ctxT(t), report("p1", "k1", true, t0)); err != nil {
		t.Fatal(err)
	}
	oldIndex := c.Nodes[old].Store.State().Index()
	c.Stop(old)
	start := time.Now()
	leader := c.WaitLeader()
	if leader == old {
		t.Fatalf("stopped node %d still leader", old)
	}
	var idx uint64
	for i := range 20 {
		var err error
		idx, err = c.Nodes[follower(c, -1)].Store.SubmitIndex(ctxT(t), report("p1", fmt.Sprintf("k%d", i+2), i%2 == 0, t0.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatalf("write %d after failover: %v", i, err)
		}
	}
	t.Logf("new leader %s; 20 writes done %v after the old leader stopped", c.Nodes[leader].ID, time.Since(start).Round(time.Millisecond))

	stoppedAt := oldIndex
	c.Restart(old)
	// Warm start: before hearing from anyone, the restarted node already
	// serves what it had committed (verdicts and RTTs included).
	if got := c.Nodes[old].Store.State().Index(); got != stoppedAt {
		t.Fatalf("restarted node starts at index %d, had %d", got, stoppedAt)
	}
	if _, ok := c.Nodes[old].Store.State().Verdict("k1", "p1"); !ok {
		t.Fatal("restarted node lost its verdicts before catching up")
	}
	c.WaitIndex(idx)
	_, want, _ := c.Nodes[leader].Store.Fingerprint()
	_, got, _ := c.Nodes[old].Store.Fingerprint()
	if got != want {
		t.Fatalf("restarted %s fingerprint %x, leader %x", c.Nodes[old].ID, got[:8], want[:8])
	}
	if n := len(c.Nodes[old].Store.State().Transitions()); n != 21 {
		t.Fatalf("restarted node has %d verdicts, want 21", n)
	}
}

// RF-09 across the cluster: the leader snapshots and compacts its log, so a
// node that joins afterwards is sent the snapshot; its state.db is then
// identical to the leader's, and later entries apply on top of it.
func TestSnapshotInstallOnJoin(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.WithConfig(func(cfg *store.Config) { cfg.Tuning.TrailingLogs = 2 }))
	leader := c.WaitLeader()
	s := c.Nodes[leader].Store
	for i := range 30 {
		if err := s.Submit(ctxT(t), report("p1", fmt.Sprintf("k%d", i), true, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	nd := c.AddNode(leader, true)
	idx, err := s.SubmitIndex(ctxT(t), &store.ZoneUpdate{Name: "example.com.", Serial: 1, Content: []byte("after snapshot")})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitIndex(idx)
	_, want, _ := s.Fingerprint()
	_, got, _ := nd.Store.Fingerprint()
	if got != want {
		t.Fatalf("joined node fingerprint %x, leader %x", got[:8], want[:8])
	}
	if n := len(nd.Store.State().Transitions()); n != 30 {
		t.Fatalf("joined node has %d verdicts, want 30", n)
	}
	// Restart of a node whose log was compacted: it starts from state.db
	// and its snapshot, then catches up.
	f := follower(c, leader)
	c.Stop(f)
	idx, err = c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("p2", "k", false, t0))
	if err != nil {
		t.Fatal(err)
	}
	c.Restart(f)
	c.WaitIndex(idx)
	_, got, _ = c.Nodes[f].Store.Fingerprint()
	_, want, _ = c.Nodes[c.WaitLeader()].Store.Fingerprint()
	if got != want {
		t.Fatalf("restarted node fingerprint %x, leader %x", got[:8], want[:8])
	}
}

// RF-07: 5 nodes, 2 of them non-voters. Removing a non-voter or losing
// both never affects quorum (3 voters); losing 2 voters does.
func TestNonVotersNeverAffectQuorum(t *testing.T) {
	c := storetest.NewCluster(t, 5, storetest.NonVoters(2))
	leader := c.WaitLeader()
	if !c.Nodes[leader].Voter {
		t.Fatalf("non-voter %s became leader", c.Nodes[leader].ID)
	}
	members, err := c.Nodes[3].Store.Members()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range members {
		if m.Voter {
			voters++
		}
	}
	if len(members) != 5 || voters != 3 {
		t.Fatalf("members = %+v, want 5 with 3 voters", members)
	}
	// Writes through a non-voter are forwarded; non-voters receive them.
	idx, err := c.Nodes[4].Store.SubmitIndex(ctxT(t), report("ap-south", "k", true, t0))
	if err != nil {
		t.Fatalf("submit via non-voter: %v", err)
	}
	c.WaitIndex(idx)

	// Remove non-voter n5 (it leaves itself), stop non-voter n4.
	if err := c.Nodes[4].Store.Leave(ctxT(t)); err != nil {
		t.Fatalf("n5 leave: %v", err)
	}
	c.Stop(4)
	c.Stop(3)
	if _, err := c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("ap-south", "k", false, t0.Add(time.Second))); err != nil {
		t.Fatalf("write with both non-voters gone: %v", err)
	}
	if !c.Nodes[leader].Store.HasQuorum() {
		t.Fatal("leader lost quorum without its non-voters")
	}
	members, _ = c.Nodes[leader].Store.Members()
	if len(members) != 4 {
		t.Fatalf("members after n5 left = %+v", members)
	}
	st := c.Nodes[leader].Store.State()
	for _, m := range st.Members() {
		if m.ID == "n5" {
			t.Fatalf("n5 still recorded as member: %+v", st.Members())
		}
	}
	// One voter stopped: 2 of 3 voters remain, writes go on.
	stopped := 0
	for _, i := range []int{0, 1, 2} {
		if i != leader {
			c.Stop(i)
			stopped = i
			break
		}
	}
	if _, err := c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("ap-south", "k", true, t0.Add(2*time.Second))); err != nil {
		t.Fatalf("write with 2 of 3 voters: %v", err)
	}
	// A second voter stopped: 1 of 3, no quorum; the leader steps down.
	for _, i := range []int{0, 1, 2} {
		if i != leader && i != stopped {
			c.Stop(i)
		}
	}
	s := c.Nodes[leader].Store
	storetest.WaitFor(t, "lone voter to lose quorum", func() bool { return !s.HasQuorum() })
	if err := s.Submit(ctxT(t), report("ap-south", "k", false, t0.Add(3*time.Second))); err == nil {
		t.Fatal("write committed by 1 of 3 voters")
	}
}

// RF-04: a follower cut off from the others cannot commit (fast failure,
// no hang) but keeps serving its last committed state; after healing it
// catches up.
func TestCutOffFollowerServesReadsButCannotCommit(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	idx, err := c.Nodes[f].Store.SubmitIndex(ctxT(t), report("p1", "k", true, t0))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitIndex(idx)
	c.Partition(f)
	s := c.Nodes[f].Store
	storetest.WaitFor(t, "cut-off follower to report no quorum", func() bool { return !s.HasQuorum() })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Submit(ctx, report("p1", "k", false, t0.Add(time.Second)))
	if !errors.Is(err, store.ErrNoQuorum) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("submit on cut-off follower = %v, want ErrNoQuorum or deadline", err)
	}
	t.Logf("submit on cut-off follower failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if v, ok := s.State().Verdict("k", "p1"); !ok || !v.Up {
		t.Fatalf("cut-off follower lost its committed state: %+v %v", v, ok)
	}

	// The rest of the cluster goes on.
	leader = c.WaitLeader()
	idx, err = c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("p1", "k", false, t0.Add(2*time.Second)))
	if err != nil {
		t.Fatalf("majority side write: %v", err)
	}
	if s.State().Index() >= idx {
		t.Fatal("cut-off follower applied a write it cannot have received")
	}
	c.Heal(f)
	c.WaitIndex(idx)
	if v, _ := s.State().Verdict("k", "p1"); v.Up {
		t.Fatal("healed follower did not catch up")
	}
}

// Without a leader Submit returns ErrNoQuorum once LeaderWait (an election's
// time) has passed, not after its context's deadline, and State still
// answers.
func TestNoLeaderSubmitFailsFast(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	idx, err := c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("p1", "k", true, t0))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitIndex(idx)
	last := follower(c, leader)
	idx = c.Nodes[last].Store.State().Index()
	for _, i := range c.Running() {
		if i != last {
			c.Stop(i)
		}
	}
	s := c.Nodes[last].Store
	storetest.WaitFor(t, "no leader known", func() bool { id, _ := s.Leader(); return id == "" })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.Submit(ctx, report("p1", "k", false, t0))
	if !errors.Is(err, store.ErrNoQuorum) {
		t.Fatalf("submit without leader = %v, want ErrNoQuorum", err)
	}
	t.Logf("submit without a leader failed in %v", time.Since(start))
	if st := s.Stats(); st.Quorum || st.StateIndex != idx {
		t.Fatalf("stats = %+v, want no quorum at index %d", st, idx)
	}
}

// Zones through the cluster: submitted anywhere, every node serves the
// committed version; an older serial is rejected (through forwarding too).
func TestZonesThroughCluster(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	z := &store.ZoneUpdate{Name: "example.com.", Serial: 2026112302, Content: []byte("$ORIGIN example.com.\n@ SOA ns1 h 2026112302 1 1 1 1\n")}
	idx, err := c.Nodes[f].Store.SubmitIndex(ctxT(t), z)
	if err != nil {
		t.Fatal(err)
	}
	c.WaitIndex(idx)
	for _, nd := range c.Nodes {
		got, ok := nd.Store.State().Zone("example.com.")
		if !ok || got.Serial != z.Serial || string(got.Content) != string(z.Content) {
			t.Errorf("%s: zone = %+v %v", nd.ID, got, ok)
		}
	}
	old := &store.ZoneUpdate{Name: "example.com.", Serial: 2026112301, Content: []byte("old")}
	err = c.Nodes[f].Store.Submit(ctxT(t), old)
	if !errors.Is(err, store.ErrRejected) {
		t.Fatalf("older serial via follower = %v, want ErrRejected", err)
	}
	t.Logf("older serial: %v", err)
	if got, _ := c.Nodes[f].Store.State().Zone("example.com."); got.Serial != z.Serial {
		t.Fatalf("rejected update changed the zone to serial %d", got.Serial)
	}
}

// Subscribe signals after each applied batch, so the DNS snapshot can be
// rebuilt right after a commit.
func TestSubscribeSignalsAfterCommit(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	sub := c.Nodes[f].Store.Subscribe()
	idx, err := c.Nodes[leader].Store.SubmitIndex(ctxT(t), &store.Override{Kind: store.KindPool, Name: "web-us", Action: store.ActionDrain, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	for c.Nodes[f].Store.State().Index() < idx {
		select {
		case <-sub:
		case <-ctxT(t).Done():
			t.Fatal("no signal")
		}
	}
	if _, ok := c.Nodes[f].Store.State().Override(store.KindPool, "web-us"); !ok {
		t.Fatal("signalled state lacks the override")
	}
	c.Stop(f)
	if _, ok := <-sub; ok {
		for range sub {
		}
	}
}

// RF-07: grow 3 -> 5 voters, remove a follower, then remove the leader: a
// new leader is elected among the rest and writes go on.
func TestMembershipGrowAndRemoveLeader(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	c.AddNode(0, false)
	c.AddNode(1, false)
	c.WaitSettled()
	leader := c.WaitLeader()
	members, _ := c.Nodes[leader].Store.Members()
	if len(members) != 5 {
		t.Fatalf("members = %+v, want 5", members)
	}
	f := follower(c, leader)
	if err := c.Nodes[leader].Store.Remove(ctxT(t), c.Nodes[f].ID); err != nil {
		t.Fatalf("remove follower: %v", err)
	}
	c.Stop(f)
	// The leader removes itself (asked through another node).
	via := follower(c, leader)
	if err := c.Nodes[via].Store.Remove(ctxT(t), c.Nodes[leader].ID); err != nil {
		t.Fatalf("remove leader: %v", err)
	}
	c.Stop(leader)
	nl := c.WaitLeader()
	idx, err := c.Nodes[nl].Store.SubmitIndex(ctxT(t), report("p", "after", true, t0))
	if err != nil {
		t.Fatalf("write after removing the leader: %v", err)
	}
	c.WaitIndex(idx)
	members, _ = c.Nodes[nl].Store.Members()
	if len(members) != 3 {
		t.Fatalf("members = %+v, want 3", members)
	}
	recorded := c.Nodes[nl].Store.State().Members()
	if len(recorded) != 3 {
		t.Fatalf("recorded members = %+v, want 3", recorded)
	}
}

// RF-12: a subscriber's view (the feed that rebuilds DNS) never goes
// backwards across a partition and heal, and converges to the committed
// index.
func TestSubscriberViewConvergesAcrossPartition(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	fs := c.Nodes[f].Store
	sub := fs.Subscribe()
	seen := make(chan []uint64, 1)
	go func() {
		var idx []uint64
		for range sub {
			idx = append(idx, fs.State().Index())
		}
		seen <- idx
	}()
	write := func(i int) uint64 {
		t.Helper()
		l := c.WaitLeader()
		idx, err := c.Nodes[l].Store.SubmitIndex(ctxT(t), report("p", fmt.Sprintf("k%d", i), true, t0))
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	for i := range 10 {
		write(i)
	}
	c.Partition(f)
	for i := 10; i < 20; i++ {
		write(i)
	}
	c.Heal(f)
	last := write(20)
	c.WaitIndex(last)
	c.Stop(f) // closes the subscription
	idx := <-seen
	for i := 1; i < len(idx); i++ {
		if idx[i] < idx[i-1] {
			t.Fatalf("subscriber saw index %d after %d", idx[i], idx[i-1])
		}
	}
	if len(idx) == 0 || idx[len(idx)-1] != last {
		t.Fatalf("subscriber's last index %v, want %d", idx[max(0, len(idx)-1):], last)
	}
	t.Logf("%d signals for 21 writes, last index %d", len(idx), last)
}

// RF-03: a leader cut off from the others must not serve a consistent
// read (it cannot pass a barrier), while a follower on the majority side
// reads every acknowledged write.
func TestConsistentReadRefusedOnIsolatedLeader(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	old := c.WaitLeader()
	c.Partition(old)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Nodes[old].Store.ConsistentState(ctx)
	if err == nil {
		t.Fatalf("isolated old leader served a consistent read at index %d", st.Index())
	}
	t.Logf("isolated old leader: %v", err)

	leader := c.WaitLeader()
	idx, err := c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("p", "k", true, t0))
	if err != nil {
		t.Fatal(err)
	}
	var f int
	for _, i := range c.Running() {
		if i != leader && i != old {
			f = i
		}
	}
	st, err = c.Nodes[f].Store.ConsistentState(ctxT(t))
	if err != nil {
		t.Fatalf("consistent read on follower: %v", err)
	}
	if st.Index() < idx {
		t.Fatalf("consistent read at index %d misses the write at %d", st.Index(), idx)
	}
}

// RF-02 (in-process): 5 nodes under a constant write load; 4 times the
// leader and one other node are cut off until the majority side has
// elected a new leader and acknowledged more writes, then healed. At the
// end every node has the same state.db, and every acknowledged write is in
// it.
func TestPartitionsUnderLoadLoseNoAcknowledgedWrite(t *testing.T) {
	c := storetest.NewCluster(t, 5)
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := c.Nodes[(w+i)%5].Store
				key := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				err := s.Submit(ctx, report(fmt.Sprintf("p%d", w), key, true, t0.Add(time.Duration(i)*time.Millisecond)))
				cancel()
				if err == nil {
					mu.Lock()
					acked[key] = true
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		leader := c.WaitLeader()
		other := (leader + 1 + rng.IntN(4)) % 5
		c.Partition(leader)
		c.Partition(other)
		n := count()
		storetest.WaitFor(t, "a new leader and 20 more writes on the majority side", func() bool {
			id, _ := c.Nodes[(leader+1)%5].Store.Leader()
			if other == (leader+1)%5 {
				id, _ = c.Nodes[(leader+2)%5].Store.Leader()
			}
			return id != "" && id != c.Nodes[leader].ID && count() >= n+20
		})
		c.Heal(leader)
		c.Heal(other)
		t.Logf("round %d: cut %s (leader) and %s; %d writes acknowledged so far", round, c.Nodes[leader].ID, c.Nodes[other].ID, count())
	}
	close(stop)
	wg.Wait()
	leader := c.WaitLeader()
	idx, err := c.Nodes[leader].Store.SubmitIndex(ctxT(t), report("final", "k", true, t0))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitIndex(idx)
	_, want, _ := c.Nodes[leader].Store.Fingerprint()
	for _, nd := range c.Nodes {
		if _, got, _ := nd.Store.Fingerprint(); got != want {
			t.Errorf("%s: fingerprint %x, leader %x", nd.ID, got[:8], want[:8])
		}
		st := nd.Store.State()
		missing := 0
		for key := range acked {
			var w int
			fmt.Sscanf(key, "w%d-", &w)
			if _, ok := st.Verdict(key, fmt.Sprintf("p%d", w)); !ok {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged writes missing", nd.ID, missing, len(acked))
		}
	}
	t.Logf("%d acknowledged writes, all on all 5 nodes at index %d", len(acked), idx)
}

package store_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

// RF-04 (issue 16): a report batch told (Store.Tell) reaches every other member's
// Config.Told at once, without a leader, and is not committed; a member
// that cannot be reached is named in the error.
func TestTellWithoutLeader(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]*store.ReportBatch{}
	c := storetest.NewCluster(t, 3, storetest.WithConfig(func(cfg *store.Config) {
		id := cfg.NodeID
		cfg.Told = func(b *store.ReportBatch) {
			mu.Lock()
			got[id] = append(got[id], b)
			mu.Unlock()
		}
	}))
	leader := c.WaitLeader()
	c.Stop(leader)
	var from, to int
	for i, n := range c.Nodes {
		if i == leader {
			continue
		}
		if n.ID < c.Nodes[from].ID || from == leader {
			from = i
		}
	}
	for i := range c.Nodes {
		if i != leader && i != from {
			to = i
		}
	}
	s := c.Nodes[from].Store
	before := s.State().Index()
	err := s.Tell(ctxT(t), report("p1", "k", false, t0))
	if err == nil || !strings.Contains(err.Error(), c.Nodes[leader].ID) {
		t.Errorf("Tell with %s stopped = %v, want an error naming it", c.Nodes[leader].ID, err)
	}
	mu.Lock()
	defer mu.Unlock()
	bs := got[c.Nodes[to].ID]
	if len(bs) != 1 || bs[0].Prober != "p1" || len(bs[0].Transitions) != 1 || bs[0].Transitions[0].Up {
		t.Fatalf("%s was told %+v, want p1's transition down", c.Nodes[to].ID, bs)
	}
	if n := len(got[c.Nodes[from].ID]); n != 0 {
		t.Errorf("the teller was told its own batch %d times", n)
	}
	if idx := s.State().Index(); idx != before {
		t.Errorf("state index %d after Tell, was %d: a told batch is not committed", idx, before)
	}
	if err := s.Tell(ctxT(t), &store.ReportBatch{}); err == nil {
		t.Errorf("Tell of an empty batch: no error")
	}
}

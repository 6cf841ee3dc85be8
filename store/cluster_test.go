package store_test

import (
	"context"
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
		RTTs:        []store.RTTSummary{{Target: "eu-west", EWMA: 80 * time.Millisecond, Min: 75 * time.Millisecond, At: at}},
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
		if r, ok := st.RTT("us-east", "eu-west"); !ok || r.EWMA != 80*time.Millisecond {
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

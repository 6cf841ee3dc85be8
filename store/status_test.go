package store_test

import (
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

func memberStatus(t *testing.T, st store.Stats, id string) store.MemberStatus {
	t.Helper()
	for _, m := range st.Members {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("%s: no member %s in %+v", st.NodeID, id, st.Members)
	return store.MemberStatus{}
}

// Issue 13 §4: the leader knows when it last heard from each member, a
// follower when it last heard from the leader and, through the leader,
// from the others; a member cut off ages in both views (status and
// gslb_store_member_last_contact_seconds).
func TestMembersLastContact(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	other := 3 - leader - f
	ls, fs := c.Nodes[leader].Store, c.Nodes[f].Store
	lid, fid, oid := c.Nodes[leader].ID, c.Nodes[f].ID, c.Nodes[other].ID
	fresh := 2 * storetest.Tuning().HeartbeatTimeout
	heard := func(s *store.Store, id, by string) bool {
		m := memberStatus(t, s.Stats(), id)
		return m.ReportedBy == by && time.Since(m.LastContact) < fresh
	}
	storetest.WaitFor(t, "every member heard from, in the leader's and a follower's view", func() bool {
		return heard(ls, fid, lid) && heard(ls, oid, lid) && heard(fs, lid, fid) && heard(fs, oid, lid)
	})
	for _, s := range []*store.Store{ls, fs} {
		st := s.Stats()
		if me := memberStatus(t, st, st.NodeID); !me.Self || !me.LastContact.IsZero() || me.ReportedBy != "" {
			t.Errorf("%s: own entry = %+v, want Self and no contact", st.NodeID, me)
		}
	}

	c.Partition(other)
	storetest.WaitFor(t, "the cut-off member to age in the leader's and the follower's view", func() bool {
		lm, fm := memberStatus(t, ls.Stats(), oid), memberStatus(t, fs.Stats(), oid)
		return time.Since(lm.LastContact) > fresh && time.Since(fm.LastContact) > fresh && fm.ReportedBy == lid
	})
	for _, s := range []*store.Store{ls, fs} {
		if v := metricValue(t, s, "gslb_store_member_last_contact_seconds", map[string]string{"member": oid}); v < fresh.Seconds() {
			t.Fatalf("%s: gslb_store_member_last_contact_seconds{member=%q} = %v, want > %v", s.ID(), oid, v, fresh.Seconds())
		}
	}
	c.Heal(other)
	storetest.WaitFor(t, "the healed member to be heard again", func() bool {
		return heard(ls, oid, lid) && heard(fs, oid, lid)
	})
}

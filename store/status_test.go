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
// follower when it last heard from the leader; a member cut off ages on
// the leader (status and gslb_store_member_last_contact_seconds).
func TestMembersLastContact(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	ls := c.Nodes[leader].Store
	fresh := 2 * storetest.Tuning().HeartbeatTimeout
	storetest.WaitFor(t, "the leader to hear from every follower", func() bool {
		for _, m := range ls.Stats().Members {
			if !m.Self && time.Since(m.LastContact) > fresh {
				return false
			}
		}
		return true
	})
	st := c.Nodes[f].Store.Stats()
	for _, m := range st.Members {
		switch {
		case m.Self || !m.Leader:
			if !m.LastContact.IsZero() {
				t.Errorf("follower %s: member %s last contact %v, want zero (self, or unknown on a follower)", st.NodeID, m.ID, m.LastContact)
			}
		case time.Since(m.LastContact) > fresh:
			t.Errorf("follower %s: leader %s last heard %v ago", st.NodeID, m.ID, time.Since(m.LastContact))
		}
	}
	if me := memberStatus(t, ls.Stats(), c.Nodes[leader].ID); !me.Self || !me.Leader || !me.LastContact.IsZero() {
		t.Errorf("leader's own entry = %+v", me)
	}

	c.Partition(f)
	id := c.Nodes[f].ID
	storetest.WaitFor(t, "the cut-off member to age on the leader", func() bool {
		return time.Since(memberStatus(t, ls.Stats(), id).LastContact) > fresh
	})
	if v := metricValue(t, ls, "gslb_store_member_last_contact_seconds", map[string]string{"member": id}); v < fresh.Seconds() {
		t.Fatalf("gslb_store_member_last_contact_seconds{member=%q} = %v, want > %v", id, v, fresh.Seconds())
	}
	c.Heal(f)
	storetest.WaitFor(t, "the healed member to be heard again", func() bool {
		return time.Since(memberStatus(t, ls.Stats(), id).LastContact) < fresh
	})
}

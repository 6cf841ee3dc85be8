package dnsserver

import (
	"sync/atomic"

	"github.com/gslbd/gslb/gslb"
)

// answerCache is a fixed-size, lock-free table of packed replies, one per
// snapshot. Readers load an atomic pointer; writers replace a slot. Its size
// bounds its memory whatever names are asked (DNS-48).
//
// A reply that came from GSLB records (directly or at the end of a CNAME
// chain) is tagged with them and with the generation of the health and
// RTTs they depended on (gslb.View.Stamp): when the snapshot's view
// changes, only the entries whose records' pools changed go stale. Static
// answers, NXDOMAIN and referrals have no tag and stay.
type answerCache struct {
	slots [cacheSlots]atomic.Pointer[cacheEntry]
	view  *atomic.Pointer[gslb.View] // the snapshot's view
}

const (
	cacheSlots = 1 << 13
	cacheProbe = 4
)

type cacheEntry struct {
	hash uint64
	key  []byte
	resp []byte
	// perClient marks a question whose replies depend on the client: its
	// replies are under the key extended with the client's address.
	perClient bool
	// deps are the GSLB records the reply was answered from (none: it
	// does not depend on health); seq is the number of the view it was
	// answered with, stamp the largest generation of what deps depend on
	// in that view.
	deps  []*gslb.Record
	seq   uint64
	stamp uint64
}

// get returns the entry for key if it is still valid, or nil. A stale
// entry is counted in st and not returned.
func (c *answerCache) get(key []byte, h uint64, st *stats) *cacheEntry {
	for i := uint64(0); i < cacheProbe; i++ {
		e := c.slots[(h+i)&(cacheSlots-1)].Load()
		if e == nil {
			return nil
		}
		if e.hash == h && string(e.key) == string(key) {
			if len(e.deps) > 0 && !e.fresh(c.view.Load()) {
				st.cacheStale.Add(1)
				return nil
			}
			return e
		}
	}
	return nil
}

// fresh reports whether nothing e's GSLB records depend on changed in v.
func (e *cacheEntry) fresh(v *gslb.View) bool {
	if v.Seq() == e.seq {
		return true
	}
	for _, r := range e.deps {
		if v.Stamp(r) > e.stamp {
			return false
		}
	}
	return true
}

// put stores resp under key, replacing the entry for the same key if
// there is one. q is the query that made resp: its GSLB records and view
// tag the entry.
func (c *answerCache) put(key, resp []byte, h uint64, perClient bool, q *query) {
	e := &cacheEntry{hash: h, key: append([]byte(nil), key...), resp: append([]byte(nil), resp...), perClient: perClient}
	if len(q.deps) > 0 && q.view != nil {
		e.deps = append([]*gslb.Record(nil), q.deps...)
		e.seq = q.view.Seq()
		for _, r := range q.deps {
			e.stamp = max(e.stamp, q.view.Stamp(r))
		}
	}
	for i := uint64(0); i < cacheProbe; i++ {
		slot := &c.slots[(h+i)&(cacheSlots-1)]
		old := slot.Load()
		if old == nil {
			if slot.CompareAndSwap(nil, e) {
				return
			}
			continue
		}
		if old.hash == h && string(old.key) == string(key) {
			slot.CompareAndSwap(old, e) // a stale or racing entry for the same question
			return
		}
	}
	c.slots[h&(cacheSlots-1)].Store(e) // full: replace the first
}

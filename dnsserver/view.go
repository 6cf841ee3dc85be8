package dnsserver

import (
	"sync"

	"github.com/gslbd/gslb/gslb"
)

// views is what the server keeps to build the gslb.View of each snapshot
// it serves: the last health and RTT table given to Refresh. Only the
// writers (Refresh, Swap) take mu; queries never do.
type views struct {
	mu    sync.Mutex
	given bool // Refresh was called: h and lat replace the Loader's Env
	h     gslb.Health
	lat   *gslb.LatencyTable
}

// Refresh makes every following query see health h (nil: every member up)
// and the RTTs of lat, without a new Snapshot: it builds a gslb.View of the
// current snapshot's Set (O(pools × members + measured networks)) and
// publishes it only if something a query can see changed, which it
// reports. A heartbeat with no transition changes nothing, and replies
// cached for records whose pools did not change stay valid. From the first
// call on, Swap builds the view of each new snapshot from the last h and
// lat given here, not from the Env the Set was compiled with.
// Safe for concurrent use with queries, Swap and itself.
func (s *Server) Refresh(h gslb.Health, lat *gslb.LatencyTable) (changed bool) {
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	s.views.given, s.views.h, s.views.lat = true, h, lat
	snap := s.snap.Load()
	cur := snap.view.Load()
	if cur == nil {
		return false // no GSLB set
	}
	next, changed := cur.Update(h, lat)
	if changed {
		snap.view.Store(next)
	}
	return changed
}

// swap publishes snap, with a view built from the last Refresh if any.
func (s *Server) swap(snap *Snapshot) {
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	if s.views.given && snap.set != nil {
		snap.view.Store(snap.set.View(s.views.h, s.views.lat))
	}
	s.snap.Store(snap)
}

// View returns the health and RTT view queries are answered from now,
// for explaining an answer (gslb.Record.ExplainView); nil before a
// snapshot with a GSLB set is served.
func (s *Server) View() *gslb.View { return s.snap.Load().View() }

// CacheMisses returns how many cacheable UDP queries the reply cache did
// not answer (no entry, or a stale one).
func (s *Server) CacheMisses() uint64 { return s.stats.cacheMisses.Load() }

// CacheStale returns how many reply cache entries were found but not used
// because the health or RTTs their answer depended on changed.
func (s *Server) CacheStale() uint64 { return s.stats.cacheStale.Load() }

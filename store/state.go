package store

import (
	"cmp"
	"slices"
)

// State is an immutable view of the committed cluster state, built from the
// entries up to Index. It is never modified after it is published, so it may
// be read from any goroutine without locks. Slices returned by its methods
// are fresh copies (Content of a zone excepted: it is shared and must not be
// modified).
type State struct {
	index     uint64
	verdicts  shardMap[verdictKey, Transition]
	rtts      shardMap[rttKey, RTTSummary]
	overrides map[overrideKey]Override
	zones     map[string]ZoneUpdate
	members   map[string]MemberChange
	beats     map[string]Heartbeat  // by prober
	dnssec    *DNSSECKeys           // sealed zone keys (dnssec.go), nil for none
	loads     map[string]LoadReport // by node (load.go); replaced whole on change
}

type verdictKey struct{ Key, Prober string }
type rttKey struct{ Prober, Target string }
type overrideKey struct{ Kind, Name string }

func emptyState() *State {
	return &State{
		overrides: map[overrideKey]Override{},
		zones:     map[string]ZoneUpdate{},
		members:   map[string]MemberChange{},
		beats:     map[string]Heartbeat{},
		loads:     map[string]LoadReport{},
	}
}

// Index returns the Raft index of the last command applied to this state.
func (s *State) Index() uint64 { return s.index }

// Verdict returns prober's committed verdict for key.
func (s *State) Verdict(key, prober string) (Transition, bool) {
	return s.verdicts.get(verdictKey{key, prober})
}

// Verdicts returns every prober's verdict for key, ordered by prober.
func (s *State) Verdicts(key string) []Transition {
	var out []Transition
	for k, t := range s.verdicts.all() {
		if k.Key == key {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Transition) int { return cmp.Compare(a.Prober, b.Prober) })
	return out
}

// Transitions returns every verdict, ordered by key then prober.
func (s *State) Transitions() []Transition {
	out := make([]Transition, 0, s.verdicts.len())
	for _, t := range s.verdicts.all() {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Transition) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Prober, b.Prober))
	})
	return out
}

// RTT returns prober's RTT summary to the region or network name of kind.
func (s *State) RTT(prober, kind, name string) (RTTSummary, bool) {
	return s.rtts.get(rttKey{prober, kind + "/" + name})
}

// RTTs returns every RTT summary, ordered by prober then target.
func (s *State) RTTs() []RTTSummary {
	out := make([]RTTSummary, 0, s.rtts.len())
	for _, r := range s.rtts.all() {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RTTSummary) int {
		return cmp.Or(cmp.Compare(a.Prober, b.Prober), cmp.Compare(a.Target, b.Target))
	})
	return out
}

// Override returns the override on (kind, name), expired or not; check
// Override.Active.
func (s *State) Override(kind, name string) (Override, bool) {
	o, ok := s.overrides[overrideKey{kind, name}]
	return o, ok
}

// Overrides returns every override, ordered by kind then name.
func (s *State) Overrides() []Override {
	out := make([]Override, 0, len(s.overrides))
	for _, o := range s.overrides {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Override) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Zone returns the committed version of the zone name (a lower-case FQDN).
func (s *State) Zone(name string) (ZoneUpdate, bool) {
	z, ok := s.zones[name]
	return z, ok
}

// Zones returns every committed zone, ordered by name.
func (s *State) Zones() []ZoneUpdate {
	out := make([]ZoneUpdate, 0, len(s.zones))
	for _, z := range s.zones {
		out = append(out, z)
	}
	slices.SortFunc(out, func(a, b ZoneUpdate) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Members returns the recorded members (the last join of each node that has
// not left since), ordered by ID.
func (s *State) Members() []MemberChange {
	out := make([]MemberChange, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b MemberChange) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Heartbeats returns every prober's last heartbeat, ordered by prober.
func (s *State) Heartbeats() []Heartbeat {
	out := make([]Heartbeat, 0, len(s.beats))
	for _, h := range s.beats {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Heartbeat) int { return cmp.Compare(a.Prober, b.Prober) })
	return out
}

// Len returns the number of records in the state.
func (s *State) Len() int {
	return s.verdicts.len() + s.rtts.len() + len(s.overrides) + len(s.zones) + len(s.members) + len(s.beats)
}

// draft is a copy-on-write builder of the next State: verdicts and RTTs are
// sharded (see shardMap); the small maps are copied the first time a batch
// changes them.
type draft struct {
	base, next *State
	verdicts   shardDraft[verdictKey, Transition]
	rtts       shardDraft[rttKey, RTTSummary]
	copied     [6]bool
}

func newDraft(base *State) *draft {
	n := *base
	d := &draft{base: base, next: &n}
	d.verdicts.base = base.verdicts
	d.rtts.base = base.rtts
	return d
}

// done returns the next State.
func (d *draft) done() *State {
	d.next.verdicts = d.verdicts.result()
	d.next.rtts = d.rtts.result()
	return d.next
}

func (d *draft) overrides() map[overrideKey]Override {
	if !d.copied[2] {
		d.next.overrides, d.copied[2] = cloneMap(d.base.overrides), true
	}
	return d.next.overrides
}

func (d *draft) beats() map[string]Heartbeat {
	if !d.copied[5] {
		d.next.beats, d.copied[5] = cloneMap(d.base.beats), true
	}
	return d.next.beats
}

func (d *draft) zones() map[string]ZoneUpdate {
	if !d.copied[3] {
		d.next.zones, d.copied[3] = cloneMap(d.base.zones), true
	}
	return d.next.zones
}

func (d *draft) members() map[string]MemberChange {
	if !d.copied[4] {
		d.next.members, d.copied[4] = cloneMap(d.base.members), true
	}
	return d.next.members
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

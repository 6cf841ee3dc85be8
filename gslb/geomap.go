package gslb

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/zones"
)

// ordering is a preference order of regions for a class of clients.
type ordering struct {
	regions []int // indices into Set.regions, best first
	// recordOrder: the client's location is unknown, so after regions
	// (those that serve it explicitly) come the record's remaining pools
	// in the order the record lists them.
	recordOrder bool
}

// poolOrder returns the record's pools (indices into r.pools) in the
// ordering's preference.
func (o ordering) poolOrder(r *Record, s *Set) []int {
	var out []int
	used := make([]bool, len(r.pools))
	for _, reg := range o.regions {
		for i, pi := range r.pools {
			if !used[i] && s.pools[pi].region == reg {
				out = append(out, i)
				used[i] = true
			}
		}
	}
	if o.recordOrder {
		for i := range r.pools {
			if !used[i] {
				out = append(out, i)
			}
		}
	}
	return out
}

func (o ordering) key() string {
	return fmt.Sprint(o.regions, o.recordOrder)
}

// geoMap is the whole geo database merged with the regions' serves= lists
// into one binary trie per family whose leaves are orderings, as gdnsd
// does: a lookup is one walk down the trie, and the depth of the leaf is
// the honest ECS scope (adjacent networks with the same ordering are merged).
type geoMap struct {
	v4, v6  trie
	orders  []ordering
	unknown int // the ordering of clients the database does not place
}

// trie nodes: node n's children are nodes[2n] and nodes[2n+1]; a child is
// 0 (absent: unknown clients), leafBit|value, or the index of a node.
type trie struct {
	nodes []uint32
	// top is the trie's first rootBits levels as one table, indexed by the
	// address's first rootBits bits (built last, see index): a lookup
	// reads one entry there instead of walking 16 nodes, each a likely
	// cache miss when clients come from everywhere. An entry is either
	// leafBit | scope<<24 | ordering, the answer, or the node at depth
	// rootBits to walk on from. Nil: walk from the root.
	top   []uint32
	limit int // while building: merge when nodes grows to this
	// While building: the nodes on the path descend took last (path[d] is
	// the node at depth d) for the prefix last/lastBits, so that the next
	// network, which the database lists in address order, starts from
	// where their paths part rather than from the root. lastBits 0: none.
	path     [128]uint32
	last     [16]byte
	lastBits int
}

const leafBit = 1 << 31

// trieMergeAt is the size at which a trie being built is first merged.
var trieMergeAt = 1 << 16

func newTrie() trie { return trie{nodes: make([]uint32, 2, 1024), limit: trieMergeAt} }

func bitAt(a []byte, i int) int { return int(a[i>>3]>>(7-uint(i&7))) & 1 }

// commonBits is the length of the common prefix of a and b, at most n bits.
func commonBits(a, b *[16]byte, n int) int {
	for i := 0; i < 16 && i*8 < n; i++ {
		if x := a[i] ^ b[i]; x != 0 {
			return min(n, i*8+bits.LeadingZeros8(x))
		}
	}
	return n
}

// descend returns the slot for the prefix a/bits, creating nodes (and
// splitting leaves, whose value both halves inherit) on the way. bits > 0.
// It starts below the node where a's path leaves the previous call's.
func (t *trie) descend(a *[16]byte, bits int) int {
	d := 0
	if t.lastBits > 0 {
		// The nodes at depths up to where the two prefixes part are on
		// the last path, and still nodes: a leaf was set only at its end.
		d = commonBits(a, &t.last, min(bits, t.lastBits)-1)
	}
	n := int(t.path[d])
	t.last, t.lastBits = *a, bits
	for ; ; d++ {
		t.path[d] = uint32(n)
		slot := 2*n + bitAt(a[:], d)
		if d == bits-1 {
			return slot
		}
		v := t.nodes[slot]
		if v == 0 || v&leafBit != 0 {
			idx := uint32(len(t.nodes) / 2)
			t.nodes = append(t.nodes, v, v)
			t.nodes[slot] = idx
			n = int(idx)
			continue
		}
		n = int(v)
	}
}

// set sets the value of the prefix a/bits: its own slot, or both root
// slots for /0 (replacing the whole trie).
func (t *trie) set(a *[16]byte, bits int, v uint32) {
	if bits == 0 {
		t.nodes[0], t.nodes[1] = v, v
		t.lastBits = 0
		return
	}
	t.nodes[t.descend(a, bits)] = v
}

// slots returns the slots covering prefix a/bits: its own slot, or both root
// slots for /0.
func (t *trie) slots(a *[16]byte, bits int) []int {
	if bits == 0 {
		return []int{0, 1}
	}
	return []int{t.descend(a, bits)}
}

// apply calls f on every leaf value (or absent child, as 0) below slot and
// stores what it returns.
func (t *trie) apply(slot int, f func(uint32) uint32) {
	v := t.nodes[slot]
	if v != 0 && v&leafBit == 0 {
		t.apply(2*int(v), f)
		t.apply(2*int(v)+1, f)
		return
	}
	t.nodes[slot] = f(v)
}

// merge collapses nodes whose two children are the same leaf (or both
// absent) and returns the slot's new value.
func (t *trie) merge(slot int) uint32 {
	v := t.nodes[slot]
	if v == 0 || v&leafBit != 0 {
		return v
	}
	a, b := t.merge(2*int(v)), t.merge(2*int(v)+1)
	if a == b && (a == 0 || a&leafBit != 0) {
		t.nodes[slot] = a
		return a
	}
	return v
}

// compact copies the nodes still reachable after merge into a new slice.
// The next descend starts from the root.
func (t *trie) compact() {
	t.lastBits = 0
	out := make([]uint32, 2, len(t.nodes)/2+2)
	var walk func(from, to int)
	walk = func(from, to int) {
		for k := 0; k < 2; k++ {
			v := t.nodes[2*from+k]
			if v != 0 && v&leafBit == 0 {
				idx := len(out) / 2
				out = append(out, 0, 0)
				out[2*to+k] = uint32(idx)
				walk(int(v), idx)
			} else {
				out[2*to+k] = v
			}
		}
	}
	walk(0, 0)
	t.nodes = out
}

// lookup returns the ordering for a client and the prefix length it holds for.
func (m *geoMap) lookup(a netip.Addr) (int, uint8) {
	var t *trie
	var buf [16]byte
	var bits int
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		copy(buf[:], b[:])
		t, bits = &m.v4, 32
	} else {
		buf = a.As16()
		t, bits = &m.v6, 128
	}
	n, d := 0, 0
	if t.top != nil {
		e := t.top[int(buf[0])<<8|int(buf[1])]
		if e&leafBit != 0 {
			return int(e & topOrder), uint8(e >> 24 & 0x7f)
		}
		n, d = int(e), rootBits
	}
	for ; d < bits; d++ {
		v := t.nodes[2*n+bitAt(buf[:], d)]
		if v == 0 {
			return m.unknown, uint8(d + 1)
		}
		if v&leafBit != 0 {
			return int(v &^ leafBit), uint8(d + 1)
		}
		n = int(v)
	}
	return m.unknown, uint8(bits)
}

// rootBits is how many levels of a trie its top table holds; topOrder
// masks the ordering of a top table entry.
const (
	rootBits = 16
	topOrder = 1<<24 - 1
)

// index builds t.top for a finished trie whose unknown clients get
// ordering unknown; with too many orderings to encode it leaves t.top nil.
func (t *trie) index(orders, unknown int) {
	t.top = nil
	if orders > topOrder {
		return
	}
	top := make([]uint32, 1<<rootBits)
	var fill func(n, depth, prefix int)
	fill = func(n, depth, prefix int) {
		for k := 0; k < 2; k++ {
			v, p := t.nodes[2*n+k], prefix<<1|k
			if v != 0 && v&leafBit == 0 {
				if depth+1 == rootBits {
					top[p] = v
				} else {
					fill(int(v), depth+1, p)
				}
				continue
			}
			o := unknown
			if v != 0 {
				o = int(v &^ leafBit)
			}
			span := rootBits - depth - 1
			e := leafBit | uint32(depth+1)<<24 | uint32(o)
			for i := p << span; i < (p+1)<<span; i++ {
				top[i] = e
			}
		}
	}
	fill(0, 0, 0)
	t.top = top
}

// geoKey is what a client's ordering depends on, besides serves= prefixes.
type geoKey struct {
	country, continent string
	lat, lon           float64
	located            bool
}

// buildGeoMap merges db (nil: no database) with regions.
//
// Without serves= prefixes (the common case) each network's leaf is its
// final ordering from the start, and the trie is merged as it grows: a
// country database's million networks fall to a few hundred thousand nodes,
// and the build's peak stays near that. With prefixes, a leaf first holds
// the network's location (its key), prefixes are laid over them, and only
// then do leaves become orderings.
func buildGeoMap(db *geodata.DB, regions []*zones.Region) (*geoMap, error) {
	m := &geoMap{v4: newTrie(), v6: newTrie()}
	// serves= prefixes, shortest first so the most specific wins.
	type tagged struct {
		p       netip.Prefix
		regions []int
	}
	var tags []tagged
	byPrefix := map[netip.Prefix]int{}
	for ri, r := range regions {
		for _, p := range r.Prefixes {
			if i, ok := byPrefix[p]; ok {
				tags[i].regions = append(tags[i].regions, ri)
				continue
			}
			byPrefix[p] = len(tags)
			tags = append(tags, tagged{p, []int{ri}})
		}
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].p.Bits() < tags[j].p.Bits() })
	direct := len(tags) == 0

	// Equal orderings share an id; the unknown client's is the first.
	orderIdx := map[string]int{}
	orderOf := func(k geoKey, explicit []int) uint32 {
		o := orderFor(k, explicit, regions)
		key := o.key()
		id, ok := orderIdx[key]
		if !ok {
			id = len(m.orders)
			m.orders = append(m.orders, o)
			orderIdx[key] = id
		}
		return uint32(id)
	}
	m.unknown = int(orderOf(geoKey{}, nil))

	keys := []geoKey{{}}
	keyIdx := map[geoKey]uint32{{}: 0}
	keyLeaf := []uint32{0} // direct: the leaf of each key (0 for the unknown ordering, so it merges with absent)
	type combo struct{ key, tag uint32 }
	combos := []combo{{0, 0}}
	comboIdx := map[combo]uint32{{0, 0}: 0}
	comboOf := func(c combo) uint32 {
		if i, ok := comboIdx[c]; ok {
			return i
		}
		i := uint32(len(combos))
		combos = append(combos, c)
		comboIdx[c] = i
		return i
	}
	family := func(p netip.Prefix) (t *trie, a [16]byte) {
		if p.Addr().Is4() {
			b := p.Addr().As4()
			copy(a[:], b[:])
			return &m.v4, a
		}
		return &m.v6, p.Addr().As16()
	}
	if db != nil {
		lastKey, lastKi := geoKey{}, uint32(0) // networks in a row often share a location
		err := db.Walk(func(in geodata.Info) bool {
			if in.Country == "" && in.Continent == "" && !in.HasLocation {
				return true
			}
			k := geoKey{in.Country, in.Continent, in.Lat, in.Lon, in.HasLocation}
			ki := lastKi
			if k != lastKey || ki == 0 {
				var ok bool
				ki, ok = keyIdx[k]
				if !ok {
					ki = uint32(len(keys))
					keys = append(keys, k)
					keyIdx[k] = ki
					leaf := uint32(0)
					if direct {
						if id := orderOf(k, nil); int(id) != m.unknown {
							leaf = leafBit | id
						}
					}
					keyLeaf = append(keyLeaf, leaf)
				}
				lastKey, lastKi = k, ki
			}
			var v uint32
			if direct {
				v = keyLeaf[ki]
			} else {
				v = leafBit | comboOf(combo{ki, 0})
			}
			t, a := family(in.Network.Masked())
			t.set(&a, in.Network.Bits(), v)
			if direct && len(t.nodes) >= t.limit {
				t.merge(0)
				t.merge(1)
				t.compact()
				t.limit = max(2*len(t.nodes), trieMergeAt)
			}
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("geo database: %w", err)
		}
	}
	if !direct {
		for ti, tg := range tags {
			t, a := family(tg.p)
			tag := uint32(ti + 1)
			for _, s := range t.slots(&a, tg.p.Bits()) {
				t.apply(s, func(v uint32) uint32 {
					key := uint32(0)
					if v != 0 {
						key = combos[v&^leafBit].key
					}
					return leafBit | comboOf(combo{key, tag})
				})
			}
		}
		// Each combination becomes an ordering.
		comboOrder := make([]uint32, len(combos))
		for ci, c := range combos {
			var explicit []int
			if c.tag > 0 {
				explicit = tags[c.tag-1].regions
			}
			comboOrder[ci] = orderOf(keys[c.key], explicit)
		}
		for _, t := range []*trie{&m.v4, &m.v6} {
			unknownLeaf := leafBit | uint32(m.unknown)
			for s := 0; s < 2; s++ {
				t.apply(s, func(v uint32) uint32 {
					if v == 0 {
						return 0
					}
					if o := leafBit | comboOrder[v&^leafBit]; o != unknownLeaf {
						return o
					}
					return 0 // the unknown ordering: same as absent, so it merges
				})
			}
		}
	}
	for _, t := range []*trie{&m.v4, &m.v6} {
		t.merge(0)
		t.merge(1)
		t.compact()
		t.limit = 0
		t.index(len(m.orders), m.unknown)
	}
	return m, nil
}

// orderFor is the region preference of a client: the regions that serve it
// explicitly (a serves= prefix, else its country, else its continent),
// nearest first, then every other region with coordinates by distance.
func orderFor(k geoKey, explicit []int, regions []*zones.Region) ordering {
	tier := append([]int(nil), explicit...)
	if len(tier) == 0 && k.country != "" {
		for i, r := range regions {
			if contains(r.Countries, k.country) {
				tier = append(tier, i)
			}
		}
	}
	if len(tier) == 0 && k.continent != "" {
		for i, r := range regions {
			if contains(r.Continents, k.continent) {
				tier = append(tier, i)
			}
		}
	}
	if !k.located {
		return ordering{regions: tier, recordOrder: true}
	}
	dist := func(i int) float64 {
		r := regions[i]
		if !r.HasCoords {
			return math.Inf(1)
		}
		return greatCircle(k.lat, k.lon, r.Lat, r.Lon)
	}
	byDist := func(s []int) {
		sort.SliceStable(s, func(a, b int) bool { return dist(s[a]) < dist(s[b]) })
	}
	byDist(tier)
	var rest []int
	for i, r := range regions {
		if r.HasCoords && !containsInt(tier, i) {
			rest = append(rest, i)
		}
	}
	byDist(rest)
	return ordering{regions: append(tier, rest...)}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// greatCircle is the central angle between two points (haversine), in
// radians: proportional to the distance on the earth's surface.
func greatCircle(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * math.Atan2(math.Sqrt(a), math.Sqrt(1-a))
}

// GeoCache keeps the last merged geo map, so Sets compiled for a new
// health view (the same regions and database) reuse it. Safe for
// concurrent use.
type GeoCache struct {
	mu  sync.Mutex
	key string
	db  *geodata.DB
	m   *geoMap
}

func regionsKey(regions []*zones.Region) string {
	var b strings.Builder
	for _, r := range regions {
		fmt.Fprintf(&b, "%s|%v|%v|%v|%v|%v|%v;", r.Name, r.Lat, r.Lon, r.HasCoords, r.Countries, r.Continents, r.Prefixes)
	}
	return b.String()
}

func (c *GeoCache) get(db *geodata.DB, regions []*zones.Region) (*geoMap, error) {
	key := regionsKey(regions)
	if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m != nil && c.db == db && c.key == key {
			return c.m, nil
		}
	}
	m, err := buildGeoMap(db, regions)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.key, c.db, c.m = key, db, m
	}
	return m, nil
}

// geoMap returns the merged geo map of this compile, built once.
func (cx *compileCtx) geoMap() *geoMap {
	if cx.set.geo == nil {
		m, err := cx.env.GeoCache.get(cx.env.Geo, cx.set.regions)
		if err != nil {
			// The database was readable when it was opened; fall back to
			// serves= prefixes alone rather than fail every zone.
			m, _ = buildGeoMap(nil, cx.set.regions)
		}
		cx.set.geo = m
	}
	return cx.set.geo
}

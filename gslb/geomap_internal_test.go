package gslb

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
	"github.com/gslbd/gslb/zones"
)

// TestGeoMapDirectBuild checks the geo map built the direct way (no serves=
// prefixes: leaves are orderings from the start, merged as the trie grows)
// against the general way (leaves are locations until prefixes are laid
// over them), which a prefix in a range the database does not hold
// (240.0.0.0/8) forces: every address outside 224.0.0.0/3 gets the same
// ordering and the same scope (ST-01), and the trie merged while it grew is
// as small as the one merged at the end. A database of 6000 networks in runs
// of a few countries (fixed seed), the trie merged every 256 slots.
func TestGeoMapDirectBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	countries := []geodata.Info{
		{Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true},
		{Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true},
		{Country: "FR", Continent: "EU", Lat: 46, Lon: 2, HasLocation: true},
		{Country: "JP", Continent: "AS", Lat: 36, Lon: 138, HasLocation: true},
		{Country: "BR", Continent: "SA", Lat: -10, Lon: -55, HasLocation: true},
		{Country: "AU", Continent: "OC", Lat: -25, Lon: 133, HasLocation: true},
		{Country: "ZA", Continent: "AF", Lat: -29, Lon: 24, HasLocation: true},
	}
	nets := map[string]geodata.Info{}
	c := countries[0]
	for i := 0; i < 3000; i++ {
		if rng.IntN(4) == 0 {
			c = countries[rng.IntN(len(countries))]
		}
		nets[netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + i/256), byte(i), 0, 0}), 16).String()] = c
		nets[netip.PrefixFrom(netip.AddrFrom16([16]byte{0x2a, 0x00, byte(i >> 8), byte(i)}), 32).String()] = c
	}
	db, err := geodata.Open(geodatatest.Write(t, nets))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mergeAt := trieMergeAt
	trieMergeAt = 256
	defer func() { trieMergeAt = mergeAt }()
	regions := []*zones.Region{
		{Name: "ap-south", Lat: 1.35, Lon: 103.82, HasCoords: true, Continents: []string{"AS", "OC"}},
		{Name: "eu-west", Lat: 53.35, Lon: -6.26, HasCoords: true, Continents: []string{"EU", "AF"}},
		{Name: "us-east", Lat: 39.04, Lon: -77.49, HasCoords: true, Continents: []string{"NA", "SA"}, Countries: []string{"JP"}},
	}
	direct, err := buildGeoMap(db, regions)
	if err != nil {
		t.Fatal(err)
	}
	tagged := slices.Clone(regions)
	r := *tagged[0]
	r.Prefixes = []netip.Prefix{netip.MustParsePrefix("240.0.0.0/8")}
	tagged[0] = &r
	general, err := buildGeoMap(db, tagged)
	if err != nil {
		t.Fatal(err)
	}
	if d, g := len(direct.v4.nodes)+len(direct.v6.nodes), len(general.v4.nodes)+len(general.v6.nodes); d > g+64 {
		t.Errorf("direct trie has %d slots, the general one %d", d, g)
	}
	skip := netip.MustParsePrefix("224.0.0.0/3")
	for i := 0; i < 40000; i++ {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{byte(rng.IntN(16)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			if skip.Contains(a) {
				continue
			}
		} else {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x2a, byte(rng.IntN(2)), byte(rng.IntN(16)), byte(rng.Uint32())
			for k := 4; k < 16; k++ {
				b[k] = byte(rng.Uint32())
			}
			a = netip.AddrFrom16(b)
		}
		o1, s1 := direct.lookup(a)
		o2, s2 := general.lookup(a)
		if !slices.Equal(direct.orders[o1].regions, general.orders[o2].regions) || direct.orders[o1].recordOrder != general.orders[o2].recordOrder || s1 != s2 {
			t.Fatalf("%s: direct %v /%d, general %v /%d", a, direct.orders[o1], s1, general.orders[o2], s2)
		}
	}
}

// TestTrieDescendResumes checks that descend, which starts where the new
// prefix's path leaves the previous one's, builds the same trie as
// descending from the root every time: random IPv4 and IPv6 prefixes,
// some nested in others and some /0, inserted in address order (as the
// database lists them) and in random order, with merges in between.
func TestTrieDescendResumes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, bitLen := range []int{32, 128} {
		for _, sorted := range []bool{true, false} {
			var ps []netip.Prefix
			for i := 0; i < 3000; i++ {
				var a [16]byte
				for k := range a {
					a[k] = byte(rng.Uint32())
				}
				addr := netip.AddrFrom16(a)
				if bitLen == 32 {
					addr = netip.AddrFrom4([4]byte(a[:4]))
				}
				bits := 1 + rng.IntN(bitLen)
				if i%500 == 0 {
					bits = 0
				}
				ps = append(ps, netip.PrefixFrom(addr, bits).Masked())
			}
			if sorted {
				slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			}
			resumed, fresh := newTrie(), newTrie()
			for i, p := range ps {
				var a [16]byte
				if p.Addr().Is4() {
					copy(a[:], p.Addr().AsSlice())
				} else {
					a = p.Addr().As16()
				}
				v := leafBit | uint32(i%7)
				resumed.set(&a, p.Bits(), v)
				fresh.lastBits = 0
				fresh.set(&a, p.Bits(), v)
				if i%700 == 699 {
					for _, tr := range []*trie{&resumed, &fresh} {
						tr.merge(0)
						tr.merge(1)
						tr.compact()
					}
				}
			}
			if !slices.Equal(resumed.nodes, fresh.nodes) {
				t.Errorf("IPv%d prefixes, sorted %v: the trie built resuming paths differs from the one built from the root", map[int]int{32: 4, 128: 6}[bitLen], sorted)
			}
		}
	}
}

// TestGeoMapTopTable checks lookups through the tries' top tables against
// walks from the root: networks from /4 to /32 (and /8 to /64 in IPv6),
// so leaves lie above, at and below the table's depth, with addresses
// inside them, at their edges and in the gaps between them.
func TestGeoMapTopTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	locs := []geodata.Info{
		{Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true},
		{Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true},
		{Country: "JP", Continent: "AS", Lat: 36, Lon: 138, HasLocation: true},
		{Country: "BR", Continent: "SA", Lat: -10, Lon: -55, HasLocation: true},
	}
	nets := map[string]geodata.Info{}
	var addrs []netip.Addr
	for i := 0; i < 400; i++ {
		var b [16]byte
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		p4 := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), 4+rng.IntN(29)).Masked()
		b[0] = 0x20 | b[0]&0x0f
		p6 := netip.PrefixFrom(netip.AddrFrom16(b), 8+rng.IntN(57)).Masked()
		for _, p := range []netip.Prefix{p4, p6} {
			if _, ok := nets[p.String()]; ok || overlaps(nets, p) {
				continue
			}
			nets[p.String()] = locs[rng.IntN(len(locs))]
			last := netipLast(p)
			addrs = append(addrs, p.Addr(), last, p.Addr().Prev(), last.Next())
		}
	}
	for i := 0; i < 20000; i++ {
		var b [16]byte
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		addrs = append(addrs, netip.AddrFrom4([4]byte(b[:4])))
		b[0] = 0x20 | b[0]&0x0f
		addrs = append(addrs, netip.AddrFrom16(b))
	}
	db, err := geodata.Open(geodatatest.Write(t, nets))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	regions := []*zones.Region{
		{Name: "eu-west", Lat: 53.35, Lon: -6.26, HasCoords: true, Continents: []string{"EU"}},
		{Name: "us-east", Lat: 39.04, Lon: -77.49, HasCoords: true, Continents: []string{"NA", "SA"}},
	}
	m, err := buildGeoMap(db, regions)
	if err != nil {
		t.Fatal(err)
	}
	if m.v4.top == nil || m.v6.top == nil {
		t.Fatal("no top tables")
	}
	walk := *m
	walk.v4.top, walk.v6.top = nil, nil
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		o1, s1 := m.lookup(a)
		o2, s2 := walk.lookup(a)
		if o1 != o2 || s1 != s2 {
			t.Errorf("%s: ordering %d /%d through the top table, %d /%d walking", a, o1, s1, o2, s2)
		}
	}
}

// overlaps reports whether p overlaps a network of nets.
func overlaps(nets map[string]geodata.Info, p netip.Prefix) bool {
	for s := range nets {
		if netip.MustParsePrefix(s).Overlaps(p) {
			return true
		}
	}
	return false
}

// netipLast returns the last address of p.
func netipLast(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

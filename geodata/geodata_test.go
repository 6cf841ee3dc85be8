package geodata_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
)

// testNets maps the documentation prefixes to different countries. Later,
// more specific networks override parts of earlier ones.
var testNets = map[string]geodata.Info{
	"192.0.2.0/24":     {Country: "US", Continent: "NA", Subdivision: "CA", Lat: 37.39, Lon: -122.08, HasLocation: true},
	"198.51.100.0/24":  {Country: "DE", Continent: "EU"}, // no location: the country's centre is used
	"203.0.113.0/24":   {Country: "JP", Continent: "AS", Subdivision: "13", Lat: 35.69, Lon: 139.69, HasLocation: true},
	"203.0.113.128/25": {Country: "AU", Lat: -33.87, Lon: 151.21, HasLocation: true}, // no continent: from the table
	"2001:db8::/32":    {Country: "GB", Continent: "EU", Subdivision: "ENG", Lat: 51.51, Lon: -0.13, HasLocation: true},
	"2001:db8:1::/48":  {Country: "FR", Continent: "EU", Lat: 48.86, Lon: 2.35, HasLocation: true},
}

func openTestDB(t testing.TB) *geodata.DB {
	t.Helper()
	db, err := geodata.Open(geodatatest.Write(t, testNets))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func info(in geodata.Info, network string) geodata.Info {
	in.Network = netip.MustParsePrefix(network)
	return in
}

// ST-01, DNS-40: lookups against a test MMDB built with mmdbwriter; the
// matched network (the ECS scope) and addresses the database does not know.
func TestLookup(t *testing.T) {
	db := openTestDB(t)
	us := info(testNets["192.0.2.0/24"], "192.0.2.0/24")
	tests := []struct {
		name string
		addr string
		want geodata.Info
	}{
		{"v4 first", "192.0.2.1", us},
		{"v4 last", "192.0.2.255", us},
		{"v4-mapped v6", "::ffff:192.0.2.1", us},
		{"country centre when no location", "198.51.100.7",
			geodata.Info{Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true, Network: netip.MustParsePrefix("198.51.100.0/24")}},
		{"wider network split by a more specific one", "203.0.113.5", info(testNets["203.0.113.0/24"], "203.0.113.0/25")},
		{"continent from the table", "203.0.113.200",
			geodata.Info{Country: "AU", Continent: "OC", Lat: -33.87, Lon: 151.21, HasLocation: true, Network: netip.MustParsePrefix("203.0.113.128/25")}},
		{"v6 more specific", "2001:db8:1::5", info(testNets["2001:db8:1::/48"], "2001:db8:1::/48")},
		{"v6 remainder of the /32", "2001:db8:abcd::1", info(testNets["2001:db8::/32"], "2001:db8:8000::/33")},
		{"v6 with zone", "2001:db8::5%eth0", info(testNets["2001:db8::/32"], "2001:db8::/48")},
		{"v4 not in the database", "8.8.8.8", geodata.Info{Network: netip.MustParsePrefix("0.0.0.0/1")}},
		{"v4-mapped not in the database", "::ffff:8.8.8.8", geodata.Info{Network: netip.MustParsePrefix("0.0.0.0/1")}},
		{"v4 next to a known network", "192.0.3.1", geodata.Info{Network: netip.MustParsePrefix("192.0.3.0/24")}},
		{"v6 not in the database", "2400:cb00::1", geodata.Info{Network: netip.MustParsePrefix("2400::/6")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Lookup(netip.MustParseAddr(tc.addr))
			if err != nil {
				t.Fatalf("Lookup(%s): %v", tc.addr, err)
			}
			if got != tc.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
			}
		})
	}
}

// DNS-40: IPv4 and IPv4-mapped IPv6 give the same answer, found or not.
func TestLookupMappedEqualsV4(t *testing.T) {
	db := openTestDB(t)
	for _, s := range []string{"192.0.2.9", "198.51.100.200", "203.0.113.1", "203.0.113.129", "8.8.8.8", "10.0.0.1", "255.255.255.255", "0.0.0.0"} {
		a := netip.MustParseAddr(s)
		v4, err4 := db.Lookup(a)
		v6, err6 := db.Lookup(netip.AddrFrom16(a.As16()))
		if err4 != nil || err6 != nil {
			t.Fatalf("Lookup(%s): %v, %v", s, err4, err6)
		}
		if v4 != v6 {
			t.Errorf("Lookup(%s) = %+v, Lookup(::ffff:%s) = %+v", s, v4, s, v6)
		}
		if !v4.Network.Addr().Is4() || !v4.Network.Contains(a) {
			t.Errorf("Lookup(%s).Network = %s, want an IPv4 network containing it", s, v4.Network)
		}
	}
}

func TestLookupInvalidAddress(t *testing.T) {
	db := openTestDB(t)
	if _, err := db.Lookup(netip.Addr{}); err == nil {
		t.Fatal("Lookup(invalid address): no error")
	}
}

// Walk reports every network once, with the Info that Lookup gives,
// IPv4 as IPv4, and covers every address of the input.
func TestWalk(t *testing.T) {
	db := openTestDB(t)
	got := map[netip.Prefix]geodata.Info{}
	size := map[string]float64{} // addresses per country, per family
	err := db.Walk(func(in geodata.Info) bool {
		if _, dup := got[in.Network]; dup {
			t.Errorf("Walk: network %s reported twice", in.Network)
		}
		got[in.Network] = in
		if in.Network.Addr().Is4In6() {
			t.Errorf("Walk: IPv4 network reported as IPv6: %s", in.Network)
		}
		size[in.Country] += math.Exp2(float64(in.Network.Addr().BitLen() - in.Network.Bits()))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, in := range got {
		l, err := db.Lookup(p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if l != in {
			t.Errorf("Walk gave %+v, Lookup(%s) = %+v", in, p.Addr(), l)
		}
	}
	want := map[string]float64{
		"US": 256, "DE": 256, "JP": 128, "AU": 128,
		"GB": math.Exp2(96) - math.Exp2(80), "FR": math.Exp2(80),
	}
	if len(size) != len(want) {
		t.Errorf("Walk: countries %v, want %v", size, want)
	}
	for c, n := range want {
		if size[c] != n {
			t.Errorf("Walk: %s covers %g addresses, want %g", c, size[c], n)
		}
	}
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/25", "203.0.113.128/25", "2001:db8:1::/48"} {
		if _, ok := got[netip.MustParsePrefix(p)]; !ok {
			t.Errorf("Walk: network %s missing", p)
		}
	}

	calls := 0
	if err := db.Walk(func(geodata.Info) bool { calls++; return false }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Walk after fn returned false: %d calls, want 1", calls)
	}
}

// The cache holds one decoded record per database record; two
// addresses in one network share a result, different networks do not (even
// when the writer stored their equal records once).
func TestCache(t *testing.T) {
	same := geodata.Info{Country: "US", Continent: "NA", Lat: 40.71, Lon: -74.01, HasLocation: true}
	db, err := geodata.Open(geodatatest.Write(t, map[string]geodata.Info{
		"192.0.2.0/24":    same,
		"203.0.113.0/24":  same,
		"198.51.100.0/24": {Country: "SE", Continent: "EU", Lat: 59.33, Lon: 18.07, HasLocation: true},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lookup := func(s string) geodata.Info {
		t.Helper()
		in, err := db.Lookup(netip.MustParseAddr(s))
		if err != nil {
			t.Fatal(err)
		}
		return in
	}

	a, b := lookup("192.0.2.1"), lookup("192.0.2.254")
	if a != b || a.Network != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("one network, two results: %+v and %+v", a, b)
	}
	if n := geodata.CacheLen(db); n != 1 {
		t.Errorf("cache holds %d records after lookups in one network, want 1", n)
	}
	// Again, now from the cache.
	if c := lookup("192.0.2.77"); c != a {
		t.Errorf("cached result %+v, want %+v", c, a)
	}

	c := lookup("203.0.113.9")
	if c.Network != netip.MustParsePrefix("203.0.113.0/24") || c.Country != "US" {
		t.Errorf("Lookup(203.0.113.9) = %+v: want US in 203.0.113.0/24", c)
	}
	if c == a {
		t.Errorf("two networks share one result: %+v", c)
	}
	if n := geodata.CacheLen(db); n != 1 {
		t.Errorf("cache holds %d records after two networks with one record, want 1", n)
	}

	d := lookup("198.51.100.1")
	if d.Country != "SE" || d.Network != netip.MustParsePrefix("198.51.100.0/24") {
		t.Errorf("Lookup(198.51.100.1) = %+v: want SE in 198.51.100.0/24", d)
	}
	if n := geodata.CacheLen(db); n != 2 {
		t.Errorf("cache holds %d records, want 2", n)
	}
	for _, s := range []string{"8.8.8.8", "2001:db8::1"} {
		lookup(s)
	}
	if n := geodata.CacheLen(db); n != 2 {
		t.Errorf("cache holds %d records after misses, want 2 (misses are not cached)", n)
	}

	if raceEnabled {
		t.Log("allocation count skipped under -race")
		return
	}
	addr := netip.MustParseAddr("192.0.2.1")
	if allocs := testing.AllocsPerRun(100, func() { _, _ = db.Lookup(addr) }); allocs != 0 {
		t.Errorf("Lookup on a cache hit: %v allocations, want 0", allocs)
	}
}

// Concurrent lookups (run with -race) give the same answers as
// sequential ones on a fresh database.
func TestConcurrentLookups(t *testing.T) {
	var addrs []netip.Addr
	for i := 0; i < 256; i += 7 {
		for _, p := range []string{"192.0.2.%d", "198.51.100.%d", "203.0.113.%d", "10.9.8.%d", "2001:db8:%x::1", "2001:db8:1::%x", "::ffff:203.0.113.%d"} {
			addrs = append(addrs, netip.MustParseAddr(fmt.Sprintf(p, i)))
		}
	}
	want := make([]geodata.Info, len(addrs))
	ref := openTestDB(t)
	for i, a := range addrs {
		var err error
		if want[i], err = geodata.LookupUncached(ref, a); err != nil {
			t.Fatal(err)
		}
	}

	db := openTestDB(t)
	const workers, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for j := range addrs {
					i := (j + w*31 + r) % len(addrs)
					got, err := db.Lookup(addrs[i])
					if err != nil {
						errs <- err
						return
					}
					if got != want[i] {
						errs <- fmt.Errorf("Lookup(%s) = %+v, want %+v", addrs[i], got, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The embedded default maps well-known public addresses (whose
// registry data is unambiguous) to their countries.
func TestDefault(t *testing.T) {
	db, err := geodata.Default()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := geodata.Default(); again != db {
		t.Error("Default returned two databases")
	}
	tests := []struct{ addr, country, continent string }{
		{"8.8.8.8", "US", "NA"},              // Google Public DNS
		{"::ffff:8.8.8.8", "US", "NA"},       // the same, IPv4-mapped
		{"2001:4860:4860::8888", "US", "NA"}, // Google Public DNS over IPv6
		{"193.0.0.1", "NL", "EU"},            // RIPE NCC, Amsterdam
		{"2001:67c:2e8::1", "NL", "EU"},      // RIPE NCC over IPv6
		{"133.0.0.1", "JP", "AS"},            // 133.0.0.0/8, Japanese academic network
		{"200.160.0.1", "BR", "SA"},          // NIC.br
		{"1.1.1.1", "AU", "OC"},              // APNIC's research prefix, registered in AU
		{"41.0.0.1", "ZA", "AF"},             // AFRINIC space in South Africa
		{"203.119.0.1", "SG", "AS"},          // APNIC infrastructure
		{"2801:10::1", "AR", "SA"},           // LACNIC space in Argentina
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			got, err := db.Lookup(a)
			if err != nil {
				t.Fatal(err)
			}
			if got.Country != tc.country || got.Continent != tc.continent || !got.HasLocation || !got.Network.Contains(a.Unmap()) {
				t.Errorf("Lookup(%s) = %+v, want %s/%s with a location and a network containing it", tc.addr, got, tc.country, tc.continent)
			}
		})
	}
	for _, s := range []string{"10.1.2.3", "127.0.0.1", "fe80::1"} {
		got, err := db.Lookup(netip.MustParseAddr(s))
		if err != nil {
			t.Fatal(err)
		}
		if got.Country != "" || got.Continent != "" || !got.Network.Contains(netip.MustParseAddr(s)) || got.Network.Bits() == got.Network.Addr().BitLen() {
			t.Errorf("Lookup(%s) = %+v, want nothing known in an enclosing empty network", s, got)
		}
	}
	d := db.Describe()
	if !strings.HasPrefix(d, "embedded country database (built ") || !strings.HasSuffix(d, " networks)") {
		t.Errorf("Describe() = %q", d)
	}
	t.Log(d)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lookup(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("Lookup after Close of the default: %v", err)
	}
}

// Every network of the embedded default has a country, a continent
// and a location (the generator's country table covers all its codes), and
// Walk sees as many networks as Describe counts.
func TestDefaultWalk(t *testing.T) {
	if testing.Short() {
		t.Skip("walks a million networks")
	}
	db, err := geodata.Default()
	if err != nil {
		t.Fatal(err)
	}
	n, v4, countries := 0, 0, map[string]bool{}
	err = db.Walk(func(in geodata.Info) bool {
		n++
		if in.Network.Addr().Is4() {
			v4++
		}
		countries[in.Country] = true
		if in.Country == "" || in.Continent == "" || !in.HasLocation {
			t.Errorf("Walk: %+v: want country, continent and location", in)
			return false
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(", %d networks)", n); !strings.HasSuffix(db.Describe(), want) {
		t.Errorf("Describe() = %q, Walk saw %d networks", db.Describe(), n)
	}
	t.Logf("%d networks (%d IPv4), %d countries", n, v4, len(countries))
	if v4 == 0 || v4 == n || len(countries) < 200 {
		t.Errorf("Walk: %d networks, %d IPv4, %d countries: want both families and 200+ countries", n, v4, len(countries))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.mmdb")
	if err := os.WriteFile(junk, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	asn := geodatatest.WriteType(t, "GeoLite2-ASN", map[string]geodata.Info{"192.0.2.0/24": {}})
	tests := []struct {
		name, path string
		is         error
	}{
		{"missing file", filepath.Join(dir, "nope.mmdb"), os.ErrNotExist},
		{"not a database", junk, nil},
		{"ASN database", asn, geodata.ErrNotGeo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := geodata.Open(tc.path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%s): no error", tc.path)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("Open(%s): error %q does not name the file", tc.path, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Open(%s): error %q is not %v", tc.path, err, tc.is)
			}
		})
	}
}

func TestOpenAcceptsCountryAndDBIP(t *testing.T) {
	for _, typ := range []string{"GeoIP2-Country", "GeoLite2-City", "DBIP-City-Lite", "DBIP-Country-Lite", "DBIP-Location (compat=City)"} {
		t.Run(typ, func(t *testing.T) {
			db, err := geodata.Open(geodatatest.WriteType(t, typ, map[string]geodata.Info{"192.0.2.0/24": {Country: "CA"}}))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			got, err := db.Lookup(netip.MustParseAddr("192.0.2.1"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Country != "CA" || got.Continent != "NA" {
				t.Errorf("Lookup(192.0.2.1) = %+v, want CA/NA", got)
			}
			if !strings.Contains(db.Describe(), typ+" database ") || !strings.HasSuffix(db.Describe(), "(built 2023-11-14, 1 networks)") {
				t.Errorf("Describe() = %q", db.Describe())
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	db, err := geodata.Default()
	if err != nil {
		b.Fatal(err)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("193.0.0.1"),
		netip.MustParseAddr("133.0.0.1"), netip.MustParseAddr("200.160.0.1"),
		netip.MustParseAddr("41.0.0.1"), netip.MustParseAddr("203.119.0.1"),
		netip.MustParseAddr("2001:4860:4860::8888"), netip.MustParseAddr("2001:67c:2e8::1"),
	}
	for _, a := range addrs {
		if _, err := db.Lookup(a); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := db.Lookup(addrs[i%len(addrs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := db.Lookup(addrs[i%len(addrs)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := geodata.LookupUncached(db, addrs[i%len(addrs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWalk walks the whole embedded database, as a snapshot build that
// precomputes a tree would.
func BenchmarkWalk(b *testing.B) {
	db, err := geodata.Default()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := db.Walk(func(geodata.Info) bool { n++; return true }); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n), "networks")
	}
}

func writeTree(t *testing.T, opts mmdbwriter.Options, nets map[string]geodata.Info) string {
	t.Helper()
	opts.IncludeReservedNetworks = true
	tree, err := mmdbwriter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for s, in := range nets {
		_, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, geodatatest.Record(in)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "db.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

// DNS-40: the network of an unknown address keeps the address family in
// IPv4-only databases and in databases without IPv4 data.
func TestLookupOtherTreeShapes(t *testing.T) {
	us := geodata.Info{Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true}
	v4only := writeTree(t, mmdbwriter.Options{DatabaseType: "GeoIP2-Country", IPVersion: 4}, map[string]geodata.Info{"192.0.2.0/24": us})
	v6only := writeTree(t, mmdbwriter.Options{DatabaseType: "GeoIP2-Country"}, map[string]geodata.Info{"2001:db8::/32": us})
	v6noalias := writeTree(t, mmdbwriter.Options{DatabaseType: "GeoIP2-Country", DisableIPv4Aliasing: true}, map[string]geodata.Info{"2001:db8::/32": us})
	tests := []struct {
		name, db, addr string
		want           geodata.Info
	}{
		{"v4-only found", v4only, "192.0.2.1", info(us, "192.0.2.0/24")},
		{"v4-only mapped", v4only, "::ffff:192.0.2.1", info(us, "192.0.2.0/24")},
		{"v4-only not found", v4only, "8.8.8.8", geodata.Info{Network: netip.MustParsePrefix("0.0.0.0/1")}},
		{"v4-only asked for v6", v4only, "2001:db8::1", geodata.Info{Network: netip.MustParsePrefix("::/0")}},
		// The writer keeps a fixed node at ::/96 for the IPv4 subtree, so the
		// walk ends one bit below it.
		{"no v4 data", v6only, "8.8.8.8", geodata.Info{Network: netip.MustParsePrefix("0.0.0.0/1")}},
		{"no v4 data, no aliases", v6noalias, "8.8.8.8", geodata.Info{Network: netip.MustParsePrefix("0.0.0.0/0")}},
		{"no v4 data, v6 found", v6only, "2001:db8::1", info(us, "2001:db8::/32")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := geodata.Open(tc.db)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			got, err := db.Lookup(netip.MustParseAddr(tc.addr))
			if err != nil {
				t.Fatalf("Lookup(%s): %v", tc.addr, err)
			}
			if got != tc.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
			}
		})
	}
}

// More distinct records than the cache has slots: every lookup still gives
// the record of its own network, and the cache stays bounded.
func TestCacheEviction(t *testing.T) {
	const n = 40_000
	nets := make(map[string]geodata.Info, n)
	for i := range n {
		nets[fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff)] = geodata.Info{Country: "NZ", Lat: float64(i), Lon: 1, HasLocation: true}
	}
	db, err := geodata.Open(geodatatest.Write(t, nets))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := range 2 {
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			got, err := db.Lookup(a)
			if err != nil {
				t.Fatal(err)
			}
			if got.Lat != float64(i) || got.Country != "NZ" || got.Continent != "OC" || got.Network.Bits() != 24 || !got.Network.Contains(a) {
				t.Fatalf("round %d: Lookup(%s) = %+v, want Lat %d in its /24", round, a, got, i)
			}
		}
	}
	if c := geodata.CacheLen(db); c == 0 || c >= n {
		t.Errorf("cache holds %d records after %d distinct ones, want a bounded number", c, n)
	}
	t.Logf("cache holds %d of %d records", geodata.CacheLen(db), n)
}

package zones_test

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

var update = flag.Bool("update", false, "rewrite the .err golden files")

// load loads, links and compiles one file, as check-zone does.
func load(file string) error {
	z, err := zones.Load(file, "")
	if err != nil {
		return err
	}
	zs := []*zones.Zone{z}
	if err := zones.Link(zs); err != nil {
		return err
	}
	_, err = gslb.Compile(zs, gslb.Env{})
	return err
}

// TestBadZones is the golden test of load errors (ZL-01, ZL-04, ZL-05,
// ZL-07, ZL-08, ZL-12): each testdata/bad/X.zone fails with the messages in
// X.err, each naming file and line.
func TestBadZones(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.zone")
	if len(files) == 0 {
		t.Fatal("no test zones")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			err := load(f)
			if err == nil {
				t.Fatalf("%s loaded; want an error", f)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".zone") + ".err"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("%s errors:\n got: %s\nwant: %s", f, got, want)
			}
			if !strings.HasPrefix(got, f) {
				t.Errorf("error does not start with the file name: %s", got)
			}
		})
	}
}

// TestFullZone loads a zone using every extension and the RFC 1035 syntax
// corners (ZL-09): parentheses, $INCLUDE relative to the zone file,
// $GENERATE, escapes, RFC 3597 unknown types.
func TestFullZone(t *testing.T) {
	z, err := zones.Load("testdata/good/full.zone", "")
	if err != nil {
		t.Fatal(err)
	}
	if z.Origin != "full.example." || z.Serial() != 2026112301 {
		t.Errorf("origin %s serial %d", z.Origin, z.Serial())
	}
	have := map[string]bool{}
	for rr := range z.RRs.All() {
		have[rr.String()] = true
	}
	for _, want := range []string{
		"host1.full.example.\t300\tIN\tA\t192.0.2.1",
		"host3.full.example.\t300\tIN\tA\t192.0.2.3",
		"mail.full.example.\t300\tIN\tA\t192.0.2.25",
		"esc.full.example.\t300\tIN\tTXT\t\"AB\"",
		"unk.full.example.\t300\tCLASS1\tTYPE1000\t\\# 2 abcd", // miekg prints RFC 3597 records so
		"x.y.z.full.example.\t300\tIN\tA\t192.0.2.77",
	} {
		if !have[want] {
			t.Errorf("missing %q", want)
		}
	}
	if len(z.Regions) != 1 || len(z.Pools) != 2 || len(z.Records) != 1 {
		t.Fatalf("%d regions, %d pools, %d records; want 1, 2, 1", len(z.Regions), len(z.Pools), len(z.Records))
	}
	r := z.Regions[0]
	if r.Name != "eu" || r.Lat != 50 || r.Lon != 8 || !r.HasCoords ||
		strings.Join(r.Continents, ",") != "EU" || strings.Join(r.Countries, ",") != "DE" ||
		len(r.Prefixes) != 1 || r.Prefixes[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("region %+v", r)
	}
	if !strings.HasSuffix(r.Pos.String(), "inc/pools.inc:1") {
		t.Errorf("region position %s, want the include file, line 1", r.Pos)
	}
	p := z.Pools[0]
	want := zones.Check{Scheme: "https", Port: 8443, Path: "/health?x=1", Interval: 2 * time.Second, Timeout: time.Second,
		Fails: 2, Passes: 3, ExpectMin: 200, ExpectMax: 299, Body: "OK ; fine", HostHeader: "www.example.com",
		SNI: "www.example.com", Insecure: true, Method: "HEAD", Quorum: zones.QuorumAny}
	if p.Check != want {
		t.Errorf("check\n got %+v\nwant %+v", p.Check, want)
	}
	if p.Members[0].Weight != 3 || p.Members[1].Addr != netip.MustParseAddr("2001:db8::10") {
		t.Errorf("members %+v", p.Members)
	}
	d := z.Pools[1].Check
	if d.Scheme != "dns" || d.Port != 53 || d.QName != "example.com." || d.Quorum != 2 || d.Interval != zones.DefaultInterval || d.Timeout != 2*time.Second {
		t.Errorf("dns check %+v", d)
	}
	rec := z.Records[0]
	if rec.Name != "www.full.example." || rec.TTL != 30 || rec.Policy != "all" || rec.Options["answers"] != "1" || rec.Pos.Line != 12 {
		t.Errorf("record %+v", rec)
	}
	if err := zones.Link([]*zones.Zone{z}); err != nil {
		t.Fatal(err)
	}
}

// TestLink covers cluster-wide names: the same region in two zones is fine,
// a different definition is an error naming both places.
func TestLink(t *testing.T) {
	hdr := "$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n"
	a, err := zones.Parse([]byte(hdr+"$REGION eu lat=50 lon=8\n$POOL web region=eu members=192.0.2.10\n"), "a.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := zones.Parse([]byte(hdr+"$REGION eu lat=50 lon=8\nwww IN GSLB all pools=web\n"), "b.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := zones.Link([]*zones.Zone{a, b}); err != nil {
		t.Fatalf("same region twice, pool from another zone: %v", err)
	}
	c, _ := zones.Parse([]byte(hdr+"$REGION eu lat=51 lon=8\n"), "c.example.zone", "", false)
	err = zones.Link([]*zones.Zone{a, c})
	if err == nil || err.Error() != `c.example.zone:5: $REGION eu: defined differently at a.example.zone:5` {
		t.Fatalf("err = %v", err)
	}
}

func TestMixedTTLWarns(t *testing.T) {
	z, err := zones.Parse([]byte("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\nns1 60 IN A 192.0.2.2\n"), "w.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(z.Warnings) != 1 || !strings.Contains(z.Warnings[0].Error(), "w.example.zone:5: ns1.w.example. A: TTL 60 differs") {
		t.Fatalf("warnings %v", z.Warnings)
	}
	for rr := range z.RRs.All() {
		if rr.Header().Name == "ns1.w.example." && rr.Header().Ttl != 300 {
			t.Errorf("TTL not normalized: %v", rr)
		}
	}
}

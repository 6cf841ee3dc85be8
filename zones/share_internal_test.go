package zones

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// shareZone is a zone of more than two chunks of packed records: first is
// written before them, then n A records.
func shareZone(serial int, first string, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN s.test.\n$TTL 300\n@ IN SOA ns hm %d 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\n%s\n", serial, first)
	for i := range n {
		fmt.Fprintf(&b, "h%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	b.WriteString("x 300 IN A 192.0.2.2\n")
	b.WriteString("$REGION r1 lat=1 lon=1 serves=EU\n$POOL p1 region=r1 members=192.0.2.10\n")
	b.WriteString("g1 30 IN GSLB failover pools=p1\ng2 30 IN GSLB failover pools=p1\n")
	return []byte(b.String())
}

// records returns every record of z in text form.
func records(z *Zone) []string {
	var out []string
	for rr := range z.RRs.All() {
		out = append(out, rr.String())
	}
	return out
}

// sharedChunks counts the chunks of a that are b's.
func sharedChunks(a, b *Zone) int {
	n := 0
	for i, c := range a.RRs.chunks {
		if i < len(b.RRs.chunks) && len(c) > 0 && len(b.RRs.chunks[i]) > 0 && &c[0] == &b.RRs.chunks[i][0] {
			n++
		}
	}
	return n
}

// TestParseFromShares (ZL-02): a new version parsed from the previous one
// shares its unchanged chunks, its record order and its unchanged GSLB
// records, holds exactly the records a fresh parse holds, and leaves the
// previous version as it was, also when its own TTL fix lands in a shared
// chunk (copy on write); a different shape shares no order and fails
// SameShape.
func TestParseFromShares(t *testing.T) {
	const n = 80000 // about 2.5 chunks
	v1, err := Parse(shareZone(1, "x 300 IN A 192.0.2.1", n), "s.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	before := records(v1)
	if len(v1.RRs.chunks) < 3 {
		t.Fatalf("%d chunks; the test wants 3 or more", len(v1.RRs.chunks))
	}

	// Serial and rdata changed in the first chunk; the RRset x gets its
	// TTL from its first record, 100, so its record in the last chunk,
	// shared before the fix, is fixed in a copy.
	data2 := shareZone(2, "x 100 IN A 192.0.2.9", n)
	v2, err := ParseFrom(v1, data2, "s.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Parse(data2, "s.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := records(v2), records(fresh); !slices.Equal(got, want) {
		t.Errorf("ParseFrom holds other records than Parse (%d, %d)", len(got), len(want))
	}
	if got := records(v1); !slices.Equal(got, before) {
		t.Error("the previous version changed")
	}
	if s := sharedChunks(v2, v1); s != len(v1.RRs.chunks)-2 {
		t.Errorf("%d of %d chunks shared, want all but the first and the last", s, len(v1.RRs.chunks))
	}
	if &v2.RRs.off[0] != &v1.RRs.off[0] {
		t.Error("the record order was not shared")
	}
	if v2.Records[0] != v1.Records[0] || v2.Records[1] != v1.Records[1] {
		t.Error("unchanged GSLB records were not shared")
	}
	if !v2.RRs.SameShape(&v1.RRs) || !v2.RRs.SameShape(&fresh.RRs) {
		t.Error("SameShape: false for the same names and types")
	}

	// A new name: another shape.
	v3, err := ParseFrom(v2, shareZone(3, "y 300 IN A 192.0.2.1", n), "s.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if v3.RRs.SameShape(&v2.RRs) {
		t.Error("SameShape: true with a new name")
	}
	if got := records(v2); !slices.Equal(got, records(fresh)) {
		t.Error("the previous version changed")
	}
}

package zones_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/zones"
)

// TestPackedRecords checks the compact form of a zone's static records: grouped
// by owner name and type, an RRset in file order, duplicates dropped (names in
// rdata compared case-blind, RFC 2181 §5, also in large sets), TTLs unified,
// owner names in lower case, and every accessor agreeing with the unpacked
// record. The file has CRLF line ends and a line longer than the read buffer.
func TestPackedRecords(t *testing.T) {
	var b strings.Builder
	b.WriteString("$TTL 300\r\n@ IN SOA ns1 h 1 3600 600 1209600 60\r\n@ IN NS ns1\r\n")
	b.WriteString("www IN A 192.0.2.3\r\nns1 IN A 192.0.2.1\r\nwww IN A 192.0.2.1\r\n")
	b.WriteString("; " + strings.Repeat("x", 100000) + "\r\n")
	b.WriteString("@ IN NS NS1.P.EXAMPLE.\r\nwww 60 IN A 192.0.2.2\r\n\\087WW IN TXT \"t\"\r\n")
	for i := range 100 {
		fmt.Fprintf(&b, "big IN TXT \"%d\"\n", i)
	}
	b.WriteString("big IN TXT \"7\"\nbig IN TXT \"99\"\n")
	z, err := zones.Parse([]byte(b.String()), "p.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rr := range z.RRs.Packed() {
		u := rr.RR()
		if rr.Name() != u.Header().Name || rr.Type() != u.Header().Rrtype || rr.TTL() != u.Header().Ttl {
			t.Errorf("%v: accessors say %s %d %d", u, rr.Name(), rr.Type(), rr.TTL())
		}
		if u.Header().Rdlength != uint16(len(rr.Rdata())) {
			t.Errorf("%v: rdata %d bytes, want %d", u, len(rr.Rdata()), u.Header().Rdlength)
		}
		if rr.Type() == dns.TypeTXT && rr.Name() == "big.p.example." {
			continue
		}
		got = append(got, strings.ReplaceAll(u.String(), "\t", " "))
	}
	// The order of owner names is the package's; within a name, types
	// ascend and each RRset keeps the file's order.
	want := []string{
		"p.example. 300 IN NS ns1.p.example.",
		"p.example. 300 IN SOA ns1.p.example. h.p.example. 1 3600 600 1209600 60",
		"www.p.example. 300 IN A 192.0.2.3",
		"www.p.example. 300 IN A 192.0.2.1",
		"www.p.example. 300 IN A 192.0.2.2",
		"www.p.example. 300 IN TXT \"t\"",
		"ns1.p.example. 300 IN A 192.0.2.1",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	seen := map[string]bool{}
	last := ""
	big := 0
	for rr := range z.RRs.Packed() {
		key := rr.Name() + "/" + dns.TypeToString[rr.Type()]
		if key != last && seen[key] {
			t.Errorf("RRset %s is not in one piece", key)
		}
		seen[key], last = true, key
		if key == "big.p.example./TXT" {
			big++
		}
	}
	if big != 100 {
		t.Errorf("big TXT set has %d records, want 100 (two duplicates dropped)", big)
	}
	if n := z.RRs.Len(); n != len(want)+100 {
		t.Errorf("Len() = %d, want %d", n, len(want)+100)
	}
	if n := z.RRs.Names(); n != 4 {
		t.Errorf("Names() = %d, want 4 (apex, www, ns1, big)", n)
	}
	if len(z.Warnings) != 1 || !strings.Contains(z.Warnings[0].Error(), "p.example.zone:9: www.p.example. A: TTL 60 differs") {
		t.Errorf("warnings %v", z.Warnings)
	}
}

// TestPackedSize checks that a zone of many A records costs a few tens of
// bytes per record, not a dns.RR each.
func TestPackedSize(t *testing.T) {
	var b strings.Builder
	b.WriteString("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n")
	const n = 50000
	for i := range n {
		fmt.Fprintf(&b, "host%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	z, err := zones.Parse([]byte(b.String()), "s.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if z.RRs.Len() != n+3 {
		t.Fatalf("%d records, want %d", z.RRs.Len(), n+3)
	}
	// "host12345.s.example." is 21 bytes in wire form, plus 10 of header,
	// 4 of address and 4 of index: 39.
	if per := z.RRs.Bytes() / z.RRs.Len(); per > 48 {
		t.Errorf("%d bytes per A record, want at most 48", per)
	}
}

// TestLongLine: a line longer than a zone file may have is an error with
// its position, not a hang or a crash.
func TestLongLine(t *testing.T) {
	data := "$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n; " + strings.Repeat("x", 1<<20+10) + "\n@ IN NS ns1\n"
	_, err := zones.Parse([]byte(data), "l.example.zone", "", false)
	if err == nil || !strings.Contains(err.Error(), "l.example.zone:3: line longer than") {
		t.Fatalf("err = %v, want l.example.zone:3: line longer than ...", err)
	}
}

// TestGSLBRecordsShareText: GSLB records written alike share their parsed
// pools and options; records written differently do not.
func TestGSLBRecordsShareText(t *testing.T) {
	z, err := zones.Parse([]byte("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n"+
		"a 30 IN GSLB failover pools=p1,p2 empty=servfail\nb 60 IN GSLB failover pools=p1,p2 empty=servfail\nc 30 IN GSLB failover pools=p2,p1 empty=servfail\n"), "g.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := z.Records[0], z.Records[1], z.Records[2]
	if a.Name != "a.g.example." || b.Name != "b.g.example." || a.TTL != 30 || b.TTL != 60 || a.Pos.Line != 5 || b.Pos.Line != 6 {
		t.Errorf("records %+v %+v", a, b)
	}
	if &a.Pools[0] != &b.Pools[0] || reflect.ValueOf(a.Options).Pointer() != reflect.ValueOf(b.Options).Pointer() {
		t.Errorf("a and b are written alike but do not share their pools and options")
	}
	if &a.Pools[0] == &c.Pools[0] || c.Pools[0].Name != "p2" || c.Options["empty"] != "servfail" {
		t.Errorf("c: pools %v options %v", c.Pools, c.Options)
	}
}

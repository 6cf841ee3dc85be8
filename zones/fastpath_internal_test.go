package zones

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// TestFastPathSame parses random zone files (fixed seed) with the fast path
// for plain address records and with miekg/dns alone, and wants the same
// zone: every record byte for byte in the same order, the same GSLB
// records, warnings and errors, positions included (ZL-09, ZL-11). The lines
// mix what the fast path takes with what it must leave: blank owners after
// either kind of line, TTL and class in both orders, TTL units, other
// classes, multi-line records, quotes, escapes, comments, $ORIGIN, $TTL,
// $GENERATE, $INCLUDE-free directives, bad addresses, out-of-zone names.
func TestFastPathSame(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 15))
	owners := []string{"host%d", "@", "", "", "HoSt%d", "abs%d.fp.example.", "*.w%d", "x\\065%d", "sub%d"}
	ttls := []string{"", "", "60", "1h", "4294967295"}
	classes := []string{"", "", "IN", "in"}
	rdatas := []string{"A 192.0.2.%d", "a 10.0.%d.1", "AAAA 2001:db8::%x", "AAAA ::ffff:102:%d",
		"MX 10 mail%d", "TXT \"x y %d\"", "TXT ( \"a\"\n   \"b%d\" )", "A 192.0.2.%d ; c", "A 192.0.2.%d (\n )"}
	lines := []string{"", "; comment", "  ; indented comment", "$ORIGIN sub.fp.example.", "$ORIGIN rel", "$ORIGIN fp.example.",
		"$TTL 120", "$TTL 1h", "$GENERATE 1-3 gen$ A 10.9.9.$", "gslb%d 30 IN GSLB failover pools=p", " \t", "cname%d IN CNAME host1"}
	gslbs := []string{"GSLB failover pools=p,q%d", "gslb  weighted pools=p answers=%d", "GSLB geo pools=p@0%d", "GSLB all pools=p ; c%d"}
	// Lines that fail the load, now and then.
	bad := []string{"gsbad%d IN GSLB geo", "gsbad%d IN GSLB geo pools=p x=1 x=2", "out%d.other. IN A 192.0.2.1", "a..b IN A 192.0.2.1", "host%d CH A 192.0.2.1", "host%d 99999999999 IN A 192.0.2.1",
		"host%d IN A 300.1.1.1", "host%d IN A ::1", "host%d IN AAAA 192.0.2.1", "host%d IN CNAME elsewhere."}
	loaded, packed, lines1 := 0, 0, 0
	for round := 0; round < 400; round++ {
		var b strings.Builder
		if round%5 != 0 {
			b.WriteString("$TTL 300\n")
		}
		b.WriteString("@ IN SOA ns1 hostmaster 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n")
		if round%7 == 0 {
			b.WriteString("$REGION r1 serves=EU\n$POOL p region=r1 members=192.0.2.9\n")
		}
		for i := 0; i < 40; i++ {
			switch {
			case rng.IntN(100) == 0:
				fmt.Fprintf(&b, bad[rng.IntN(len(bad))], rng.IntN(8))
			case rng.IntN(5) == 0:
				l := lines[rng.IntN(len(lines))]
				if strings.Contains(l, "%d") {
					l = fmt.Sprintf(l, rng.IntN(1000))
				}
				b.WriteString(l)
			default:
				owner := owners[rng.IntN(len(owners))]
				if strings.Contains(owner, "%d") {
					owner = fmt.Sprintf(owner, rng.IntN(8))
				}
				if owner == "" {
					owner = "\t"
				}
				f := []string{owner}
				ttl, class := ttls[rng.IntN(len(ttls))], classes[rng.IntN(len(classes))]
				if rng.IntN(2) == 0 {
					f = append(f, ttl, class)
				} else {
					f = append(f, class, ttl)
				}
				rdata := rdatas[rng.IntN(len(rdatas))]
				if rng.IntN(8) == 0 {
					// A GSLB record, at a name of its own.
					rdata = gslbs[rng.IntN(len(gslbs))]
					if f[0] != "\t" {
						f[0] = fmt.Sprintf("gs%d", i)
					}
				}
				f = append(f, fmt.Sprintf(rdata, rng.IntN(40)))
				b.WriteString(strings.Join(f, " "))
			}
			if rng.IntN(10) == 0 {
				b.WriteString("\r")
			}
			b.WriteString("\n")
		}
		text := b.String()
		fastPath = true
		before := fastPacked.Load()
		z1, err1 := Parse([]byte(text), "fp.example.zone", "", false)
		if z1 != nil {
			packed += int(fastPacked.Load() - before)
			lines1 += z1.RRs.Len()
		}
		fastPath = false
		z2, err2 := Parse([]byte(text), "fp.example.zone", "", false)
		fastPath = true
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("round %d: errors differ:\nfast: %v\nslow: %v\nzone:\n%s", round, err1, err2, text)
		}
		if err1 != nil {
			continue
		}
		loaded++
		if msg := sameZone(z1, z2); msg != "" {
			t.Fatalf("round %d: %s\nzone:\n%s", round, msg, text)
		}
	}
	t.Logf("%d of 400 zones loaded; %d of their %d records packed by the fast path", loaded, packed, lines1)
	if loaded < 40 || packed < lines1/10 {
		t.Errorf("the comparison covers too little: %d zones loaded, %d of %d records on the fast path", loaded, packed, lines1)
	}
}

// sameErrors reports whether two parses failed alike: both not, or both at
// the same first position. The message may differ: after a record that
// miekg/dns cannot finish on its line (an SOA short of fields), it reads on
// into the next line and fails there, where the fast path has left it an
// empty line, so it fails there too, in other words.
func sameErrors(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	pos := func(err error) string {
		s := err.Error()
		if i := strings.Index(s, ": "); i >= 0 {
			return s[:i]
		}
		return s
	}
	return pos(a) == pos(b)
}

func sameZone(a, b *Zone) string {
	if a.Origin != b.Origin || a.RRs.Len() != b.RRs.Len() || len(a.Records) != len(b.Records) {
		return fmt.Sprintf("origin %s/%s, %d/%d records, %d/%d GSLB records", a.Origin, b.Origin, a.RRs.Len(), b.RRs.Len(), len(a.Records), len(b.Records))
	}
	for i := 0; i < a.RRs.Len(); i++ {
		if x, y := a.RRs.At(i), b.RRs.At(i); !bytes.Equal(x.Wire(), y.Wire()) {
			return fmt.Sprintf("record %d: fast %v, slow %v", i, x.RR(), y.RR())
		}
	}
	for i := range a.Records {
		if x, y := a.Records[i], b.Records[i]; !sameRecord(x, y) {
			return fmt.Sprintf("GSLB record %d: fast %+v, slow %+v", i, x, y)
		}
	}
	if fmt.Sprint(a.Warnings) != fmt.Sprint(b.Warnings) {
		return fmt.Sprintf("warnings: fast %v, slow %v", a.Warnings, b.Warnings)
	}
	return ""
}

// FuzzFastPathSame: on any input, parsing with the fast path and with
// miekg/dns alone gives the same zone, or the same errors.
func FuzzFastPathSame(f *testing.F) {
	f.Add([]byte("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n\tIN AAAA ::1\nwww 60 in a 10.0.0.1 ; c\n\tMX 10 www\n"))
	f.Add([]byte("$TTL 300\n$ORIGIN sub\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\nx ( IN A\n 10.0.0.1 )\n\tIN A 10.0.0.2\n"))
	f.Add([]byte("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\ng 30 IN GSLB failover pools=p,q answers=1\n\tIN TXT x\nh IN GSLB geo pools=p ; c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fastPath = true
		z1, err1 := Parse(data, "fuzz.example.zone", "", false)
		fastPath = false
		z2, err2 := Parse(data, "fuzz.example.zone", "", false)
		fastPath = true
		if !sameErrors(err1, err2) {
			t.Fatalf("errors differ:\nfast: %v\nslow: %v", err1, err2)
		}
		if err1 == nil && err2 == nil {
			if msg := sameZone(z1, z2); msg != "" {
				t.Fatal(msg)
			}
		}
	})
}

// TestParseIPv4 (ZL-09): the fast path's IPv4 parser accepts exactly what
// netip.ParseAddr accepts as an IPv4 address, with the same value.
func TestParseIPv4(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"1..2.3", ".1.2.3", "1.2.3.", "", "1.2.3.4x", "1.2.3.0004", "10.0.0.00", "1.2.3.-4", "999.1.1.1", "1.2.3.400"} {
		a, ok := parseIPv4([]byte(s))
		want, err := netip.ParseAddr(s)
		wok := err == nil && want.Is4()
		if ok != wok || ok && a != want.As4() {
			t.Errorf("%q: %v %v, netip says %v %v", s, a, ok, want, wok)
		}
	}
}

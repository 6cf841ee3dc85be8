package dnsserver_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
	"github.com/gslbd/gslb/gslb"
)

// TestExtendedErrors: REFUSED for a name in no zone carries EDE 20 (Not
// Authoritative), as Knot's does; SERVFAIL for a zone that never loaded
// carries EDE 14 (Not Ready); only with EDNS; a FORMERR to an EDNS query
// carries an OPT.
func TestExtendedErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.example.zone"), []byte("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\nwww IN A 1.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, false)
	edeOf := func(r *dns.Msg) int {
		if o := r.IsEdns0(); o != nil {
			for _, e := range o.Option {
				if ede, ok := e.(*dns.EDNS0_EDE); ok {
					return int(ede.InfoCode)
				}
			}
		}
		return -1
	}
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		edns  bool
		rcode int
		ede   int // -1: none
	}{
		{"REFUSED: not authoritative", "www.other.example.", dns.TypeA, true, dns.RcodeRefused, int(dns.ExtendedErrorCodeNotAuthoritative)},
		{"REFUSED without EDNS: no OPT", "www.other.example.", dns.TypeA, false, dns.RcodeRefused, -1},
		{"SERVFAIL: zone not loaded", "www.broken.example.", dns.TypeA, true, dns.RcodeServerFailure, int(dns.ExtendedErrorCodeNotReady)},
		{"FORMERR for a meta type keeps the OPT", "www.other.example.", dns.TypeOPT, true, dns.RcodeFormatError, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := query(tc.qname, tc.qtype)
			if tc.edns {
				m.SetEdns0(1232, false)
			}
			for _, network := range []string{"udp", "tcp"} {
				r := dnstest.Exchange(t, srv.Addr, network, m)
				if r.Rcode != tc.rcode || edeOf(r) != tc.ede || (r.IsEdns0() != nil) != tc.edns {
					t.Errorf("%s: %s/%s: rcode %s, EDE %d, OPT %v; want %s, EDE %d, OPT %v", network, tc.qname, dns.TypeToString[tc.qtype],
						dns.RcodeToString[r.Rcode], edeOf(r), r.IsEdns0() != nil, dns.RcodeToString[tc.rcode], tc.ede, tc.edns)
				}
			}
		})
	}
}

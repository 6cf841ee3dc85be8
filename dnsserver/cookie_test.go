package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCookieRFC9018 checks the server cookies against RFC 9018 Appendix A:
// the cookies handed out, and the ones the clients send back validate
// (reserved octets the client set, a cookie of the previous secret).
func TestCookieRFC9018(t *testing.T) {
	for _, tc := range []struct {
		name, secret, client, ip string
		at                       uint32
		want                     string
	}{
		{"A.1 new cookie", "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559731985, "2464c4abcf10c957010000005cf79f111f8130c3eee29480"},
		{"A.2 renewed", "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559734385, "2464c4abcf10c957010000005cf7a871d4a564a1442aca77"},
		{"A.3 another client", "e5e973e5a6b2a43f48e7dc849e37bfcf", "fc93fc62807ddb86", "203.0.113.203", 1559734700, "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e"},
		{"A.4 IPv6, new secret", "445536bcd2513298075a5d379663c962", "22681ab97d52c298", "2001:db8:220:1:59de:d0f4:8769:82b8", 1559741961, "22681ab97d52c298010000005cf7c609a6bb79d16625507a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newCookieSecrets(mustHex(t, tc.secret), nil)
			if err != nil {
				t.Fatal(err)
			}
			var c cookieState
			if !c.parse(&dns.EDNS0_COOKIE{Cookie: tc.client}) {
				t.Fatal("client cookie refused")
			}
			if got := s.reply(&c, netip.MustParseAddr(tc.ip), tc.at).Cookie; got != tc.want {
				t.Errorf("cookie %s, want %s", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, secret, old, ip, cookie string
		at                            uint32
		valid                         bool
	}{
		{"A.3 reserved octets set by the client", "e5e973e5a6b2a43f48e7dc849e37bfcf", "", "203.0.113.203", "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", 1559728000, true},
		{"the same from another address", "e5e973e5a6b2a43f48e7dc849e37bfcf", "", "203.0.113.204", "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", 1559728000, false},
		{"A.4 old secret during a rollover", "445536bcd2513298075a5d379663c962", "dd3bdf9344b678b185a6f5cb60fca715", "2001:db8:220:1:59de:d0f4:8769:82b8", "22681ab97d52c298010000005cf7c57926556bd0934c72f8", 1559741961, true},
		{"A.4 old secret after the rollover", "445536bcd2513298075a5d379663c962", "", "2001:db8:220:1:59de:d0f4:8769:82b8", "22681ab97d52c298010000005cf7c57926556bd0934c72f8", 1559741961, false},
		{"an hour and a second old", "e5e973e5a6b2a43f48e7dc849e37bfcf", "", "198.51.100.100", "2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985 + 3601, false},
		{"five minutes ahead", "e5e973e5a6b2a43f48e7dc849e37bfcf", "", "198.51.100.100", "2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985 - 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var old []byte
			if tc.old != "" {
				old = mustHex(t, tc.old)
			}
			s, err := newCookieSecrets(mustHex(t, tc.secret), old)
			if err != nil {
				t.Fatal(err)
			}
			var c cookieState
			if !c.parse(&dns.EDNS0_COOKIE{Cookie: tc.cookie}) {
				t.Fatal("cookie refused")
			}
			if s.check(&c, netip.MustParseAddr(tc.ip), tc.at); c.valid != tc.valid {
				t.Errorf("valid = %v, want %v", c.valid, tc.valid)
			}
		})
	}
}

// TestCookies: through the UDP reader, a client cookie gets a server
// cookie; sent back, it exempts the client from RRL; without it, a query
// over the rate gets BADCOOKIE with a fresh cookie; a malformed cookie is
// FORMERR with an OPT; no question and a cookie gets the cookie (RFC 7873
// §5.4).
func TestCookies(t *testing.T) {
	s := newTestServer(t)
	var err error
	if s.rrl, err = newRRL(RRL{Rate: 2, Slip: 1}); err != nil {
		t.Fatal(err)
	}
	r := testReader(s, "192.0.2.1:5300")
	ask := func(name, cookie string) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		if name != "" {
			m.SetQuestion(name, dns.TypeA)
		}
		m.SetEdns0(1232, false)
		if cookie != "" {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
		}
		pkt, _ := m.Pack()
		rep := new(dns.Msg)
		if err := rep.Unpack(r.handle(pkt)); err != nil {
			t.Fatalf("%s cookie %s: %v", name, cookie, err)
		}
		return rep
	}
	cookieOf := func(m *dns.Msg) string {
		if o := m.IsEdns0(); o != nil {
			for _, e := range o.Option {
				if c, ok := e.(*dns.EDNS0_COOKIE); ok {
					return c.Cookie
				}
			}
		}
		return ""
	}
	client := "2464c4abcf10c957"
	first := ask("mail.example.com.", client)
	full := cookieOf(first)
	if len(full) != 48 || full[:16] != client || first.Rcode != dns.RcodeSuccess || len(first.Answer) != 1 {
		t.Fatalf("reply to a client cookie: rcode %s, cookie %q", dns.RcodeToString[first.Rcode], full)
	}
	for i := 0; i < 10; i++ {
		if rep := ask("mail.example.com.", full); rep.Rcode != dns.RcodeSuccess || rep.Truncated || len(rep.Answer) != 1 {
			t.Fatalf("query %d with a valid cookie limited: %v", i, rep)
		}
	}
	bad := 0
	for i := 0; i < 6; i++ {
		rep := ask("mail.example.com.", client)
		if rep.Rcode == dns.RcodeBadCookie {
			bad++
			if c := cookieOf(rep); len(c) != 48 || c[:16] != client || len(rep.Answer) != 0 {
				t.Errorf("BADCOOKIE reply %v", rep)
			}
		}
	}
	if bad != 5 { // the first query counted: 1 of these 6 is within the rate
		t.Errorf("%d BADCOOKIE replies over the rate of 2, want 5", bad)
	}
	if rep := ask("mail.example.com.", "2464c4abcf10c9"); rep.Rcode != dns.RcodeFormatError || rep.IsEdns0() == nil {
		t.Errorf("7-byte cookie: rcode %s, OPT %v; want FORMERR with an OPT", dns.RcodeToString[rep.Rcode], rep.IsEdns0() != nil)
	}
	s.rrl = nil
	if rep := ask("", client); rep.Rcode != dns.RcodeSuccess || len(cookieOf(rep)) != 48 {
		t.Errorf("no question, client cookie: rcode %s cookie %q; want NOERROR and a server cookie", dns.RcodeToString[rep.Rcode], cookieOf(rep))
	}
	if rep := ask("", client+"010000005cf79f111f8130c3eee29480"); rep.Rcode != dns.RcodeBadCookie || len(cookieOf(rep)) != 48 {
		t.Errorf("no question, stale server cookie: rcode %s; want BADCOOKIE and a fresh cookie", dns.RcodeToString[rep.Rcode])
	}
	if rep := ask("", ""); rep.Rcode != dns.RcodeFormatError {
		t.Errorf("no question, no cookie: rcode %s, want FORMERR", dns.RcodeToString[rep.Rcode])
	}
}

// TestCookieCache: replies to cookie queries come from the reply cache
// (on the miekg/dns path: ANY), each with its own client's cookie (a server
// cookie valid for that client only), without allocating.
func TestCookieCache(t *testing.T) {
	s := newTestServer(t)
	s.rrl = nil
	ask := func(r *udpReader, cookie string) (*dns.Msg, []byte) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("mail.example.com.", dns.TypeANY)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
		pkt, _ := m.Pack()
		rep := new(dns.Msg)
		if err := rep.Unpack(r.handle(pkt)); err != nil {
			t.Fatal(err)
		}
		return rep, pkt
	}
	cookieOf := func(m *dns.Msg) string {
		for _, e := range m.IsEdns0().Option {
			if c, ok := e.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
		return ""
	}
	a, b := testReader(s, "192.0.2.1:5300"), testReader(s, "198.51.100.7:5300")
	ask(a, "1111111111111111") // fills the cache
	before := s.CacheHits()
	for i, tc := range []struct {
		r      *udpReader
		client string
		ip     string
	}{{a, "2222222222222222", "192.0.2.1"}, {b, "3333333333333333", "198.51.100.7"}, {a, "4444444444444444", "192.0.2.1"}} {
		rep, _ := ask(tc.r, tc.client)
		got := cookieOf(rep)
		if len(got) != 48 || got[:16] != tc.client || len(rep.Answer) != 1 {
			t.Fatalf("query %d: cookie %q answers %d", i, got, len(rep.Answer))
		}
		var c cookieState
		c.parse(&dns.EDNS0_COOKIE{Cookie: got})
		if s.cookies.check(&c, netip.MustParseAddr(tc.ip), cookieNow()); !c.valid {
			t.Errorf("query %d: server cookie %s not valid for %s", i, got[16:], tc.ip)
		}
		c.parse(&dns.EDNS0_COOKIE{Cookie: got})
		if s.cookies.check(&c, netip.MustParseAddr("203.0.113.1"), cookieNow()); c.valid {
			t.Errorf("query %d: server cookie valid for another address", i)
		}
	}
	if hits := s.CacheHits() - before; hits != 3 {
		t.Errorf("%d cache hits for 3 repeated cookie queries, want 3", hits)
	}
	_, pkt := ask(a, "2222222222222222")
	if n := testing.AllocsPerRun(100, func() { a.handle(pkt) }); n != 0 {
		t.Errorf("%v allocations per cached cookie query", n)
	}
}

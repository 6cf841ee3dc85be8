package probes_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/probes/probestest"
	"github.com/gslbd/gslb/zones"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// testTimeout is the timeout of checks whose outcome is not a timeout: long,
// so that a loaded machine (or the race detector) cannot turn an answer
// into a timeout.
const testTimeout = 10 * time.Second

// httpCheck is a check as zones.Parse fills it for check=SCHEME://:PORT/PATH.
func httpCheck(scheme string, port uint16, path string) zones.Check {
	return zones.Check{Scheme: scheme, Port: port, Path: path, Interval: 2 * testTimeout,
		Timeout: testTimeout, Fails: 3, Passes: 2, ExpectMin: 200, ExpectMax: 399, Method: "GET"}
}

func probe(t *testing.T, c *probes.Checker, tg probes.Target) probes.Result {
	t.Helper()
	return c.Probe(context.Background(), tg)
}

func TestTCPCheck(t *testing.T) {
	// PR-03
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	c := probes.NewChecker(probes.CheckerConfig{})
	tg := probes.Target{Check: zones.Check{Scheme: "tcp", Port: port, Timeout: testTimeout, Interval: 2 * testTimeout}, Addr: loopback}
	r := probe(t, c, tg)
	t.Logf("open: %+v", r)
	if !r.Up || r.RTT <= 0 || r.Duration <= 0 {
		t.Errorf("%s with a listener: %+v, want up with RTT and duration", tg, r)
	}
	ln.Close()
	r = probe(t, c, tg)
	t.Logf("closed: %+v", r)
	if r.Up || !strings.Contains(r.Reason, "refused") {
		t.Errorf("%s closed: %+v, want down, connection refused", tg, r)
	}
}

func TestHTTPCheck(t *testing.T) {
	// PR-04
	srv := probestest.NewServer(t)
	c := probes.NewChecker(probes.CheckerConfig{})
	port := srv.Addr.Port()
	long := strings.Repeat("x", probes.MaxBody) + "MARK"
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		edit       func(*zones.Check)
		up         bool
		reasonHas  string
		wantMethod string
	}{
		{name: "200 default", status: 200, body: "ok", up: true, reasonHas: "HTTP 200"},
		{name: "302 default range", status: 302, body: "", up: true},
		{name: "503", status: 503, body: "no", reasonHas: "status 503, want 200-399"},
		{name: "302 with expect=200-299", status: 302, edit: func(c *zones.Check) { c.ExpectMin, c.ExpectMax = 200, 299 }, reasonHas: "status 302, want 200-299"},
		{name: "404 with expect=404", status: 404, edit: func(c *zones.Check) { c.ExpectMin, c.ExpectMax = 404, 404 }, up: true},
		{name: "body found", status: 200, body: "status: healthy", edit: func(c *zones.Check) { c.Body = "healthy" }, up: true},
		{name: "body missing", status: 200, body: "status: sick", edit: func(c *zones.Check) { c.Body = "healthy" }, reasonHas: `no "healthy"`},
		{name: "body beyond 5120 bytes", status: 200, body: long, edit: func(c *zones.Check) { c.Body = "MARK" }, reasonHas: "first 5120 bytes"},
		{name: "HEAD", status: 200, edit: func(c *zones.Check) { c.Method = "HEAD" }, up: true, wantMethod: "HEAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Set(tc.status, tc.body)
			ck := httpCheck("http", port, "/healthz")
			if tc.edit != nil {
				tc.edit(&ck)
			}
			tg := probes.Target{Check: ck, Addr: loopback}
			r := probe(t, c, tg)
			if r.Up != tc.up || !strings.Contains(r.Reason, tc.reasonHas) {
				t.Errorf("%s: up=%v reason=%q, want up=%v reason containing %q", tg, r.Up, r.Reason, tc.up, tc.reasonHas)
			}
			reqs := srv.Requests()
			last := reqs[len(reqs)-1]
			if want := tc.wantMethod; want != "" && last.Method != want {
				t.Errorf("%s: method %s, want %s", tg, last.Method, want)
			}
			if last.Path != "/healthz" {
				t.Errorf("%s: path %q, want /healthz", tg, last.Path)
			}
		})
	}
}

func TestHTTPCheckHostHeader(t *testing.T) {
	// PR-04: host= sets the Host header; the member address stays the dial target.
	srv := probestest.NewServer(t)
	c := probes.NewChecker(probes.CheckerConfig{})
	ck := httpCheck("http", srv.Addr.Port(), "/")
	ck.HostHeader = "www.example.com"
	r := probe(t, c, probes.Target{Check: ck, Addr: loopback})
	reqs := srv.Requests()
	if !r.Up || len(reqs) != 1 || reqs[0].Host != "www.example.com" {
		t.Fatalf("result %+v, requests %+v: want up with Host www.example.com", r, reqs)
	}
}

func TestHTTPCheckHangingServer(t *testing.T) {
	// PR-03: a hanging server is a timeout, not a stuck prober.
	srv := probestest.NewServer(t)
	srv.Hang()
	c := probes.NewChecker(probes.CheckerConfig{})
	ck := httpCheck("http", srv.Addr.Port(), "/")
	ck.Timeout = 200 * time.Millisecond
	tg := probes.Target{Check: ck, Addr: loopback}
	r := probe(t, c, tg)
	t.Logf("hanging: up=%v reason=%q duration=%v", r.Up, r.Reason, r.Duration)
	if r.Up || !strings.Contains(r.Reason, "timeout after 200ms") {
		t.Fatalf("%s hanging: up=%v reason=%q, want a timeout", tg, r.Up, r.Reason)
	}
	if r.Duration < ck.Timeout {
		t.Errorf("%s: returned after %v, before the timeout %v", tg, r.Duration, ck.Timeout)
	}
	srv.Release()
	if r := probe(t, c, tg); !r.Up {
		t.Errorf("%s released: %+v, want up", tg, r)
	}
}

func TestHTTPSCheck(t *testing.T) {
	// PR-04: verification on by default, insecure= skips it, sni= names the
	// server, and the certificate's expiry is reported.
	ca := probestest.NewCA(t)
	expiry := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	ipSrv := probestest.NewTLSServer(t, ca.Issue(t, expiry, "127.0.0.1"))
	nameSrv := probestest.NewTLSServer(t, ca.Issue(t, expiry, "web.example"))
	trusting := probes.NewChecker(probes.CheckerConfig{RootCAs: ca.Pool()})
	system := probes.NewChecker(probes.CheckerConfig{})
	for _, tc := range []struct {
		name      string
		c         *probes.Checker
		srv       *probestest.Server
		sni       string
		insecure  bool
		up        bool
		reasonHas string
		wantSNI   string
	}{
		{name: "test CA trusted, IP SAN", c: trusting, srv: ipSrv, up: true},
		{name: "unknown CA", c: system, srv: ipSrv, reasonHas: "certificate"},
		{name: "unknown CA, insecure", c: system, srv: ipSrv, insecure: true, up: true},
		{name: "name cert without sni", c: trusting, srv: nameSrv, reasonHas: "certificate"},
		{name: "name cert with sni", c: trusting, srv: nameSrv, sni: "web.example", up: true, wantSNI: "web.example"},
		{name: "wrong sni", c: trusting, srv: nameSrv, sni: "other.example", reasonHas: "other.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck := httpCheck("https", tc.srv.Addr.Port(), "/")
			ck.SNI, ck.Insecure = tc.sni, tc.insecure
			tg := probes.Target{Check: ck, Addr: loopback}
			r := probe(t, tc.c, tg)
			if r.Up != tc.up || !strings.Contains(r.Reason, tc.reasonHas) {
				t.Fatalf("%s: up=%v reason=%q, want up=%v reason containing %q", tg, r.Up, r.Reason, tc.up, tc.reasonHas)
			}
			if tc.up && !r.CertExpiry.Equal(expiry) {
				t.Errorf("%s: cert expiry %v, want %v", tg, r.CertExpiry, expiry)
			}
			if tc.wantSNI != "" {
				reqs := tc.srv.Requests()
				if got := reqs[len(reqs)-1].SNI; got != tc.wantSNI {
					t.Errorf("%s: server saw SNI %q, want %q", tg, got, tc.wantSNI)
				}
			}
		})
	}
}

func TestDNSCheck(t *testing.T) {
	srv := probestest.NewDNSServer(t)
	c := probes.NewChecker(probes.CheckerConfig{})
	const refused, nxdomain = 5, 3
	for _, tc := range []struct {
		name      string
		rcode     int
		expect    int
		up        bool
		reasonHas string
	}{
		{name: "NOERROR", rcode: 0, up: true, reasonHas: "NOERROR"},
		{name: "REFUSED", rcode: refused, reasonHas: "rcode REFUSED, want NOERROR"},
		{name: "NXDOMAIN expected", rcode: nxdomain, expect: nxdomain, up: true, reasonHas: "NXDOMAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetRcode(tc.rcode)
			ck := zones.Check{Scheme: "dns", Port: srv.Addr.Port(), QName: "example.com.",
				Interval: 2 * testTimeout, Timeout: testTimeout, ExpectMin: tc.expect, ExpectMax: tc.expect}
			tg := probes.Target{Check: ck, Addr: loopback}
			r := probe(t, c, tg)
			if r.Up != tc.up || !strings.Contains(r.Reason, tc.reasonHas) {
				t.Errorf("%s: up=%v reason=%q, want up=%v reason containing %q", tg, r.Up, r.Reason, tc.up, tc.reasonHas)
			}
			if tc.up && r.RTT <= 0 {
				t.Errorf("%s: no RTT measured", tg)
			}
		})
	}
}

func TestDNSCheckNoAnswer(t *testing.T) {
	// A DNS server that never answers is a timeout.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	ck := zones.Check{Scheme: "dns", Port: port, QName: "example.com.", Interval: time.Second, Timeout: 100 * time.Millisecond}
	r := probe(t, probes.NewChecker(probes.CheckerConfig{}), probes.Target{Check: ck, Addr: loopback})
	if r.Up || !strings.Contains(r.Reason, "timeout") {
		t.Errorf("silent dns server: %+v, want down by timeout", r)
	}
}

// TestThresholds runs real probes against a real server through the
// hysteresis counter: exactly Fails failures take it down, exactly Passes
// successes bring it back.
func TestThresholds(t *testing.T) {
	// PR-01
	srv := probestest.NewServer(t)
	c := probes.NewChecker(probes.CheckerConfig{})
	for _, th := range []struct{ fails, passes int }{{3, 2}, {1, 1}, {5, 4}} {
		ck := httpCheck("http", srv.Addr.Port(), "/")
		ck.Fails, ck.Passes = th.fails, th.passes
		tg := probes.Target{Check: ck, Addr: loopback}
		h := probes.Hysteresis{Fails: th.fails, Passes: th.passes}
		srv.Set(200, "ok")
		for range 3 {
			if h.Observe(probe(t, c, tg).Up) || !h.Up() {
				t.Fatalf("fails=%d: healthy server went down", th.fails)
			}
		}
		srv.Set(500, "down")
		for i := 1; i <= th.fails; i++ {
			changed := h.Observe(probe(t, c, tg).Up)
			if want := i == th.fails; changed != want || h.Up() == want {
				t.Fatalf("fails=%d: failure %d: changed=%v up=%v, want changed=%v", th.fails, i, changed, h.Up(), want)
			}
		}
		srv.Set(200, "ok")
		for i := 1; i <= th.passes; i++ {
			changed := h.Observe(probe(t, c, tg).Up)
			if want := i == th.passes; changed != want || h.Up() != want {
				t.Fatalf("passes=%d: success %d: changed=%v up=%v, want changed=%v", th.passes, i, changed, h.Up(), want)
			}
		}
	}
}

func TestTargetsFromZones(t *testing.T) {
	web := zones.Check{Scheme: "http", Port: 80, Path: "/healthz"}
	dnsc := zones.Check{Scheme: "dns", Port: 53}
	z := &zones.Zone{Origin: "example.com.", Pools: []*zones.Pool{
		{Name: "web-us", Members: []zones.Member{{Addr: addr4(10)}, {Addr: addr4(11)}}, Check: web},
		{Name: "web-all", Members: []zones.Member{{Addr: addr4(10)}}, Check: web},
		{Name: "static", Members: []zones.Member{{Addr: addr4(12)}}},
		{Name: "ns", Members: []zones.Member{{Addr: addr4(53)}}, Check: dnsc},
	}}
	ts := probes.TargetsFromZones(z)
	var got []string
	for _, tg := range ts {
		got = append(got, tg.String()+" "+tg.Zone)
	}
	want := []string{
		"http://192.0.2.10:80/healthz example.com.",
		"http://192.0.2.11:80/healthz example.com.",
		"http://192.0.2.10:80/healthz example.com.",
		"dns://192.0.2.53:53 example.com.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("TargetsFromZones:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ts[0].Key() != ts[2].Key() || ts[0].Key() != web.Key(addr4(10)) {
		t.Errorf("one member in two pools with one check: keys %q and %q, want both %q", ts[0].Key(), ts[2].Key(), web.Key(addr4(10)))
	}
}

func addr4(i byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, i}) }

func TestDNSCheckQueriesZoneOrigin(t *testing.T) {
	// A dns check without qname= asks for its zone's SOA.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		got <- append([]byte(nil), buf[:n]...)
		buf[2] |= 0x80
		pc.WriteTo(buf[:n], from)
	}()
	ck := zones.Check{Scheme: "dns", Port: uint16(pc.LocalAddr().(*net.UDPAddr).Port), Interval: 2 * testTimeout, Timeout: testTimeout}
	r := probe(t, probes.NewChecker(probes.CheckerConfig{}), probes.Target{Check: ck, Addr: loopback, Zone: "example.com."})
	if !r.Up {
		t.Fatalf("dns check: %+v", r)
	}
	q := <-got
	wantQ := "\x07example\x03com\x00\x00\x06\x00\x01" // example.com. SOA IN
	if len(q) < 12 || string(q[12:]) != wantQ || q[2]&0x01 != 0 {
		t.Errorf("query %q, want question %q without RD", q, wantQ)
	}
}

func TestIPv6Member(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("v6 ok"))
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	c := probes.NewChecker(probes.CheckerConfig{})
	v6 := netip.IPv6Loopback()
	for _, ck := range []zones.Check{
		{Scheme: "tcp", Port: port, Timeout: testTimeout},
		func() zones.Check { ck := httpCheck("http", port, "/"); ck.Body = "v6"; return ck }(),
	} {
		tg := probes.Target{Check: ck, Addr: v6}
		if r := probe(t, c, tg); !r.Up {
			t.Errorf("%s: %+v, want up", tg, r)
		}
	}
	if s := (probes.Target{Check: httpCheck("http", 80, "/h"), Addr: v6}).String(); s != "http://[::1]:80/h" {
		t.Errorf("IPv6 target string %q", s)
	}
}

// Package dnstest starts DNS servers for tests and checks their answers
// the way dig shows them, like net/http/httptest does for HTTP.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/gslb"
)

// Server is a running test server.
type Server struct {
	*dnsserver.Server
	Addr   string // UDP and TCP address, "127.0.0.1:PORT"
	Dir    string // the zones directory
	Loader *dnsserver.Loader
}

// Start writes files (name to content) into a temporary zones directory and
// starts a server for them on 127.0.0.1 with a free port. It fails the test
// if any zone does not load. The server stops when the test ends.
func Start(t testing.TB, files map[string]string, cfg dnsserver.Config) *Server {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return StartDir(t, dir, cfg, gslb.Env{}, true)
}

// StartDir serves the zones of dir, compiled against env. With strict, any
// load error fails the test. Response-rate limiting is off unless
// cfg.RRL.Rate is set, and then applies to loopback clients.
func StartDir(t testing.TB, dir string, cfg dnsserver.Config, env gslb.Env, strict bool) *Server {
	t.Helper()
	if cfg.Addrs == nil {
		cfg.Addrs = []string{"127.0.0.1:0"}
	}
	if cfg.NSID == "" {
		cfg.NSID = "test-node"
	}
	if cfg.RRL.Rate == 0 {
		// Tests ask one name many times from one address: response-rate
		// limiting is off unless the test sets a rate.
		cfg.RRL.Off = true
	} else {
		cfg.RRL.LimitLoopback = true // the test's clients are on loopback
	}
	srv, err := dnsserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &dnsserver.Loader{Dir: dir, Env: env}
	snap, errs := l.Load()
	if strict && len(errs) > 0 {
		t.Fatalf("zones did not load: %v", errs)
	}
	srv.Swap(snap)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &Server{Server: srv, Addr: srv.UDPAddrs()[0].String(), Dir: dir, Loader: l}
}

// Exchange sends m over "udp" or "tcp" and returns the reply.
func Exchange(t testing.TB, addr, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: dns.MaxMsgSize}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s/%s: %v", network, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return r
}

// Case is one query and the reply expected, written as dig prints records.
// Answer, Ns and Extra are compared as sets of records in presentation
// format (OPT excluded); nil means "not checked", an empty slice means
// "must be empty".
type Case struct {
	Name   string
	Qname  string
	Qtype  uint16
	TCP    bool
	EDNS   bool
	Rcode  int
	AA     bool
	TC     bool
	Answer []string
	Ns     []string
	Extra  []string
}

// Query builds the message for c.
func (c Case) Query() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(c.Qname, c.Qtype)
	m.RecursionDesired = false
	if c.EDNS {
		m.SetEdns0(1232, false)
	}
	return m
}

// Run runs every case against addr, each as a subtest.
func Run(t *testing.T, addr string, cases []Case) {
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			network := "udp"
			if c.TCP {
				network = "tcp"
			}
			r := Exchange(t, addr, network, c.Query())
			Check(t, c, r)
		})
	}
}

// Check compares reply r with what c expects.
func Check(t testing.TB, c Case, r *dns.Msg) {
	t.Helper()
	q := fmt.Sprintf("%s/%s", c.Qname, dns.TypeToString[c.Qtype])
	if r.Rcode != c.Rcode {
		t.Errorf("%s: rcode = %s, want %s", q, dns.RcodeToString[r.Rcode], dns.RcodeToString[c.Rcode])
	}
	if r.Authoritative != c.AA {
		t.Errorf("%s: AA = %v, want %v", q, r.Authoritative, c.AA)
	}
	if r.Truncated != c.TC {
		t.Errorf("%s: TC = %v, want %v", q, r.Truncated, c.TC)
	}
	if r.RecursionAvailable {
		t.Errorf("%s: RA set; an authoritative server never offers recursion", q)
	}
	section(t, q, "answer", r.Answer, c.Answer)
	section(t, q, "authority", r.Ns, c.Ns)
	section(t, q, "additional", r.Extra, c.Extra)
}

func section(t testing.TB, q, name string, got []dns.RR, want []string) {
	t.Helper()
	if want == nil {
		return
	}
	var g []string
	for _, rr := range got {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		g = append(g, Normalize(rr.String()))
	}
	w := make([]string, len(want))
	for i, s := range want {
		w[i] = Normalize(MustRR(t, s).String())
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: %s section\n got: %s\nwant: %s", q, name, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
	}
}

// MustRR parses one record in presentation format.
func MustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("bad record %q: %v", s, err)
	}
	return rr
}

// Normalize folds blanks so records compare as dig prints them.
func Normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// Raw sends raw bytes over UDP to addr and returns the reply, or nil when
// none comes within wait.
func Raw(t testing.TB, addr string, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

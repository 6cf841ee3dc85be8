//go:build e2e

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// backend is a real HTTP server with a health endpoint on one loopback
// address, which the test can stop and start again on the same port.
type backend struct {
	addr string // ip:port
	srv  *http.Server
}

func (b *backend) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatalf("listen %s: %v", b.addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	b.srv = &http.Server{Handler: mux}
	go b.srv.Serve(ln)
}

func (b *backend) stop() { b.srv.Close() }

// twoBackends listens on 127.0.0.21 and 127.0.0.22 with one port free on both.
func twoBackends(t *testing.T) (*backend, *backend, string) {
	t.Helper()
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.21:0")
		if err != nil {
			t.Skipf("cannot listen on 127.0.0.21 (%v): this test needs the whole 127/8 loopback", err)
		}
		port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
		ln2, err := net.Listen("tcp", "127.0.0.22:"+port)
		ln.Close()
		if err != nil {
			continue
		}
		ln2.Close()
		a, b := &backend{addr: "127.0.0.21:" + port}, &backend{addr: "127.0.0.22:" + port}
		a.start(t)
		b.start(t)
		t.Cleanup(func() { a.stop(); b.stop() })
		return a, b, port
	}
	t.Fatal("no port free on both loopback addresses")
	return nil, nil, ""
}

func answersOf(t *testing.T, addr, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestHealthFailover is issue 5's end to end on one node: a GSLB record over
// two pools whose members' health endpoints are real HTTP servers; stopping
// one takes its address out of the answers, starting it brings it back
// (PR-01 thresholds seen from outside; CH-01/CH-02 on one node).
func TestHealthFailover(t *testing.T) {
	_, b, port := twoBackends(t)
	dir := t.TempDir()
	writeFile(t, dir, "health.example.zone", fmt.Sprintf(`$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 127.0.0.1
$REGION one lat=50 lon=8
$REGION two lat=40 lon=-75
$POOL p1 region=one members=127.0.0.21 check=http://:%s/healthz interval=1s fails=2 passes=2
$POOL p2 region=two members=127.0.0.22 check=http://:%s/healthz interval=1s fails=2 passes=2
www 5 IN GSLB all pools=p1,p2
`, port, port))
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--admin", "127.0.0.1:0", "--node", "n1", "--region", "one")
	dnsAddr := p.ready["dns"]
	both := []string{"127.0.0.21", "127.0.0.22"}
	waitFor(t, "both members up", 20*time.Second, func() bool { return slices.Equal(answersOf(t, dnsAddr, "www.health.example."), both) })

	b.stop()
	stopped := time.Now()
	waitFor(t, "127.0.0.22 out of the answers", 20*time.Second, func() bool {
		return slices.Equal(answersOf(t, dnsAddr, "www.health.example."), []string{"127.0.0.21"})
	})
	t.Logf("detection: %v from stop to changed answer (interval=1s fails=2)", time.Since(stopped).Round(10*time.Millisecond))

	// The status API and the metrics say the same.
	var st struct {
		Members []struct {
			Member string
			Up     bool
			Known  bool
		}
	}
	getJSON(t, "http://"+p.ready["admin"]+"/api/v1/status", &st)
	for _, m := range st.Members {
		if m.Member == "127.0.0.22" && (m.Up || !m.Known) {
			t.Errorf("status says 127.0.0.22 up=%v known=%v", m.Up, m.Known)
		}
	}
	metrics := getText(t, "http://"+p.ready["admin"]+"/metrics")
	for _, want := range []string{"gslb_dns_responses_total{", "gslb_probe_transitions_total", "gslb_member_verdict"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	b.start(t)
	waitFor(t, "127.0.0.22 back", 20*time.Second, func() bool { return slices.Equal(answersOf(t, dnsAddr, "www.health.example."), both) })
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

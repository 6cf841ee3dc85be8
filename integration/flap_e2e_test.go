//go:build e2e

package integration

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestFlapping is CH-03 (and PR-02 seen from outside): a member whose health
// endpoint flips between 200 and 503 every 700 ms, checked every 500 ms with
// fails=4 passes=4, never leaves the answers: no run of four equal results
// fits in one phase. Then it stays down, and is taken out after four
// failures, which shows the check is live.
func TestFlapping(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.23:0")
	if err != nil {
		t.Skipf("this test needs the whole 127/8 loopback: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	began := time.Now()
	var down atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() || (time.Since(began)/(700*time.Millisecond))%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// A steady, checked member too: a prober that sees every target down is
	// suspect and not counted, so it needs one that stays up.
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.24:%d", port))
	if err != nil {
		t.Skipf("port %d not free on 127.0.0.24: %v", port, err)
	}
	steady := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })}
	go steady.Serve(ln2)
	t.Cleanup(func() { steady.Close() })
	dir := t.TempDir()
	writeFile(t, dir, "flap.example.zone", fmt.Sprintf(`$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 127.0.0.1
$REGION one lat=50 lon=8
$POOL flappy region=one members=127.0.0.23 check=http://:%d/healthz interval=500ms fails=4 passes=4
$POOL steady region=one members=127.0.0.24 check=http://:%d/healthz interval=500ms fails=4 passes=4
www 5 IN GSLB all pools=flappy,steady
`, port, port))
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--admin", "127.0.0.1:0", "--node", "n1")
	both := []string{"127.0.0.23", "127.0.0.24"}
	deadline := time.Now().Add(12 * time.Second)
	queries := 0
	for time.Now().Before(deadline) {
		if got := answersOf(t, p.ready["dns"], "www.flap.example."); !slices.Equal(got, both) {
			t.Fatalf("after %v of flapping the answer is %v, want both members", time.Since(began).Round(time.Millisecond), got)
		}
		queries++
		time.Sleep(50 * time.Millisecond)
	}
	var events []struct{ Key, From, To string }
	getJSON(t, "http://"+p.ready["admin"]+"/api/v1/events", &events)
	for _, e := range events {
		if e.To == "down" {
			t.Errorf("a transition to down during the flapping: %+v", e)
		}
	}
	t.Logf("%d queries over 12 s of flapping: the member never left the answers", queries)

	down.Store(true)
	waitFor(t, "the member out after it stays down", 20*time.Second, func() bool {
		return slices.Equal(answersOf(t, p.ready["dns"], "www.flap.example."), []string{"127.0.0.24"})
	})
}

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

// TestFlapping is CH-03 (and PR-02 seen from outside) with the default
// checks (interval 5s, fails 3, passes 2, fast confirmation at 100 ms,
// damping): a member whose health endpoint flips between 200 and 503 every
// 700 ms changes the answers once: it leaves at its first outage, fails
// the probation of its quick return and is held out, and the answer does
// not change again for at least 30 s while it keeps flapping (issue 16).
// Then it stays down, and it stays out.
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
$POOL flappy region=one members=127.0.0.23 check=http://:%d/healthz
$POOL steady region=one members=127.0.0.24 check=http://:%d/healthz
www 5 IN GSLB all pools=flappy,steady
`, port, port))
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--admin", "127.0.0.1:0", "--node", "n1")
	both := []string{"127.0.0.23", "127.0.0.24"}
	steadyOnly := []string{"127.0.0.24"}
	// Watch the answers every 100 ms until 32 s after the first change (60 s
	// at most).
	type change struct {
		at  time.Duration
		got []string
	}
	var changes []change
	var last []string
	deadline := time.Now().Add(60 * time.Second)
	queries := 0
	for time.Now().Before(deadline) {
		got := answersOf(t, p.ready["dns"], "www.flap.example.")
		if !slices.Equal(got, both) && !slices.Equal(got, steadyOnly) {
			t.Fatalf("after %v of flapping the answer is %v", time.Since(began).Round(time.Millisecond), got)
		}
		if last != nil && !slices.Equal(got, last) {
			changes = append(changes, change{time.Since(began).Round(10 * time.Millisecond), got})
			if len(changes) == 1 {
				deadline = time.Now().Add(32 * time.Second)
			}
		}
		last = got
		queries++
		time.Sleep(100 * time.Millisecond)
	}
	var seen []string
	for _, c := range changes {
		seen = append(seen, fmt.Sprintf("%v: %v", c.at, c.got))
	}
	t.Logf("%d queries over %v of flapping; the answer changed at %v", queries, time.Since(began).Round(time.Second), seen)
	if len(changes) != 1 || !slices.Equal(changes[0].got, steadyOnly) {
		t.Fatalf("the answer changed %d times (%v), want once: the flapping member out, for at least 30 s", len(changes), seen)
	}
	if !slices.Equal(last, steadyOnly) {
		t.Errorf("after %v of flapping the answer is %v, want the flapping member held out", time.Since(began), last)
	}

	down.Store(true)
	waitFor(t, "the member out after it stays down", 20*time.Second, func() bool {
		return slices.Equal(answersOf(t, p.ready["dns"], "www.flap.example."), steadyOnly)
	})
}

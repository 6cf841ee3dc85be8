//go:build e2e

package integration

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMemberTimesOutDefaults is PR-03 (issue 16): a member that dies by timeout only
// (it accepts connections and never answers: no refusal, no reset) with
// the default checks (interval 5s, fails 3, timeout 2s) is taken out of
// the answers, and comes back when it answers again. Each run's time from
// the hang to the last answer with the member is logged (BENCHMARKS.md);
// what is asserted is that it goes, within the expected bound: its next
// check (within an interval) and fails timeouts.
func TestMemberTimesOutDefaults(t *testing.T) {
	var hang atomic.Bool
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	handler := func(hangs bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hangs && hang.Load() {
				select { // accepted, read, never answered
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			fmt.Fprintln(w, "ok")
		})
	}
	var port int
	var lns [2]net.Listener
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.21:0")
		if err != nil {
			t.Skipf("cannot listen on 127.0.0.21 (%v): this test needs the whole 127/8 loopback", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		if ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.22:%d", port)); err == nil {
			lns = [2]net.Listener{ln, ln2}
			break
		}
		ln.Close()
		if try == 50 {
			t.Fatal("no port free on both loopback addresses")
		}
	}
	for i, ln := range lns {
		srv := &http.Server{Handler: handler(i == 1)}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	dir := t.TempDir()
	writeFile(t, dir, "hang.example.zone", fmt.Sprintf(`$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 127.0.0.1
$REGION one lat=50 lon=8
$POOL web region=one members=127.0.0.21,127.0.0.22 check=http://:%d/healthz
www 5 IN GSLB all pools=web
`, port))
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--admin", "127.0.0.1:0", "--node", "n1", "--region", "one")
	dnsAddr := p.ready["dns"]
	both, one := []string{"127.0.0.21", "127.0.0.22"}, []string{"127.0.0.21"}
	waitFor(t, "both members up", 20*time.Second, func() bool { return slices.Equal(answersOf(t, dnsAddr, "www.hang.example."), both) })
	var gone []time.Duration
	for run := range runsFromEnv(1) {
		if run > 0 {
			time.Sleep(50 * time.Second) // no flap damping between runs
		}
		hang.Store(true)
		t0 := time.Now()
		var g time.Duration
		for {
			got := answersOf(t, dnsAddr, "www.hang.example.")
			if slices.Equal(got, one) {
				break
			}
			g = time.Since(t0)
			if g > 5*time.Second+3*2*time.Second+2*time.Second {
				t.Fatalf("a member that accepts and never answers is still answered %v later (%v)", g, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		hang.Store(false)
		t1 := time.Now()
		waitFor(t, "the member back when it answers again", 20*time.Second, func() bool {
			return slices.Equal(answersOf(t, dnsAddr, "www.hang.example."), both)
		})
		t.Logf("run %d: hung: out after %.2fs; answering again: back after %.2fs", run, g.Seconds(), time.Since(t1).Seconds())
		gone = append(gone, g)
	}
	t.Logf("member that only times out, gone: %s", figures(gone))
}

// TestRegionStoppedDefaults is CH-09 and PR-03 for a whole region (issue
// 16): SIGSTOP a region's node, as a hung machine. Its proxy's port still
// accepts connections (the kernel's backlog) but nothing answers, so the
// other regions' checks of it time out, with no refusal; the survivors
// re-check it when its Raft contact goes stale. Every survivor answers
// without it after its pool's checks time out fails times; after SIGCONT
// it is back. The times are logged (BENCHMARKS.md).
func TestRegionStoppedDefaults(t *testing.T) {
	c := newClusterWith(t, "", false)
	c.allAnswer("every region up on every nameserver", c.regions, home, 60*time.Second)
	var gone []time.Duration
	for run := range runsFromEnv(1) {
		victim := c.regions[(run+1)%len(c.regions)]
		if run > 0 {
			time.Sleep(50 * time.Second) // no flap damping between runs
		}
		live := c.others(victim)
		wasLeader := leaderOf(t, c) == victim.name
		t0 := time.Now()
		victim.p.cmd.Process.Signal(syscall.SIGSTOP)
		g := lastWrong(t, live, without(victim.name), t0, 2*time.Second, 5*time.Second+3*2*time.Second+10*time.Second)
		victim.p.cmd.Process.Signal(syscall.SIGCONT)
		t1 := time.Now()
		b := lastWrong(t, c.regions, home, t1, 2*time.Second, 30*time.Second)
		t.Logf("run %d: stopped %s (leader: %v): gone from every survivor after %.2fs; continued: back everywhere after %.2fs",
			run, victim.name, wasLeader, g.Seconds(), b.Seconds())
		gone = append(gone, g)
	}
	t.Logf("region stopped (timeouts only), gone: %s", figures(gone))
}

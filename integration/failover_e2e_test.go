//go:build e2e

package integration

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Issue 16 end to end: failover with the default pool checks (interval 5s,
// fails 3, passes 2; no interval= or fails= in the zone) on the three-node
// cluster. The times are logged; the bounds asserted are generous (the
// goal is 1.0 s median, 1.5 s worst for a killed region; BENCHMARKS.md has
// the figures of a quiet run).

// home is where each region's clients go while every region is up.
var home = map[string]string{"us-east": "127.0.0.31", "eu-west": "127.0.0.32", "ap-south": "127.0.0.33"}

// without is home with victim's clients sent to the nearest other region.
func without(victims ...string) map[string]string {
	want := map[string]string{}
	for reg, addr := range home {
		want[reg] = addr
	}
	next := map[string][]string{"us-east": {"eu-west", "ap-south"}, "eu-west": {"us-east", "ap-south"}, "ap-south": {"eu-west", "us-east"}}
	for _, v := range victims {
		for _, alt := range next[v] {
			if !slices.Contains(victims, alt) {
				want[v] = home[alt]
				break
			}
		}
	}
	return want
}

// wwwECS asks ns for www.example.com as a client in subnet, over UDP with
// an ECS option (no dig process: the poll must take well under 0.1 s).
func wwwECS(ns, subnet string) string {
	p := netip.MustParsePrefix(subnet)
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	m.Extra = append(m.Extra, o)
	r, _, err := (&dns.Client{Timeout: 300 * time.Millisecond}).Exchange(m, ns)
	if err != nil {
		return "error: " + err.Error()
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// lastWrong polls every live nameserver for every region's clients every
// 0.1 s from t0 until all answers have been as want says for settle, and
// returns the time from t0 to the last poll that saw a wrong answer (0 if
// none did), logging that answer. It fails the test past limit.
func lastWrong(t *testing.T, live []*region, want map[string]string, t0 time.Time, settle, limit time.Duration) time.Duration {
	t.Helper()
	var last time.Duration
	var wrong string
	for time.Since(t0) < limit {
		at := time.Since(t0)
		ok := true
		for _, ns := range live {
			for reg, subnet := range clients {
				if got := wwwECS(ns.dns, subnet); got != want[reg] {
					ok = false
					wrong = fmt.Sprintf("%s answers %s's clients %q, want %s", ns.name, reg, got, want[reg])
				}
			}
		}
		if !ok {
			last = at
		} else if at-last >= settle {
			if last > 0 {
				t.Logf("the last wrong answer, %.2fs after t0: %s", last.Seconds(), wrong)
			}
			return last
		}
		time.Sleep(time.Until(t0.Add((at/(100*time.Millisecond) + 1) * 100 * time.Millisecond)))
	}
	t.Fatalf("still wrong %v after t0: %s", limit, wrong)
	return 0
}

// others is the cluster's regions but victim.
func (c *cluster) others(victim *region) []*region {
	var live []*region
	for _, r := range c.regions {
		if r != victim {
			live = append(live, r)
		}
	}
	return live
}

func leaderOf(t *testing.T, c *cluster) string {
	for _, r := range c.regions {
		if st, err := statusOf(t, r.admin); err == nil && st.Cluster.Leader != "" {
			return st.Cluster.Leader
		}
	}
	return ""
}

// figures is min, median and max.
func figures(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprintf("min %.2fs median %.2fs max %.2fs (%d runs)", s[0].Seconds(), s[len(s)/2].Seconds(), s[len(s)-1].Seconds(), len(s))
}

func runsFromEnv(def int) int {
	if n, err := strconv.Atoi(os.Getenv("GSLB_FAILOVER_RUNS")); err == nil && n > 0 {
		return n
	}
	return def
}

// TestRegionKilledDefaults kills -9 a region's node (its DNS, prober, Raft
// member and proxy) and its servers, several times, every other time the
// region whose node is the Raft leader, with the default checks and the
// default Raft timing (heartbeat and election timeouts 1 s): every
// surviving nameserver answers its clients from another region; restarted,
// it is back everywhere. A region is killed again only after 50 s, so that
// flap damping (outages that keep coming less than about 48 s apart hold
// the member down) does not hold its return.
func TestRegionKilledDefaults(t *testing.T) {
	c := newClusterWith(t, "", false)
	c.allAnswer("every region up on every nameserver", c.regions, home, 60*time.Second)
	var gone, back, goneLeader, backLeader []time.Duration
	lastKill := map[string]time.Time{}
	for run := range runsFromEnv(4) {
		// Even runs: the leader's region; odd runs: the follower killed
		// longest ago.
		leader := leaderOf(t, c)
		var victim *region
		for _, r := range c.regions {
			if run%2 == 0 && r.name == leader {
				victim = r
				break
			}
			if r.name != leader && (victim == nil || lastKill[r.name].Before(lastKill[victim.name])) {
				victim = r
			}
		}
		if wait := 50*time.Second - time.Since(lastKill[victim.name]); wait > 0 {
			time.Sleep(wait)
		}
		live := c.others(victim)
		wasLeader := leaderOf(t, c) == victim.name
		t0 := time.Now()
		lastKill[victim.name] = t0
		c.killRegion(victim)
		g := lastWrong(t, live, without(victim.name), t0, 2*time.Second, 30*time.Second)
		t1 := time.Now()
		c.startRegion(victim)
		ready := time.Since(t1)
		b := lastWrong(t, c.regions, home, t1, 2*time.Second, 30*time.Second)
		t.Logf("run %d: killed %s (leader: %v): gone from every survivor after %.2fs; restarted: back everywhere after %.2fs (ready after %.2fs)",
			run, victim.name, wasLeader, g.Seconds(), b.Seconds(), ready.Seconds())
		gone, back = append(gone, g), append(back, b)
		if wasLeader {
			goneLeader, backLeader = append(goneLeader, g), append(backLeader, b)
		}
	}
	t.Logf("region killed, gone: %s", figures(gone))
	t.Logf("region restarted, back: %s", figures(back))
	t.Logf("the leader's region killed, gone: %s; back: %s", figures(goneLeader), figures(backLeader))
	slices.Sort(gone)
	slices.Sort(back)
	if len(goneLeader) == 0 {
		t.Errorf("the leader's region was never killed")
	}
	if m := gone[len(gone)/2]; m > 3*time.Second {
		t.Errorf("median failover %v, want about 1 s (3 s allowed here)", m)
	}
	if m := back[len(back)/2]; m > 4*time.Second {
		t.Errorf("median return %v, want about 1.5 s (4 s allowed here)", m)
	}
}

// TestRegionServersDieDefaults stops a region's servers while its node and
// proxy live: the proxy sees them fail, its node re-checks its region's
// pool at once, and the other regions follow the committed transition.
func TestRegionServersDieDefaults(t *testing.T) {
	c := newClusterWith(t, "", false)
	c.allAnswer("every region up on every nameserver", c.regions, home, 60*time.Second)
	var gone, back []time.Duration
	for _, name := range []string{"eu-west", "ap-south", "us-east"} {
		victim := c.byName(name)
		t0 := time.Now()
		for _, b := range victim.backends {
			b.stop()
		}
		g := lastWrong(t, c.regions, without(name), t0, 2*time.Second, 30*time.Second)
		t1 := time.Now()
		for _, b := range victim.backends {
			b.start(t)
		}
		b := lastWrong(t, c.regions, home, t1, 2*time.Second, 30*time.Second)
		t.Logf("%s's servers stopped: gone from every nameserver after %.2fs; started again: back after %.2fs", name, g.Seconds(), b.Seconds())
		gone, back = append(gone, g), append(back, b)
	}
	t.Logf("servers stopped, gone: %s", figures(gone))
	t.Logf("servers started, back: %s", figures(back))
	slices.Sort(gone)
	if m := gone[len(gone)/2]; m > 4*time.Second {
		t.Errorf("median failover %v with the servers dead, want about 2 s (4 s allowed here)", m)
	}
}

// TestTwoRegionsKilledBackToBack: the survivor, alone and without a Raft
// quorum, answers without both dead regions at once: the cluster marks
// their probers silent, so their last "up" votes stop counting instead of
// holding the verdicts until they age out.
func TestTwoRegionsKilledBackToBack(t *testing.T) {
	c := newClusterWith(t, "", false)
	c.allAnswer("every region up on every nameserver", c.regions, home, 60*time.Second)
	survivor := c.byName("us-east")
	t0 := time.Now()
	c.killRegion(c.byName("eu-west"))
	c.killRegion(c.byName("ap-south"))
	g := lastWrong(t, []*region{survivor}, without("eu-west", "ap-south"), t0, 2*time.Second, 30*time.Second)
	t.Logf("eu-west and ap-south killed back to back: the survivor answered without both after %.2fs", g.Seconds())
	if g > 5*time.Second {
		t.Errorf("the survivor kept a dead region for %v (8-14 s before issue 16)", g)
	}
}

// TestAloneEverythingDown: a node alone whose prober sees every member
// down applies the records' empty= mode (fail open by default: every
// member) instead of freezing the last verdicts.
func TestAloneEverythingDown(t *testing.T) {
	a, b, port := twoBackends(t)
	dir := t.TempDir()
	writeFile(t, dir, "alone.example.zone", fmt.Sprintf(`$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 127.0.0.1
$REGION one lat=50 lon=8
$REGION two lat=40 lon=-75
$POOL p1 region=one members=127.0.0.21 check=http://:%s/healthz
$POOL p2 region=two members=127.0.0.22 check=http://:%s/healthz
www 5 IN GSLB all pools=p1,p2
`, port, port))
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--admin", "127.0.0.1:0", "--node", "n1", "--region", "one")
	dnsAddr := p.ready["dns"]
	both := []string{"127.0.0.21", "127.0.0.22"}
	waitFor(t, "both members up", 20*time.Second, func() bool { return slices.Equal(answersOf(t, dnsAddr, "www.alone.example."), both) })
	b.stop()
	t0 := time.Now()
	waitFor(t, "127.0.0.22 out", 20*time.Second, func() bool {
		return slices.Equal(answersOf(t, dnsAddr, "www.alone.example."), []string{"127.0.0.21"})
	})
	t.Logf("one of two down: out after %v", time.Since(t0).Round(10*time.Millisecond))
	a.stop()
	t1 := time.Now()
	waitFor(t, "every member answered (fail open) with every member down", 20*time.Second, func() bool {
		return slices.Equal(answersOf(t, dnsAddr, "www.alone.example."), both)
	})
	t.Logf("every member down: the record failed open after %v", time.Since(t1).Round(10*time.Millisecond))
	var st struct {
		Members []struct {
			Member string
			Up     bool
			Known  bool
		}
	}
	getJSON(t, "http://"+p.ready["admin"]+"/api/v1/status", &st)
	for _, m := range st.Members {
		if m.Up || !m.Known {
			t.Errorf("status: %s up=%v known=%v, want known down", m.Member, m.Up, m.Known)
		}
	}
}

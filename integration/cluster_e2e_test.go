//go:build e2e

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// region is one region of a test cluster: a `gslb serve -config` process
// (DNS, prober, Raft member, region proxy, admin) and two HTTP backends
// behind its proxy, run by the test.
type region struct {
	name, ip    string
	dns, admin  string
	raft, proxy string
	backends    [2]*backend
	config      string
	p           *proc
	lat, lon    float64
	serves      string
}

// cluster is three regions on 127.0.0.31-33.
type cluster struct {
	t       *testing.T
	dir     string
	regions []*region
}

func freeBase(t *testing.T, ips []string) int {
	t.Helper()
	for base := 30000 + os.Getpid()%20000; base < 65000; base += 17 {
		ok := true
		for _, ip := range ips {
			for off := 0; off < 6 && ok; off++ {
				ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, base+off))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
				pc, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, base+off))
				if err != nil {
					ok = false
					break
				}
				pc.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterWith(t, " interval=1s fails=2 passes=2", true)
}

// newClusterWith is newCluster with checkOpts after each region pool's
// check= (empty: the default checks), and the Raft timing of cluster.fast
// or the defaults.
func newClusterWith(t *testing.T, checkOpts string, fast bool) *cluster {
	t.Helper()
	ips := []string{"127.0.0.31", "127.0.0.32", "127.0.0.33"}
	if ln, err := net.Listen("tcp", "127.0.0.32:0"); err != nil {
		t.Skipf("this test needs the whole 127/8 loopback (as Linux has): %v", err)
	} else {
		ln.Close()
	}
	base := freeBase(t, ips)
	c := &cluster{t: t, dir: t.TempDir()}
	spec := []struct {
		name, serves string
		lat, lon     float64
	}{{"us-east", "NA,SA", 39.04, -77.49}, {"eu-west", "EU,AF", 53.35, -6.26}, {"ap-south", "AS,OC", 1.35, 103.82}}
	for i, s := range spec {
		ip := ips[i]
		at := func(off int) string { return fmt.Sprintf("%s:%d", ip, base+off) }
		r := &region{name: s.name, ip: ip, dns: at(0), admin: at(1), raft: at(2), proxy: at(3), lat: s.lat, lon: s.lon, serves: s.serves}
		r.backends = [2]*backend{{addr: at(4)}, {addr: at(5)}}
		c.regions = append(c.regions, r)
	}
	var zone strings.Builder
	zone.WriteString("$ORIGIN example.com.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 1209600 30\n@ IN NS ns1\nns1 IN A 127.0.0.31\n")
	for _, r := range c.regions {
		_, port, _ := net.SplitHostPort(r.proxy)
		fmt.Fprintf(&zone, "$REGION %s lat=%v lon=%v serves=%s\n", r.name, r.lat, r.lon, r.serves)
		fmt.Fprintf(&zone, "$POOL web-%s region=%s members=%s check=http://:%s/health/region%s\n", r.name, r.name, r.ip, port, checkOpts)
	}
	zone.WriteString("www 5 IN GSLB geo pools=web-us-east,web-eu-west,web-ap-south\n")
	zone.WriteString("admin 5 IN GSLB failover pools=web-eu-west,web-us-east\n")
	// Members for the override writes of the tests (a node refuses an
	// override of a member no pool has): unchecked, in no record, so they
	// send no probe and change no answer.
	var writes []string
	for r := 0; r < 2; r++ {
		for i := 0; i < maxWrites; i++ {
			writes = append(writes, fmt.Sprintf("198.18.%d.%d", r, i))
		}
	}
	writes = append(writes, "198.18.9.9", "198.18.7.7")
	fmt.Fprintf(&zone, "$POOL writes region=us-east members=%s\n", strings.Join(writes, ","))
	secret := "integration-test-secret-0123456789"
	for _, r := range c.regions {
		zdir := filepath.Join(c.dir, r.name, "zones")
		os.MkdirAll(zdir, 0o755)
		writeFile(t, zdir, "example.com.zone", zone.String())
		var peers strings.Builder
		for _, p := range c.regions {
			fmt.Fprintf(&peers, "    - {id: %s, raft: \"%s\", region: %s, dns: \"%s\"}\n", p.name, p.raft, p.name, p.dns)
		}
		cfg := fmt.Sprintf(`node: %s
region: %s
dns: ["%s"]
admin: "%s"
data: "%s"
zones: "%s"
zones_poll: 1s
cluster:
  raft: "%s"
  secret: "%s"
  fast: %v
  peers:
%sproxy:
  listeners:
    - {name: web, address: "%s", protocol: http}
  routes:
    - {name: all, backends: app}
  groups:
    - name: app
      health_check: {type: http, path: /healthz, interval: 500ms, timeout: 300ms, fails: 2, passes: 2}
      backends:
        - {address: "%s"}
        - {address: "%s"}
`, r.name, r.name, r.dns, r.admin, filepath.Join(c.dir, r.name, "data"), zdir, r.raft, secret, fast, peers.String(), r.proxy, r.backends[0].addr, r.backends[1].addr)
		r.config = writeFile(t, c.dir, r.name+".yaml", cfg)
	}
	for _, r := range c.regions {
		c.startRegion(r)
	}
	return c
}

func (c *cluster) startRegion(r *region) {
	c.t.Helper()
	for _, b := range r.backends {
		b.start(c.t)
	}
	r.p = start(c.t, "serve", "-config", r.config)
}

// killRegion kills the node with SIGKILL and stops its backends.
func (c *cluster) killRegion(r *region) {
	c.t.Helper()
	r.p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-r.p.done
	r.p.done <- err // for the cleanup, which waits on it too
	for _, b := range r.backends {
		b.stop()
	}
}

func (c *cluster) byName(name string) *region {
	for _, r := range c.regions {
		if r.name == name {
			return r
		}
	}
	return nil
}

// wwwFor asks a nameserver for www.example.com as a client in subnet.
func wwwFor(t *testing.T, ns, subnet string) string {
	t.Helper()
	r := runDig(t, "dig", ns, "www.example.com", "A", "+short", "+subnet="+subnet)
	return strings.TrimSpace(r.Raw)
}

var clients = map[string]string{"us-east": "8.8.8.0/24", "eu-west": "81.2.69.0/24", "ap-south": "133.11.0.0/24"}

// allAnswer waits until every live nameserver answers every region's
// clients as want says (region name -> expected address).
func (c *cluster) allAnswer(what string, live []*region, want map[string]string, limit time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	waitFor(c.t, what, limit, func() bool {
		for _, ns := range live {
			for reg, subnet := range clients {
				if wwwFor(c.t, ns.dns, subnet) != want[reg] {
					return false
				}
			}
		}
		return true
	})
	return time.Since(start)
}

type statusView struct {
	Cluster struct {
		Role   string
		Leader string
		Quorum bool
	}
	Overrides []struct{ Kind, Name, Action string }
	Zones     map[string]uint32
}

func statusOf(t *testing.T, admin string) (statusView, error) {
	var st statusView
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + admin + "/api/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// TestClusterFailover is CH-01/CH-02 with real processes: kill -9 one
// region (node, proxy and backends) and every surviving nameserver stops
// answering it, its clients get another region and nothing else changes;
// restart it and it comes back. Then the same for the Raft leader's region,
// while a writer submits overrides: every acknowledged write survives (RF-05).
// maxWrites bounds the override writes of one failover round (one each
// 50 ms: 12.5 s worth).
const maxWrites = 250

func TestClusterFailover(t *testing.T) {
	need(t, "dig")
	c := newCluster(t)
	home := map[string]string{"us-east": "127.0.0.31", "eu-west": "127.0.0.32", "ap-south": "127.0.0.33"}
	c.allAnswer("every region up on every nameserver", c.regions, home, 60*time.Second)

	for round, victimOf := range []func() *region{
		func() *region { return c.byName("eu-west") },
		func() *region { // the Raft leader's region
			st, err := statusOf(t, c.regions[0].admin)
			if err != nil {
				t.Fatal(err)
			}
			return c.byName(st.Cluster.Leader)
		},
	} {
		victim := victimOf()
		if victim == nil {
			t.Fatal("no leader known")
		}
		var live []*region
		for _, r := range c.regions {
			if r != victim {
				live = append(live, r)
			}
		}
		// A writer submits overrides through a survivor while the victim dies.
		var (
			mu    sync.Mutex
			acked []string
			stop  = make(chan struct{})
			done  = make(chan struct{})
		)
		go func() {
			defer close(done)
			for i := 0; i < maxWrites; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("198.18.%d.%d", round, i)
				body, _ := json.Marshal(map[string]string{"kind": "member", "name": name})
				resp, err := (&http.Client{Timeout: 5 * time.Second}).Post("http://"+live[0].admin+"/api/v1/drain", "application/json", bytes.NewReader(body))
				if err == nil {
					if resp.StatusCode == http.StatusOK {
						mu.Lock()
						acked = append(acked, name)
						mu.Unlock()
					}
					resp.Body.Close()
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		// A constant query load on the survivors (CH-05): not one query may
		// fail while the victim dies and, in round 1, Raft elects a leader.
		var queries, failed int
		qdone := make(chan struct{})
		go func() {
			defer close(qdone)
			cl := &dns.Client{Timeout: 2 * time.Second}
			m := new(dns.Msg)
			m.SetQuestion("www.example.com.", dns.TypeA)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, _, err := cl.Exchange(m, live[i%len(live)].dns)
				queries++
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					failed++
				}
			}
		}()
		time.Sleep(300 * time.Millisecond) // some writes before the kill
		killed := time.Now()
		c.killRegion(victim)
		want := map[string]string{}
		for reg, addr := range home {
			want[reg] = addr
		}
		// Its clients go to the nearest other region.
		want[victim.name] = map[string]string{"us-east": "127.0.0.32", "eu-west": "127.0.0.31", "ap-south": "127.0.0.32"}[victim.name]
		c.allAnswer(victim.name+" gone from every surviving nameserver", live, want, 30*time.Second)
		t.Logf("round %d: killed %s; every surviving nameserver answered without it after %v", round, victim.name, time.Since(killed).Round(10*time.Millisecond))
		time.Sleep(500 * time.Millisecond)
		close(stop)
		<-done
		<-qdone
		if failed > 0 {
			t.Errorf("round %d: %d of %d queries to the survivors failed while %s died", round, failed, queries, victim.name)
		}
		t.Logf("round %d: %d queries to the survivors during the failover, %d failed", round, queries, failed)

		// Every acknowledged override is on every survivor.
		mu.Lock()
		got := append([]string(nil), acked...)
		mu.Unlock()
		if len(got) == 0 {
			t.Fatal("no override was acknowledged")
		}
		checkOverrides := func(r *region) {
			t.Helper()
			waitFor(t, "acknowledged overrides on "+r.name, 20*time.Second, func() bool {
				st, err := statusOf(t, r.admin)
				if err != nil {
					return false
				}
				have := map[string]bool{}
				for _, o := range st.Overrides {
					have[o.Name] = true
				}
				for _, name := range got {
					if !have[name] {
						return false
					}
				}
				return true
			})
		}
		for _, r := range live {
			checkOverrides(r)
		}

		// Restart it: it catches up, and its region comes back everywhere.
		restarted := time.Now()
		c.startRegion(victim)
		c.allAnswer(victim.name+" back on every nameserver", c.regions, home, 60*time.Second)
		t.Logf("round %d: %s answered again everywhere %v after restart", round, victim.name, time.Since(restarted).Round(10*time.Millisecond))
		checkOverrides(victim)
	}
}

// TestClusterJoinLeave: an edge node not in the peer list joins a running
// cluster as a non-voter (cluster.join), serves the committed zone with the
// same answers, and leaves with `gslb leave` (RF-07).
func TestClusterJoinLeave(t *testing.T) {
	need(t, "dig")
	c := newCluster(t)
	home := map[string]string{"us-east": "127.0.0.31", "eu-west": "127.0.0.32", "ap-south": "127.0.0.33"}
	c.allAnswer("every region up", c.regions, home, 60*time.Second)
	ip := "127.0.0.34"
	base := freeBase(t, []string{ip})
	dns, admin, raft := fmt.Sprintf("%s:%d", ip, base), fmt.Sprintf("%s:%d", ip, base+1), fmt.Sprintf("%s:%d", ip, base+2)
	cfg := writeFile(t, c.dir, "edge.yaml", fmt.Sprintf(`node: edge-1
region: edge
dns: ["%s"]
admin: "%s"
data: "%s"
cluster:
  raft: "%s"
  secret: "integration-test-secret-0123456789"
  fast: true
  non_voter: true
  join: "%s"
`, dns, admin, filepath.Join(c.dir, "edge-data"), raft, c.regions[0].raft))
	p := start(t, "serve", "-config", cfg)
	edge := &region{name: "edge", dns: p.ready["dns"], admin: admin}
	c.allAnswer("the edge node answering like the others", []*region{edge}, home, 60*time.Second)
	members := func() []string {
		var st struct {
			Cluster struct {
				Members []struct {
					ID    string
					Voter bool
				}
			}
		}
		resp, err := http.Get("http://" + c.regions[0].admin + "/api/v1/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		var ids []string
		for _, m := range st.Cluster.Members {
			id := m.ID
			if !m.Voter {
				id += "(non-voter)"
			}
			ids = append(ids, id)
		}
		return ids
	}
	waitFor(t, "edge-1 listed as a non-voter", 20*time.Second, func() bool { return strings.Contains(strings.Join(members(), ","), "edge-1(non-voter)") })
	out, err := runCmd(t, "leave", "--server", admin)
	if err != nil {
		t.Fatalf("gslb leave: %v\n%s", err, out)
	}
	waitFor(t, "edge-1 gone from the members", 20*time.Second, func() bool { return !strings.Contains(strings.Join(members(), ","), "edge-1") })
	// The voters still commit: a drain through a voter is acknowledged.
	if out, err := runCmd(t, "drain", "--server", c.regions[1].admin, "member", "198.18.9.9"); err != nil {
		t.Fatalf("drain after the non-voter left: %v\n%s", err, out)
	}
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	return string(out), err
}

// TestLeaderStopped is CH-09 / RF-11 with real processes: SIGSTOP the Raft
// leader for longer than the election timeout. The others elect a leader
// and keep committing and answering; after SIGCONT the old leader follows
// the new one, and every write acknowledged meanwhile is on all three.
func TestLeaderStopped(t *testing.T) {
	need(t, "dig")
	c := newCluster(t)
	home := map[string]string{"us-east": "127.0.0.31", "eu-west": "127.0.0.32", "ap-south": "127.0.0.33"}
	c.allAnswer("every region up", c.regions, home, 60*time.Second)
	st, err := statusOf(t, c.regions[0].admin)
	if err != nil {
		t.Fatal(err)
	}
	old := c.byName(st.Cluster.Leader)
	if old == nil {
		t.Fatalf("no leader: %+v", st)
	}
	var live []*region
	for _, r := range c.regions {
		if r != old {
			live = append(live, r)
		}
	}
	old.p.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			old.p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var newLeader string
	waitFor(t, "a new leader among the others", 20*time.Second, func() bool {
		st, err := statusOf(t, live[0].admin)
		if err != nil || st.Cluster.Leader == "" || st.Cluster.Leader == old.name || !st.Cluster.Quorum {
			return false
		}
		newLeader = st.Cluster.Leader
		return true
	})
	// Writes go on; DNS on the others never stopped.
	if out, err := runCmd(t, "drain", "--server", live[1].admin, "member", "198.18.7.7"); err != nil {
		t.Fatalf("drain while the old leader is stopped: %v\n%s", err, out)
	}
	for _, r := range live {
		if got := wwwFor(t, r.dns, "8.8.8.0/24"); got == "" {
			t.Errorf("%s did not answer while the old leader was stopped", r.name)
		}
	}
	old.p.cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	waitFor(t, "the old leader following and holding the write", 30*time.Second, func() bool {
		st, err := statusOf(t, old.admin)
		if err != nil || st.Cluster.Role != "Follower" || st.Cluster.Leader != newLeader {
			return false
		}
		for _, o := range st.Overrides {
			if o.Name == "198.18.7.7" {
				return true
			}
		}
		return false
	})
	// One leader, as every node sees it.
	for _, r := range c.regions {
		st, err := statusOf(t, r.admin)
		if err != nil || st.Cluster.Leader != newLeader {
			t.Errorf("%s sees leader %q, want %q (%v)", r.name, st.Cluster.Leader, newLeader, err)
		}
	}
}

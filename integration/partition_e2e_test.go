//go:build e2e

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netns is a set of network namespaces made by the test: a hub with a
// bridge, and one namespace per region joined to it by a veth pair.
type netns struct {
	t      *testing.T
	prefix string
}

func (n *netns) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (n *netns) name(s string) string { return n.prefix + s }

// newNetns builds hub + r1..r3 with 10.213.0.i/24 on ri and .254 on the hub.
// It skips the test where namespaces cannot be made (not root, no ip).
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition test skipped: it needs root to make network namespaces (CI runs it as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition test skipped: iproute2's ip is not installed")
	}
	n := &netns{t: t, prefix: fmt.Sprintf("gslbt%d-", os.Getpid()%100000)}
	t.Cleanup(func() {
		for _, s := range []string{"hub", "r1", "r2", "r3"} {
			exec.Command("ip", "netns", "del", n.name(s)).Run()
		}
	})
	steps := [][]string{
		{"netns", "add", n.name("hub")},
		{"-n", n.name("hub"), "link", "set", "lo", "up"},
		{"-n", n.name("hub"), "link", "add", "br0", "type", "bridge"},
		{"-n", n.name("hub"), "link", "set", "br0", "up"},
		{"-n", n.name("hub"), "addr", "add", "10.213.0.254/24", "dev", "br0"},
	}
	for i := 1; i <= 3; i++ {
		r := n.name(fmt.Sprintf("r%d", i))
		steps = append(steps,
			[]string{"netns", "add", r},
			[]string{"-n", r, "link", "set", "lo", "up"},
			[]string{"link", "add", fmt.Sprintf("v%d-h", i), "netns", n.name("hub"), "type", "veth", "peer", "name", fmt.Sprintf("v%d-r", i), "netns", r},
			[]string{"-n", n.name("hub"), "link", "set", fmt.Sprintf("v%d-h", i), "master", "br0", "up"},
			[]string{"-n", r, "addr", "add", fmt.Sprintf("10.213.0.%d/24", i), "dev", fmt.Sprintf("v%d-r", i)},
			[]string{"-n", r, "link", "set", fmt.Sprintf("v%d-r", i), "up"},
		)
	}
	for _, s := range steps {
		if err := n.ip(s...); err != nil {
			t.Skipf("partition test skipped: cannot build the test network: %v", err)
		}
	}
	return n
}

// in runs a command inside namespace ns.
func (n *netns) in(ns string, name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.name(ns), name}, args...)...).CombinedOutput()
	return string(out), err
}

// TestPartition is CH-04 and CH-06 with network namespaces: cut eu-west off
// (its link to the others goes down) instead of killing it. The majority
// side fails its clients over; the cut-off node keeps answering from its
// last state and its own probes, and its status says no quorum; after the
// link comes back everything converges.
func TestPartition(t *testing.T) {
	need(t, "dig")
	n := newNetns(t)
	dir := t.TempDir()
	type node struct{ name, ns, ip string }
	nodes := []node{{"us-east", "r1", "10.213.0.1"}, {"eu-west", "r2", "10.213.0.2"}, {"ap-south", "r3", "10.213.0.3"}}
	var zone strings.Builder
	zone.WriteString("$ORIGIN example.com.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 1209600 30\n@ IN NS ns1\nns1 IN A 10.213.0.1\n")
	for i, nd := range nodes {
		ll := [][2]float64{{39.04, -77.49}, {53.35, -6.26}, {1.35, 103.82}}[i]
		serves := []string{"NA,SA", "EU,AF", "AS,OC"}[i]
		fmt.Fprintf(&zone, "$REGION %s lat=%v lon=%v serves=%s\n", nd.name, ll[0], ll[1], serves)
		fmt.Fprintf(&zone, "$POOL web-%s region=%s members=%s check=tcp://:5353 interval=1s fails=2 passes=2\n", nd.name, nd.name, nd.ip)
	}
	zone.WriteString("www 5 IN GSLB geo pools=web-us-east,web-eu-west,web-ap-south\n")
	var peers strings.Builder
	for _, nd := range nodes {
		fmt.Fprintf(&peers, "    - {id: %s, raft: \"%s:5355\", region: %s, dns: \"%s:5353\"}\n", nd.name, nd.ip, nd.name, nd.ip)
	}
	for _, nd := range nodes {
		zdir := filepath.Join(dir, nd.name, "zones")
		os.MkdirAll(zdir, 0o755)
		writeFile(t, zdir, "example.com.zone", zone.String())
		cfg := writeFile(t, dir, nd.name+".yaml", fmt.Sprintf(`node: %s
region: %s
dns: ["%s:5353"]
admin: "%s:5354"
admin_token: "partition-test-admin-token"
data: "%s"
zones: "%s"
cluster:
  raft: "%s:5355"
  secret: "partition-test-secret-0123456789"
  fast: true
  peers:
%s`, nd.name, nd.name, nd.ip, nd.ip, filepath.Join(dir, nd.name, "data"), zdir, nd.ip, peers.String()))
		if nd.name == nodes[0].name {
			// Beyond loopback, a node without an admin token refuses to
			// start, and says which keys to set.
			bad := writeFile(t, dir, "no-token.yaml", strings.Replace(mustRead(t, cfg), "admin_token: \"partition-test-admin-token\"\n", "", 1))
			out, err := n.in(nd.ns, binary(t), "serve", "-config", bad)
			if err == nil || !strings.Contains(out, "admin: "+nd.ip+":5354 is not a loopback address: set admin_token or admin_token_file") {
				t.Errorf("a node with admin on %s and no token: %v\n%s", nd.ip, err, out)
			}
		}
		startCmd(t, "ip", "netns", "exec", n.name(nd.ns), binary(t), "serve", "-config", cfg)
	}
	ask := func(from, server, subnet string) string {
		out, _ := n.in(from, "dig", "+short", "+time=1", "+tries=1", "-p", "5353", "@"+server, "www.example.com", "+subnet="+subnet)
		return strings.TrimSpace(out)
	}
	eu := "81.2.69.0/24"
	waitFor(t, "eu-west clients on eu-west everywhere", 60*time.Second, func() bool {
		return ask("hub", "10.213.0.1", eu) == "10.213.0.2" && ask("hub", "10.213.0.2", eu) == "10.213.0.2" && ask("hub", "10.213.0.3", eu) == "10.213.0.2"
	})

	// The admin API beyond loopback: reads and writes need the token.
	if out, err := n.in("r1", binary(t), "status", "--server", "10.213.0.2:5354"); err == nil || !strings.Contains(out, "a valid admin token is required") {
		t.Errorf("gslb status from another host without the token: %v\n%s", err, out)
	}
	if out, err := n.in("r1", binary(t), "drain", "region", "eu-west", "--server", "10.213.0.2:5354", "--token", "wrong"); err == nil || !strings.Contains(out, "a valid admin token is required") {
		t.Errorf("gslb drain from another host with a wrong token: %v\n%s", err, out)
	}

	// Cut eu-west off.
	if err := n.ip("-n", n.name("hub"), "link", "set", "v2-h", "down"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	waitFor(t, "the majority side failing eu-west's clients over", 30*time.Second, func() bool {
		return ask("hub", "10.213.0.1", eu) == "10.213.0.1" && ask("hub", "10.213.0.3", eu) == "10.213.0.1"
	})
	t.Logf("majority side answered without eu-west %v after the cut", time.Since(cut).Round(10*time.Millisecond))
	quorum := func() (bool, error) {
		out, err := n.in("r2", binary(t), "status", "--server", "10.213.0.2:5354", "--token", "partition-test-admin-token", "--json")
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, out)
		}
		var st struct{ Cluster struct{ Quorum bool } }
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, err
		}
		return st.Cluster.Quorum, nil
	}
	waitFor(t, "the cut-off node reporting no quorum", 30*time.Second, func() bool {
		q, err := quorum()
		return err == nil && !q
	})
	// It keeps answering, from its last state and its own probes.
	for _, subnet := range []string{eu, "8.8.8.0/24", "133.11.0.0/24"} {
		if got := ask("r2", "10.213.0.2", subnet); got == "" {
			t.Errorf("cut-off node: no answer for %s", subnet)
		}
	}
	if out, _ := n.in("r2", binary(t), "status", "--server", "10.213.0.2:5354", "--token", "partition-test-admin-token"); !strings.Contains(out, "quorum NO") {
		t.Errorf("gslb status on the cut-off node does not say no quorum:\n%s", out)
	}

	// Heal: everything converges back.
	if err := n.ip("-n", n.name("hub"), "link", "set", "v2-h", "up"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eu-west back everywhere after the heal", 60*time.Second, func() bool {
		q, _ := quorum()
		return q && ask("hub", "10.213.0.1", eu) == "10.213.0.2" && ask("hub", "10.213.0.2", eu) == "10.213.0.2" && ask("hub", "10.213.0.3", eu) == "10.213.0.2"
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

//go:build e2e

package integration

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestResolverInTheLoop is CH-07: a real recursive resolver (unbound, from
// Debian) with the cluster's nameservers as a stub zone. Clients asking the
// resolver see the failover once the record's TTL runs out, and NXDOMAIN
// is cached no longer than the SOA minimum.
func TestResolverInTheLoop(t *testing.T) {
	need(t, "dig", "unbound")
	c := newCluster(t)
	home := map[string]string{"us-east": "127.0.0.31", "eu-west": "127.0.0.32", "ap-south": "127.0.0.33"}
	c.allAnswer("every region up", c.regions, home, 60*time.Second)

	base := freeBase(t, []string{"127.0.0.35"})
	resolver := fmt.Sprintf("127.0.0.35:%d", base)
	var stubs strings.Builder
	for _, r := range c.regions {
		host, port, _ := strings.Cut(r.dns, ":")
		fmt.Fprintf(&stubs, "  stub-addr: %s@%s\n", host, port)
	}
	conf := writeFile(t, c.dir, "unbound.conf", fmt.Sprintf(`server:
  interface: 127.0.0.35
  port: %d
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: "%s"
  pidfile: "%s/unbound.pid"
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: no
  num-threads: 1
  verbosity: 1
stub-zone:
  name: "example.com"
%s`, base, c.dir, c.dir, stubs.String()))
	cmd := exec.Command("unbound", "-d", "-c", conf)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("unbound:\n%s", out.String())
		}
	})
	ask := func(name string) digResult {
		return runDig(t, "dig", resolver, name, "A")
	}
	waitFor(t, "unbound answering for the zone", 20*time.Second, func() bool {
		// unbound may not listen yet: a failed dig is retried, not fatal.
		host, port, _ := strings.Cut(resolver, ":")
		raw, err := exec.Command("dig", "@"+host, "-p", port, "+time=1", "+tries=1", "admin.example.com", "A").CombinedOutput()
		r := parseDig(string(raw))
		return err == nil && r.Status == "NOERROR" && len(r.Sections["ANSWER"]) == 1
	})
	if got := answerAddr(ask("admin.example.com")); got != "127.0.0.32" {
		t.Fatalf("through the resolver admin = %s, want eu-west's 127.0.0.32", got)
	}

	// NXDOMAIN is cached for at most the SOA minimum (30 s here): the
	// negative answer's SOA TTL says so.
	nx := ask("nothing-here.example.com")
	if nx.Status != "NXDOMAIN" || len(nx.Sections["AUTHORITY"]) != 1 {
		t.Fatalf("NXDOMAIN through the resolver:\n%s", nx.Raw)
	}
	if ttl := ttlOf(nx.Sections["AUTHORITY"][0]); ttl > 30 {
		t.Errorf("negative answer cached for %d s, want at most the SOA minimum 30", ttl)
	}

	// Kill eu-west: the resolver's clients move once the 5 s TTL runs out.
	killed := time.Now()
	c.killRegion(c.byName("eu-west"))
	waitFor(t, "the resolver's answer moving to us-east", 40*time.Second, func() bool {
		return answerAddr(ask("admin.example.com")) == "127.0.0.31"
	})
	t.Logf("through unbound: admin moved to us-east %v after the kill (detection + TTL 5 s)", time.Since(killed).Round(10*time.Millisecond))
}

func answerAddr(r digResult) string {
	if len(r.Sections["ANSWER"]) == 0 {
		return ""
	}
	f := strings.Fields(r.Sections["ANSWER"][len(r.Sections["ANSWER"])-1])
	return f[len(f)-1]
}

var ttlRE = regexp.MustCompile(`^\S+\s+(\d+)\s`)

func ttlOf(rr string) int {
	m := ttlRE.FindStringSubmatch(rr)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

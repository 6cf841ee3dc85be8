//go:build e2e

package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSecretRules: `gslb secret` prints a secret a node accepts; a guessable
// one is refused at start with the key named.
func TestSecretRules(t *testing.T) {
	out, err := exec.Command(binary(t), "secret").Output()
	if err != nil {
		t.Fatalf("gslb secret: %v", err)
	}
	secret := strings.TrimSpace(string(out))
	dir := t.TempDir()
	cfg := func(secret string) string {
		return writeFile(t, dir, "n.yaml", fmt.Sprintf(`node: n1
dns: ["127.0.0.1:0"]
data: %q
probes: {enabled: false}
cluster:
  raft: "127.0.0.1:%d"
  secret: %q
  peers: [{id: n1, raft: "127.0.0.1:%[2]d"}]
`, filepath.Join(dir, "data"), freePort(t), secret))
	}
	weak := exec.Command(binary(t), "serve", "-config", cfg("aaaaaaaaaaaaaaaa"))
	msg, err := weak.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "cluster.secret: ") || !strings.Contains(string(msg), "gslb secret") {
		t.Errorf("a node with secret aaaaaaaaaaaaaaaa: %v\n%s", err, msg)
	}
	p := start(t, "serve", "-config", cfg(secret))
	if p.ready["raft"] == "" {
		t.Errorf("a node with the output of gslb secret: ready line %v", p.ready)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	return freeBase(t, []string{"127.0.0.1"})
}

// TestCrossSiteWrites: a web page cannot drive a node's admin API or the
// demo's control: a cross-origin text/plain POST (what a page can send
// without a preflight) gets 403, on the node and on the demo, and changes
// nothing.
func TestCrossSiteWrites(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "example.com.zone", "$ORIGIN example.com.\n@ 300 IN SOA ns1 h 1 3600 600 1209600 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.53\n$REGION eu-west lat=53.35 lon=-6.26 serves=EU\n$POOL web-eu region=eu-west members=198.51.100.10\nwww 30 IN GSLB failover pools=web-eu\n")
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--admin", "127.0.0.1:0", "--probes", "false")
	admin := p.ready["admin"]
	for _, tc := range []struct {
		name, ctype, origin, site string
		code                      int
	}{
		{"form post from another site", "text/plain", "http://evil.example", "cross-site", 403},
		{"JSON from another origin", "application/json", "http://evil.example", "", 403},
		{"text/plain from the same origin", "text/plain", "http://" + admin, "same-origin", 415},
	} {
		req, _ := http.NewRequest("POST", "http://"+admin+"/api/v1/drain", strings.NewReader(`{"kind":"region","name":"eu-west"}`))
		req.Header.Set("Content-Type", tc.ctype)
		req.Header.Set("Origin", tc.origin)
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: %d (CORS %q), want %d and no CORS header", tc.name, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), tc.code)
		}
	}
	var st struct{ Overrides []any }
	getJSON(t, "http://"+admin+"/api/v1/status", &st)
	if len(st.Overrides) != 0 {
		t.Errorf("overrides after the refused requests: %v", st.Overrides)
	}
}

// TestStateRestore: a follower whose state.db was deleted restarts without
// answering SERVFAIL from an empty state (it answers only once its own
// snapshot and log are applied); a follower whose raft.db was damaged
// refuses to start with one line naming the file and the remedy, and
// following the remedy brings it back with every acknowledged write.
func TestStateRestore(t *testing.T) {
	need(t, "dig")
	c := newCluster(t)
	live := c.regions
	home := map[string]string{}
	for _, r := range c.regions {
		home[r.name] = r.ip
	}
	c.allAnswer("every region up on every nameserver", live, home, 60*time.Second)
	for _, name := range []string{"198.18.9.9", "198.18.7.7"} {
		if out, err := runCmd(t, "drain", "member", name, "--server", live[0].admin); err != nil {
			t.Fatalf("drain %s: %v\n%s", name, err, out)
		}
	}
	ap := c.byName("ap-south")

	// state.db deleted.
	c.killRegion(ap)
	data := filepath.Join(c.dir, ap.name, "data", "raft")
	if err := os.Remove(filepath.Join(data, "state.db")); err != nil {
		t.Fatal(err)
	}
	var bad, answered, queries atomic.Int64
	var firstBad atomic.Value
	t0 := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := &dns.Client{Timeout: 200 * time.Millisecond}
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, _, err := cl.Exchange(m, ap.dns)
			queries.Add(1)
			if err != nil {
				time.Sleep(10 * time.Millisecond) // not listening yet
				continue
			}
			if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
				answered.Add(1)
			} else if bad.Add(1) == 1 { // SERVFAIL, REFUSED or an empty answer: served from an empty state
				firstBad.Store(fmt.Sprintf("%s after %v: %s", dns.RcodeToString[r.Rcode], time.Since(t0).Round(time.Millisecond), strings.ReplaceAll(r.String(), "\n", " | ")))
			}
		}
	}()
	c.startRegion(ap)
	waitFor(t, "ap-south answering again", 30*time.Second, func() bool { return answered.Load() > 0 })
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("ap-south gave %d replies without the answer (SERVFAIL, REFUSED, empty) while restoring its deleted state.db (%d queries); the first: %v", bad.Load(), queries.Load(), firstBad.Load())
	}
	t.Logf("state.db deleted: %d queries during the restart, %d replies without the answer", queries.Load(), bad.Load())
	if out, _ := runCmd(t, "status", "--server", ap.admin); !strings.Contains(out, "drain member 198.18.9.9") {
		t.Errorf("ap-south lost the committed drains after restoring:\n%s", out)
	}

	// raft.db damaged: pages in the middle overwritten.
	c.killRegion(ap)
	raftDB := filepath.Join(data, "raft.db")
	b, err := os.ReadFile(raftDB)
	if err != nil {
		t.Fatal(err)
	}
	for off := 2 * 4096; off+4096 <= len(b); off += 3 * 4096 {
		copy(b[off:off+4096], bytes.Repeat([]byte{0xA5}, 4096))
	}
	if err := os.WriteFile(raftDB, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), "serve", "-config", ap.config)
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	var out []byte
	select {
	case out = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("a node with a damaged raft.db still runs after 30s")
	}
	if cmd.ProcessState.Success() || !strings.Contains(string(out), "raft.db is damaged") || !strings.Contains(string(out), "move it aside") {
		t.Fatalf("a node with a damaged raft.db: exit %v\n%s", cmd.ProcessState, out)
	}
	if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
		t.Errorf("the damaged raft.db made the node panic:\n%s", out)
	}
	// The remedy: move it aside and start again; the node catches up.
	if err := os.Rename(raftDB, raftDB+".damaged"); err != nil {
		t.Fatal(err)
	}
	c.startRegion(ap)
	waitFor(t, "ap-south caught up after raft.db was moved aside", 30*time.Second, func() bool {
		out, _ := runCmd(t, "status", "--server", ap.admin)
		return strings.Contains(out, "drain member 198.18.9.9") && strings.Contains(out, "drain member 198.18.7.7")
	})
}

//go:build e2e

package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadSteering is issue 17's load steering on the real binary: a node
// (a cluster of one) whose region proxy has one server with max_conns: 4.
// With three requests held in flight (75 % utilisation), the geo record
// with spill=50% answers half of eu-west's client networks with us-east,
// the same networks on repeated queries; when the requests finish, every
// network is back on eu-west. The figures go through the proxy's load
// report, the store and the DNS view, as in a cluster.
func TestLoadSteering(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
			<-release
		}
	}))
	defer backend.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	dir := t.TempDir()
	zdir := filepath.Join(dir, "zones")
	os.Mkdir(zdir, 0o755)
	writeFile(t, zdir, "example.com.zone", `$ORIGIN example.com.
@ 300 IN SOA ns1 h 1 3600 600 1209600 60
@ 300 IN NS ns1
ns1 300 IN A 127.0.0.1
$REGION eu-west lat=53.35 lon=-6.26 serves=20.0.0.0/8
$REGION us-east lat=39.04 lon=-77.49 serves=NA
$POOL web-eu region=eu-west members=127.0.0.12
$POOL web-us region=us-east members=127.0.0.11
www 10 IN GSLB geo spill=50% pools=web-eu,web-us
`)
	cfg := writeFile(t, dir, "node.yaml", fmt.Sprintf(`node: n1
region: eu-west
dns: "127.0.0.1:0"
admin: "127.0.0.1:0"
data: %q
zones: %q
cluster:
  raft: "127.0.0.1:%d"
  secret: %q
  fast: true
  peers: [{id: n1, raft: "127.0.0.1:%[3]d", region: eu-west}]
proxy:
  listeners: [{name: web, address: "127.0.0.1:0"}]
  groups: [{name: web, max_conns: 4, backends: [{address: %[5]q}]}]
  routes: [{name: web, backends: web}]
`, filepath.Join(dir, "data"), zdir, freePort(t), newSecret(t), backend.Listener.Addr().String()))
	p := start(t, "serve", "--config", cfg)
	ns := p.ready["dns"]

	const nets = 200
	answers := func() (spilled int, by []string) {
		for i := range nets {
			a := wwwECS(ns, fmt.Sprintf("20.%d.%d.0/24", i/100, i%100))
			by = append(by, a)
			if a == "127.0.0.11" {
				spilled++
			} else if a != "127.0.0.12" {
				t.Fatalf("20.%d.%d.0/24: answered %q, want eu-west's 127.0.0.12 or us-east's 127.0.0.11", i/100, i%100, a)
			}
		}
		return spilled, by
	}
	waitFor(t, "the zone served (eu-west for its networks)", 30*time.Second, func() bool {
		return wwwECS(ns, "20.0.0.0/24") == "127.0.0.12"
	})
	if n, _ := answers(); n != 0 {
		t.Fatalf("%d of %d eu-west networks answered with us-east while eu-west is idle, want 0", n, nets)
	}

	// Three requests held in flight on the one server: 75 % of max_conns.
	for range 3 {
		go func() {
			if resp, err := http.Get("http://" + p.ready["proxy.web"] + "/hold"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, "three requests held", 10*time.Second, func() bool { return held.Load() == 3 })
	defer func() {
		if t.Failed() {
			out, _ := exec.Command(binary(t), "status", "--server", p.ready["admin"]).CombinedOutput()
			t.Logf("gslb status:\n%s", out)
			out, _ = exec.Command(binary(t), "explain", "www.example.com", "--subnet", "20.0.1.0/24", "--server", p.ready["admin"]).CombinedOutput()
			t.Logf("gslb explain:\n%s", out)
		}
	}()
	var by1 []string
	waitFor(t, "eu-west's networks spilled to us-east (75 % with spill=50%: half of them)", 20*time.Second, func() bool {
		n, by := answers()
		by1 = by
		return n >= nets*35/100 && n <= nets*65/100
	})
	n1 := 0
	for _, a := range by1 {
		if a == "127.0.0.11" {
			n1++
		}
	}
	t.Logf("at 75 %% utilisation, %d of %d eu-west networks answered with us-east", n1, nets)
	_, by2 := answers()
	if strings.Join(by2, " ") != strings.Join(by1, " ") {
		t.Errorf("repeated queries moved networks between regions (want the same networks spilled every time)")
	}
	out, err := exec.Command(binary(t), "explain", "www.example.com", "--subnet", "20.0.1.0/24", "--server", p.ready["admin"]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "spill=50%: eu-west at 75%") {
		t.Errorf("gslb explain does not show the load figures (%v):\n%s", err, out)
	}

	close(release)
	released = true
	waitFor(t, "every network back on eu-west once the requests finished", 20*time.Second, func() bool {
		n, _ := answers()
		return n == 0
	})
}

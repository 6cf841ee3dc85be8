//go:build e2e

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMonitoringContrib: every metric that contrib/grafana/gslb-dashboard.json
// and contrib/prometheus/gslb-alerts.yml name is on the /metrics of a
// running node (a cluster of one with a region proxy, a pool checked over
// https for the certificate expiry); the rules pass `promtool check rules` where promtool is
// installed.
func TestMonitoringContrib(t *testing.T) {
	tlsBackend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsBackend.Close()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	_, tlsPort, _ := net.SplitHostPort(tlsBackend.Listener.Addr().String())
	_, webPort, _ := net.SplitHostPort(backend.Listener.Addr().String())

	dir := t.TempDir()
	zdir := filepath.Join(dir, "zones")
	os.Mkdir(zdir, 0o755)
	writeFile(t, zdir, "example.com.zone", fmt.Sprintf(`$ORIGIN example.com.
@ 300 IN SOA ns1 h 1 3600 600 1209600 60
@ 300 IN NS ns1
ns1 300 IN A 127.0.0.1
$REGION eu-west lat=53.35 lon=-6.26 serves=EU
$POOL web-eu region=eu-west members=127.0.0.1 check=http://:%s/health/region interval=1s
$POOL tls-eu region=eu-west members=127.0.0.1 check=https://:%s/ insecure=true interval=1s
$POOL dead-eu region=eu-west members=127.0.0.2 check=tcp://:1 interval=1s fails=1
www 30 IN GSLB failover pools=web-eu,tls-eu,dead-eu
`, webPort, tlsPort))
	cfg := writeFile(t, dir, "node.yaml", fmt.Sprintf(`node: n1
region: eu-west
dns: "127.0.0.1:0"
admin: "127.0.0.1:0"
data: %q
zones: %q
cluster:
  raft: "127.0.0.1:%d"
  secret: %q
  peers: [{id: n1, raft: "127.0.0.1:%[3]d", region: eu-west}]
proxy:
  listeners: [{name: web, address: "127.0.0.1:0"}]
  groups: [{name: web, backends: [{address: %[5]q}]}]
  routes: [{name: web, backends: web}]
`, filepath.Join(dir, "data"), zdir, freePort(t), newSecret(t), backend.Listener.Addr().String()))
	p := start(t, "serve", "--config", cfg)
	admin := p.ready["admin"]
	// Some traffic, so that the proxy's and DNS's labelled series exist.
	if resp, err := http.Get("http://" + p.ready["proxy.web"] + "/"); err == nil {
		resp.Body.Close()
	}
	udpSizes(t, p.ready["dns"], "www.example.com.", dns.TypeA, false)

	want := map[string][]string{} // metric name -> files naming it
	for _, f := range []string{"../contrib/grafana/gslb-dashboard.json", "../contrib/prometheus/gslb-alerts.yml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".json") {
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		for _, m := range regexp.MustCompile(`\bgslb_[a-z0-9_]+`).FindAllString(string(data), -1) {
			want[m] = append(want[m], filepath.Base(f))
		}
	}
	if len(want) < 20 {
		t.Fatalf("only %d metric names found in the dashboard and rules", len(want))
	}

	// The https check's certificate expiry appears after its first probe.
	var missing []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		have := scrapeNames(t, "http://"+admin+"/metrics")
		missing = missing[:0]
		for m := range want {
			if !have[m] {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s (named in %s) is not on a running node's /metrics", m, strings.Join(dedup(want[m]), ", "))
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (Debian: prometheus); rules not checked with it")
		return
	}
	out, err := exec.Command(promtool, "check", "rules", "../contrib/prometheus/gslb-alerts.yml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// scrapeNames returns the sample names on a /metrics page (histograms
// contribute NAME_bucket, NAME_sum and NAME_count).
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		names[name] = true
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(name, s) {
				names[strings.TrimSuffix(name, s)] = true
			}
		}
	}
	return names
}

func newSecret(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(binary(t), "secret").Output()
	if err != nil {
		t.Fatalf("gslb secret: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func dedup(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

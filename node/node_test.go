package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/dnsserver/dnstest"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
)

const testZone = `$ORIGIN example.com.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east lat=39.04 lon=-77.49 serves=NA,SA
$REGION eu-west lat=53.35 lon=-6.26 serves=EU,AF
$POOL web-us region=us-east members=192.0.2.10
$POOL web-eu region=eu-west members=198.51.100.10
admin 30 IN GSLB failover pools=web-eu,web-us
static IN A 192.0.2.80
`

// startTestNode starts a single node (no cluster, no probes) on loopback
// with testZone, and its admin listener.
func startTestNode(t *testing.T, edit func(*Config)) (*Node, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	off := false
	cfg := DefaultConfig()
	cfg.DNS.Listen = StringList{"127.0.0.1:0"}
	cfg.Zones = dir
	cfg.Admin = "127.0.0.1:0"
	cfg.ZonesPoll = 0
	cfg.Probes.Enabled = &off
	if edit != nil {
		edit(cfg)
	}
	n, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	return n, dir
}

func answerOf(t *testing.T, n *Node, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r := dnstest.Exchange(t, n.DNSAddrs()[0].String(), "udp", m)
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// post sends a write as the CLI does (JSON, no Origin), plus extra headers.
func post(t *testing.T, addr, path, ctype, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOverrides: a drain through the admin API changes the answers at once;
// undrain brings them back; an override of a target no zone defines is
// refused with the names that exist.
func TestOverrides(t *testing.T) {
	n, _ := startTestNode(t, nil)
	addr := n.AdminAddr().String()
	if got := answerOf(t, n, "admin.example.com."); !slices.Equal(got, []string{"198.51.100.10"}) {
		t.Fatalf("admin before the drain = %v, want eu-west's 198.51.100.10", got)
	}
	snap := n.dns.Snapshot()
	c := &api.Client{Server: addr}
	if err := c.Override(context.Background(), "drain", api.OverrideRequest{Kind: "region", Name: "eu-west"}); err != nil {
		t.Fatal(err)
	}
	if got := answerOf(t, n, "admin.example.com."); !slices.Equal(got, []string{"192.0.2.10"}) {
		t.Fatalf("admin after draining eu-west = %v, want us-east's 192.0.2.10", got)
	}
	// The override changed the health view only: the same snapshot (no
	// recompile). (Static replies are assembled by the wire fast path
	// without the reply cache, so there is no cache entry to keep.)
	if n.dns.Snapshot() != snap {
		t.Errorf("the drain built a new snapshot; want only a new health view")
	}
	st, _, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Overrides) != 1 || st.Overrides[0].Name != "eu-west" || st.Overrides[0].Action != "drain" {
		t.Errorf("status overrides = %+v, want the drain of eu-west", st.Overrides)
	}
	if err := c.Override(context.Background(), "undrain", api.OverrideRequest{Kind: "region", Name: "eu-west"}); err != nil {
		t.Fatal(err)
	}
	if got := answerOf(t, n, "admin.example.com."); !slices.Equal(got, []string{"198.51.100.10"}) {
		t.Fatalf("admin after the undrain = %v, want 198.51.100.10", got)
	}
	for _, tc := range []struct{ kind, name, want string }{
		{"pool", "nosuch", `pool "nosuch": no zone defines it (pools: web-eu, web-us)`},
		{"region", "mars", `region "mars": no zone defines it (regions: eu-west, us-east)`},
		{"member", "203.0.113.9", `member "203.0.113.9": no pool has it`},
		{"planet", "x", `kind: "planet" is not region, pool or member`},
	} {
		err := c.Override(context.Background(), "drain", api.OverrideRequest{Kind: tc.kind, Name: tc.name})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("drain %s %s: %v, want an error containing %q", tc.kind, tc.name, err, tc.want)
		}
	}
	if err := c.Override(context.Background(), "force-down", api.OverrideRequest{Kind: "member", Name: "web-eu/198.51.100.10", For: "1h"}); err != nil {
		t.Errorf("force-down of POOL/ADDRESS: %v", err)
	}
	if got := answerOf(t, n, "admin.example.com."); !slices.Equal(got, []string{"192.0.2.10"}) {
		t.Fatalf("admin with web-eu's member forced down = %v, want 192.0.2.10", got)
	}
}

// TestAdminAccess: writes need JSON and the same origin; with a token,
// reads and writes need it (compared exactly), /metrics too unless
// admin_open_metrics.
func TestAdminAccess(t *testing.T) {
	n, _ := startTestNode(t, func(c *Config) { c.AdminToken = "s3cret-s3cret" })
	addr := n.AdminAddr().String()
	drain := `{"kind":"region","name":"eu-west"}`
	auth := map[string]string{"Authorization": "Bearer s3cret-s3cret"}
	for _, tc := range []struct {
		name, ctype string
		hdr         map[string]string
		code        int
	}{
		{"no token", "application/json", nil, 401},
		{"wrong token", "application/json", map[string]string{"Authorization": "Bearer s3cret-s3creT"}, 401},
		{"token prefix", "application/json", map[string]string{"Authorization": "Bearer s3cret"}, 401},
		{"text/plain", "text/plain", auth, 415},
		{"form", "application/x-www-form-urlencoded", auth, 415},
		{"cross-site", "application/json", map[string]string{"Authorization": auth["Authorization"], "Sec-Fetch-Site": "cross-site"}, 403},
		{"other origin", "application/json", map[string]string{"Authorization": auth["Authorization"], "Origin": "http://evil.example"}, 403},
		{"same origin", "application/json", map[string]string{"Authorization": auth["Authorization"], "Origin": "http://" + addr}, 200},
		{"CLI", "application/json", auth, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, addr, "/api/v1/drain", tc.ctype, drain, tc.hdr)
			if code != tc.code {
				t.Errorf("POST /api/v1/drain: %d %s, want %d", code, body, tc.code)
			}
		})
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/events", "/api/v1/explain?name=admin.example.com&client=192.0.2.1", "/metrics", "/health"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("GET %s without the token: %d, want 401", path, resp.StatusCode)
		}
	}
	resp, err := http.Get("http://" + addr + "/api/v1/drain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/v1/drain: %d, want 405 or 404 (writes are POST only)", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin %q, want none", got)
	}

	open, _ := startTestNode(t, func(c *Config) { c.AdminToken = "s3cret-s3cret"; c.AdminOpenMetrics = true })
	for _, tc := range []struct {
		path string
		code int
	}{{"/metrics", 200}, {"/health", 200}, {"/api/v1/status", 401}} {
		resp, err := http.Get("http://" + open.AdminAddr().String() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("admin_open_metrics: GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
}

// TestAdminTokenFile: the token can come from a file; a missing file
// stops the start with the key named.
func TestAdminTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	os.WriteFile(path, []byte("from-a-file\n"), 0o600)
	n, _ := startTestNode(t, func(c *Config) { c.AdminTokenFile = path })
	code, body := post(t, n.AdminAddr().String(), "/api/v1/drain", "application/json", `{"kind":"region","name":"eu-west"}`,
		map[string]string{"Authorization": "Bearer from-a-file"})
	if code != 200 {
		t.Errorf("drain with the file's token: %d %s", code, body)
	}
	cfg := DefaultConfig()
	cfg.DNS.Listen, cfg.Zones, cfg.Admin, cfg.AdminTokenFile = StringList{"127.0.0.1:0"}, t.TempDir(), "127.0.0.1:0", filepath.Join(t.TempDir(), "none")
	if _, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "admin_token_file") {
		t.Errorf("start with a missing token file: %v, want an error naming admin_token_file", err)
	}
}

// TestZoneErrors: a broken zone file is reported with FILE:LINE in the
// status and a metric, the previous version keeps serving, and the file is
// not parsed again on every look until it changes.
func TestZoneErrors(t *testing.T) {
	n, dir := startTestNode(t, nil)
	file := filepath.Join(dir, "example.com.zone")
	broken := strings.Replace(testZone, "static IN A 192.0.2.80", "static IN A 192.0.2.800", 1)
	if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(file, future, future)
	n.Reload()
	before := n.loader.Parses()
	for i := 0; i < 3; i++ {
		n.zonesChanged("file changed", false)
	}
	if got := n.loader.Parses(); got != before {
		t.Errorf("the broken file was parsed %d more times while unchanged, want 0", got-before)
	}
	if got := answerOf(t, n, "static.example.com."); !slices.Equal(got, []string{"192.0.2.80"}) {
		t.Errorf("static = %v, want the previous version's 192.0.2.80", got)
	}
	st := n.Status()
	msg := st.ZoneErrors[file]
	if !strings.Contains(msg, file+":11:") {
		t.Errorf("status zone_errors = %q, want %s:11: ...", st.ZoneErrors, file)
	}
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "gslb_zones_failed 1") {
		t.Errorf("/metrics has no gslb_zones_failed 1")
	}
	// Fixed: served, and the error is gone.
	fixed := strings.Replace(testZone, "192.0.2.80", "192.0.2.81", 1)
	os.WriteFile(file, []byte(fixed), 0o644)
	later := future.Add(2 * time.Second)
	os.Chtimes(file, later, later)
	n.zonesChanged("file changed", false)
	if got := answerOf(t, n, "static.example.com."); !slices.Equal(got, []string{"192.0.2.81"}) {
		t.Errorf("static after the fix = %v, want 192.0.2.81", got)
	}
	if st := n.Status(); len(st.ZoneErrors) != 0 {
		t.Errorf("zone_errors after the fix: %v", st.ZoneErrors)
	}
}

// TestStatusJSON: /api/v1/status decodes into api.Status with the zone,
// regions and pools of the node.
func TestStatusJSON(t *testing.T) {
	n, _ := startTestNode(t, nil)
	var st api.Status
	resp, err := http.Get("http://" + n.AdminAddr().String() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Zones["example.com."] != 1 || len(st.Regions) != 2 || len(st.Pools) != 2 {
		t.Errorf("status = %s", body)
	}
	if strings.Contains(string(body), "demo") {
		t.Errorf("the status mentions the demo: %s", body)
	}
}

// freeAddr returns a loopback TCP address free at the time of asking.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestClusterNode: a one-node cluster takes the operator's zone through the
// store and serves it from memory (nothing written under data/ for the
// loader), parses each zone version once, commits overrides, and on a
// restart serves the committed zone and overrides at once (warm start),
// without a zones directory.
func TestClusterNode(t *testing.T) {
	data, zonesDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(zonesDir, "example.com.zone"), []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	raft := freeAddr(t)
	off := false
	mk := func(zones string) *Config {
		cfg := DefaultConfig()
		cfg.Node, cfg.Region, cfg.Data, cfg.Zones = "n1", "us-east", data, zones
		cfg.DNS.Listen, cfg.Admin, cfg.ZonesPoll = StringList{"127.0.0.1:0"}, "127.0.0.1:0", 0
		cfg.Probes.Enabled = &off
		cfg.Cluster = &ClusterConfig{Raft: raft, Secret: "Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA", Fast: true,
			Peers: []PeerConfig{{ID: "n1", Raft: raft, Region: "us-east"}}}
		return cfg
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(context.Background(), mk(zonesDir), log)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the committed zone served", func() bool { return len(answerOf(t, n, "static.example.com.")) == 1 })
	if got := n.loader.Parses(); got != 1 {
		t.Errorf("the loader parsed %d zone versions, want 1", got)
	}
	c := &api.Client{Server: n.AdminAddr().String()}
	if err := c.Override(context.Background(), "drain", api.OverrideRequest{Kind: "region", Name: "eu-west"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the committed drain applied", func() bool {
		return slices.Equal(answerOf(t, n, "admin.example.com."), []string{"192.0.2.10"})
	})
	if got := n.loader.Parses(); got != 1 {
		t.Errorf("after an override commit the loader parsed %d zone versions, want still 1", got)
	}
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".zone") {
			t.Errorf("a zone file was written under the data directory: %s", p)
		}
		return nil
	})
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Warm start: no zones directory; the committed state is served.
	n, err = Start(context.Background(), mk(""), log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	if got := answerOf(t, n, "admin.example.com."); !slices.Equal(got, []string{"192.0.2.10"}) {
		t.Errorf("right after the restart admin = %v, want 192.0.2.10 (zone and drain from the committed state)", got)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRemoteVerdicts: other regions' probers' verdicts, committed through
// the store, reach this node's answers (store -> reports -> aggregator ->
// health view), without a new snapshot; a heartbeat with no transition
// changes nothing a query sees.
func TestRemoteVerdicts(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	_, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	zone := strings.Replace(testZone, "$POOL web-eu region=eu-west members=198.51.100.10",
		"$POOL web-eu region=eu-west members=127.0.0.1 check=http://:"+port+"/\n"+
			"$POOL spare region=us-east members=127.0.0.1 check=http://:"+port+"/spare", 1)
	zdir, data := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(zdir, "example.com.zone"), []byte(zone), 0o644)
	raft := freeAddr(t)
	cfg := DefaultConfig()
	cfg.Node, cfg.Region, cfg.Data, cfg.Zones = "n1", "us-east", data, zdir
	cfg.DNS.Listen, cfg.ZonesPoll = StringList{"127.0.0.1:0"}, 0
	cfg.Cluster = &ClusterConfig{Raft: raft, Secret: "Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA", Fast: true,
		Peers: []PeerConfig{{ID: "n1", Raft: raft, Region: "us-east"}}}
	n, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	waitFor(t, "web-eu (127.0.0.1, checked up here) answering", func() bool {
		return slices.Equal(answerOf(t, n, "admin.example.com."), []string{"127.0.0.1"})
	})
	// The probers also see a second target up: a prober that sees every
	// target down is suspect (partitioned itself) and does not count.
	var key, spare string
	for _, tg := range probes.TargetsFromZones(n.loader.Zones()...) {
		if strings.HasSuffix(tg.String(), "/spare") {
			spare = tg.Key()
		} else {
			key = tg.Key()
		}
	}
	snap := n.dns.Snapshot()
	report := func(up bool, transition bool) {
		t.Helper()
		now := time.Now().UTC()
		for _, p := range []string{"p-eu", "p-ap"} {
			b := &store.ReportBatch{Prober: p, Heartbeat: &store.Heartbeat{Prober: p, Region: p, At: now, Every: 5 * time.Second}}
			if transition {
				b.Transitions = []store.Transition{{Prober: p, Region: p, Key: key, Up: up, Reason: "test", At: now},
					{Prober: p, Region: p, Key: spare, Up: true, Reason: "test", At: now}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := n.store.Submit(ctx, b)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	report(false, true) // two of three probers: down
	waitFor(t, "web-eu down by the remote probers' majority", func() bool {
		return slices.Equal(answerOf(t, n, "admin.example.com."), []string{"192.0.2.10"})
	})
	if n.dns.Snapshot() != snap {
		t.Errorf("a remote verdict built a new snapshot; want only a new health view")
	}
	view := n.dns.View()
	report(false, false) // heartbeats only
	time.Sleep(100 * time.Millisecond)
	if n.dns.View() != view {
		t.Errorf("a heartbeat with no transition published a new health view")
	}
	report(true, true)
	waitFor(t, "web-eu back", func() bool {
		return slices.Equal(answerOf(t, n, "admin.example.com."), []string{"127.0.0.1"})
	})
}

// TestDNSConfig: the dns key as a mapping reaches the DNS server (here a
// response-rate limit of 5 per second that counts loopback clients too and
// drops instead of slipping), and nodes of one cluster share their DNS
// cookie secret, derived from the cluster secret.
func TestDNSConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(testZone), 0o644)
	path := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("dns:\n  listen: [\"127.0.0.1:0\"]\n  rrl: {rate: 5, slip: -1, limit_loopback: true}\nzones: %q\nzones_poll: 0s\nprobes: {enabled: false}\n", dir)), 0o644)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("static.example.com.", dns.TypeA)
	answered := 0
	for i := 0; i < 40; i++ {
		if _, _, err := c.Exchange(m, n.DNSAddrs()[0].String()); err == nil {
			answered++
		}
	}
	if answered == 0 || answered >= 40 {
		t.Errorf("%d of 40 back-to-back queries answered with dns.rrl.rate 5, want some but not all", answered)
	}

	a := &Config{Cluster: &ClusterConfig{Secret: "Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA"}}
	b := &Config{Cluster: &ClusterConfig{Secret: "Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA"}}
	other := &Config{Cluster: &ClusterConfig{Secret: "Yq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA"}}
	if ka, kb, ko := cookieSecret(a), cookieSecret(b), cookieSecret(other); len(ka) != 16 || !bytes.Equal(ka, kb) || bytes.Equal(ka, ko) {
		t.Errorf("cookie secrets: %x %x %x, want 16 bytes, equal for one cluster secret, different for another", ka, kb, ko)
	}
	if cookieSecret(&Config{}) != nil {
		t.Error("a single node got a derived cookie secret; want a random one from dnsserver")
	}
}

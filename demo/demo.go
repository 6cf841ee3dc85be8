// Package demo is `gslb demo`: a three-region cluster on loopback, each
// region a real `gslb serve` process (DNS, prober, Raft member, region
// proxy, admin) with two small HTTP backends behind its proxy. A control
// listener serves the dashboard of a live node with kill and start buttons
// (same origin), and `gslb demo kill|kill-servers|start REGION` from
// another terminal finds it through a state file in a private per-user
// directory. Each region's proxy spills requests to the nearest other
// region's proxy when its own servers are gone.
//
// The demo is a user of the product, not part of it: nothing of it is in
// the node's config or API.
package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/store"
)

type demoRegion struct {
	Name     string   `json:"name"`
	IP       string   `json:"ip"`
	Lat, Lon float64  `json:"-"`
	Serves   string   `json:"-"`
	DNS      string   `json:"dns"`
	Admin    string   `json:"admin"`
	Raft     string   `json:"raft"`
	Proxy    string   `json:"proxy"`
	Backends []string `json:"backends"`
	Alive    bool     `json:"alive"`   // the node (and its proxy) runs
	Servers  bool     `json:"servers"` // its backends run

	cmd      *exec.Cmd
	done     chan struct{}
	backends []*http.Server
	config   string
	logFile  string
}

// demoState is written to the state file so other commands find the demo.
type demoState struct {
	Control string        `json:"control"`
	Dir     string        `json:"dir"`
	Regions []*demoRegion `json:"regions"`
}

// stateDir is the demo's private directory: one per user (0700), checked
// to be this user's own before anything is read from or written to it.
func stateDir(create bool) (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("gslb-demo-%d", os.Getuid()))
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() || st.Mode().Perm() != 0o700 || !ownedByMe(st) {
		return "", fmt.Errorf("%s is not a private directory of this user (want mode 0700, owned by uid %d): remove it", dir, os.Getuid())
	}
	return dir, nil
}

// stateFile is the file that tells `gslb demo kill|start` where the
// running demo listens.
func stateFile(create bool) (string, error) {
	dir, err := stateDir(create)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "state.json"), nil
}

// Run is `gslb demo [flags]` and `gslb demo kill|start REGION`; it returns
// the exit code.
func Run(args []string) int {
	if len(args) > 0 && (args[0] == "kill" || args[0] == "kill-servers" || args[0] == "start") {
		return demoControl(args[0], args[1:])
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gslb demo [--port PORT] [--interval DURATION] [--fails N]\n       gslb demo kill REGION\n       gslb demo kill-servers REGION\n       gslb demo start REGION\n\nRuns a three-region cluster on loopback (Ctrl-C stops it). From another\nterminal: kill stops a whole region (node, proxy, backends); kill-servers\nstops only its backends, so its proxy spills requests to the nearest other\nregion while DNS moves its clients; start brings back what was stopped.\n\nflags:")
		fs.PrintDefaults()
	}
	basePort := fs.Int("port", 5353, "DNS `PORT` of the demo nodes (other ports follow from it)")
	interval := fs.Duration("interval", time.Second, "health-check interval of the demo pools")
	fails := fs.Int("fails", 2, "consecutive failures before a member is down")
	spill := fs.Bool("spill", true, "let a region's proxy send requests to the nearest other region's proxy when its own servers are gone")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gslb demo: unknown word %q (want kill REGION, kill-servers REGION, start REGION, or flags only); a running demo stops with Ctrl-C in its terminal\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDemo(*basePort, *interval, *fails)
	d.noSpill = !*spill
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo:", err)
		return 1
	}
	defer d.close()
	if err := d.start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo:", err)
		d.printLogTails(os.Stderr)
		return 1
	}
	d.printHelp(os.Stdout)
	<-ctx.Done()
	fmt.Println("\ngslb demo: stopping every node and backend")
	return 0
}

type demo struct {
	dir      string
	regions  []*demoRegion
	secret   string
	interval time.Duration
	fails    int
	noSpill  bool // the proxies have no spill section
	control  *http.Server
	ctlAddr  string
	mu       sync.Mutex
}

func newDemo(basePort int, interval time.Duration, fails int) (*demo, error) {
	dir, err := os.MkdirTemp("", "gslb-demo-")
	if err != nil {
		return nil, err
	}
	d := &demo{dir: dir, secret: store.NewSecret(), interval: interval, fails: fails}
	spec := []struct {
		name, ip, serves string
		lat, lon         float64
	}{
		{"us-east", "127.0.0.11", "NA,SA", 39.04, -77.49},
		{"eu-west", "127.0.0.12", "EU,AF", 53.35, -6.26},
		{"ap-south", "127.0.0.13", "AS,OC", 1.35, 103.82},
	}
	// Distinct loopback addresses where the system has them (Linux has
	// all of 127/8); otherwise one address and distinct ports.
	separate := canListen("127.0.0.12:0")
	for i, s := range spec {
		ip, off := s.ip, 0
		if !separate {
			ip, off = "127.0.0.1", i*10
		}
		r := &demoRegion{Name: s.name, IP: ip, Lat: s.lat, Lon: s.lon, Serves: s.serves,
			DNS:      net.JoinHostPort(ip, fmt.Sprint(basePort+off)),
			Admin:    net.JoinHostPort(ip, fmt.Sprint(basePort+off+1)),
			Raft:     net.JoinHostPort(ip, fmt.Sprint(basePort+off+2)),
			Proxy:    net.JoinHostPort(ip, fmt.Sprint(basePort+off+3)),
			Backends: []string{net.JoinHostPort(ip, fmt.Sprint(basePort+off+4)), net.JoinHostPort(ip, fmt.Sprint(basePort+off+5))}}
		for _, a := range []string{r.DNS, r.Admin, r.Raft, r.Proxy, r.Backends[0], r.Backends[1]} {
			if !canListen(a) {
				return nil, fmt.Errorf("%s is in use: pick other ports with -port", a)
			}
		}
		d.regions = append(d.regions, r)
	}
	return d, nil
}

func canListen(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// zone is the demo zone: one pool per region whose member is the region's
// proxy, checked through the proxy's region health endpoint.
func (d *demo) zone() string {
	var b strings.Builder
	fmt.Fprintf(&b, `; The gslb demo zone: three regions on loopback.
$ORIGIN example.com.
$TTL 60
@        IN SOA ns1 hostmaster 2026112301 3600 600 1209600 30
@        IN NS  ns1
@        IN NS  ns2
@        IN NS  ns3
`)
	for i, r := range d.regions {
		fmt.Fprintf(&b, "ns%d      IN A   %s\n", i+1, r.IP)
	}
	for _, r := range d.regions {
		fmt.Fprintf(&b, "$REGION %-9s lat=%v lon=%v serves=%s\n", r.Name, r.Lat, r.Lon, r.Serves)
	}
	for _, r := range d.regions {
		_, port, _ := net.SplitHostPort(r.Proxy)
		fmt.Fprintf(&b, "$POOL web-%-8s region=%s members=%s check=http://:%s/health/region interval=%v fails=%d passes=2\n",
			r.Name, r.Name, r.IP, port, d.interval, d.fails)
	}
	names := func(sep string, order ...int) string {
		var s []string
		for _, i := range order {
			s = append(s, "web-"+d.regions[i].Name+sep)
		}
		return strings.Join(s, ",")
	}
	fmt.Fprintf(&b, "www      10 IN GSLB geo      pools=%s\n", names("", 0, 1, 2))
	fmt.Fprintf(&b, "api      10 IN GSLB latency  pools=%s\n", names("", 0, 1, 2))
	fmt.Fprintf(&b, "admin    10 IN GSLB failover pools=%s\n", names("", 1, 0, 2))
	fmt.Fprintf(&b, "cdn      10 IN GSLB weighted pools=web-us-east@3,web-eu-west@1 sticky=prefix\n")
	fmt.Fprintf(&b, "all      10 IN GSLB all      pools=%s\n", names("", 0, 1, 2))
	return b.String()
}

// config writes a region's node config.
func (d *demo) config(r *demoRegion) (string, error) {
	var peers strings.Builder
	for _, p := range d.regions {
		fmt.Fprintf(&peers, "    - {id: %s, raft: \"%s\", region: %s, dns: \"%s\"}\n", p.Name, p.Raft, p.Name, p.DNS)
	}
	zonesDir := filepath.Join(d.dir, r.Name, "zones")
	if err := os.MkdirAll(zonesDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(zonesDir, "example.com.zone"), []byte(d.zone()), 0o644); err != nil {
		return "", err
	}
	var spill strings.Builder
	if !d.noSpill {
		spill.WriteString("  spill:\n    check_interval: 500ms\n    peers:\n")
		for _, p := range d.nearest(r) {
			fmt.Fprintf(&spill, "      - {region: %s, address: \"%s\"}\n", p.Name, p.Proxy)
		}
	}
	cfg := fmt.Sprintf(`# gslb demo node %s
node: %s
region: %s
dns: ["%s"]
admin: "%s"
data: "%s"
zones: "%s"
zones_poll: 1s
log_level: info
cluster:
  raft: "%s"
  secret: "%s"
  fast: true
  peers:
%sproxy:
  listeners:
    - {name: web, address: "%s", protocol: http}
  routes:
    - {name: all, backends: app}
  groups:
    - name: app
      algorithm: round_robin
      health_check: {type: http, path: /healthz, interval: 500ms, timeout: 300ms, fails: 2, passes: 2}
      backends:
        - {address: "%s"}
        - {address: "%s"}
%s`, r.Name, r.Name, r.Name, r.DNS, r.Admin, filepath.Join(d.dir, r.Name, "data"), zonesDir, r.Raft, d.secret,
		peers.String(), r.Proxy, r.Backends[0], r.Backends[1], spill.String())
	path := filepath.Join(d.dir, r.Name+".yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// nearest returns the other regions, nearest first (great-circle
// distance): the order in which r's proxy spills requests.
func (d *demo) nearest(r *demoRegion) []*demoRegion {
	var out []*demoRegion
	for _, p := range d.regions {
		if p != r {
			out = append(out, p)
		}
	}
	rad := func(x float64) float64 { return x * math.Pi / 180 }
	dist := func(p *demoRegion) float64 {
		a := math.Sin(rad(p.Lat-r.Lat)/2)*math.Sin(rad(p.Lat-r.Lat)/2) +
			math.Cos(rad(r.Lat))*math.Cos(rad(p.Lat))*math.Sin(rad(p.Lon-r.Lon)/2)*math.Sin(rad(p.Lon-r.Lon)/2)
		return math.Asin(math.Sqrt(a))
	}
	slices.SortStableFunc(out, func(a, b *demoRegion) int { return cmpFloat(dist(a), dist(b)) })
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *demo) start(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	d.ctlAddr = ln.Addr().String()
	for _, r := range d.regions {
		p, err := d.config(r)
		if err != nil {
			return err
		}
		r.config = p
		r.logFile = filepath.Join(d.dir, r.Name+".log")
	}
	for _, r := range d.regions {
		if err := d.startRegion(r); err != nil {
			return err
		}
	}
	d.control = &http.Server{Handler: d.controlHandler(), ReadHeaderTimeout: 5 * time.Second}
	go d.control.Serve(ln)
	path, err := stateFile(true)
	if err != nil {
		return err
	}
	st, _ := json.MarshalIndent(demoState{Control: d.ctlAddr, Dir: d.dir, Regions: d.regions}, "", "  ")
	if err := writePrivate(path, st); err != nil {
		return err
	}
	// Wait until every node serves the committed zone.
	deadline := time.Now().Add(60 * time.Second)
	for _, r := range d.regions {
		for !demoServes(r) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not serve the zone after 60s; see %s", r.Name, r.logFile)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// demoServes reports whether a node answers for the demo zone.
func demoServes(r *demoRegion) bool {
	c := &api.Client{Server: r.Admin, HTTP: &http.Client{Timeout: 2 * time.Second}}
	st, _, err := c.Status(context.Background())
	if err != nil {
		return false
	}
	_, ok := st.Zones["example.com."]
	return ok
}

// startRegion starts what of a region is stopped: its backends, its node,
// or both.
func (d *demo) startRegion(r *demoRegion) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.Alive && r.Servers {
		return fmt.Errorf("%s is running", r.Name)
	}
	if !r.Servers {
		if err := d.startServers(r); err != nil {
			return err
		}
	}
	if r.Alive {
		return nil
	}
	return d.startNode(r)
}

// startServers starts a region's backends. d.mu is held.
func (d *demo) startServers(r *demoRegion) error {
	for i, a := range r.Backends {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("backend %s: %w", a, err)
		}
		name := fmt.Sprintf("%s backend %d", r.Name, i+1)
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s\n", name) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		r.backends = append(r.backends, srv)
	}
	r.Servers = true
	return nil
}

// stopServers stops a region's backends. d.mu is held.
func (d *demo) stopServers(r *demoRegion) {
	for _, b := range r.backends {
		b.Close()
	}
	r.backends, r.Servers = nil, false
}

// killServers stops only a region's backends: its node and proxy keep
// running, the proxy spills requests to the nearest other region, and the
// region's pool goes down in DNS.
func (d *demo) killServers(r *demoRegion) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !r.Servers {
		return fmt.Errorf("%s's servers are not running", r.Name)
	}
	d.stopServers(r)
	return nil
}

// startNode starts a region's node. d.mu is held.
func (d *demo) startNode(r *demoRegion) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(r.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "serve", "-config", r.config)
	cmd.Stderr = logf
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	r.cmd, r.done, r.Alive = cmd, make(chan struct{}), true
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		got := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") && !got {
				got = true
				ready <- true
			}
		}
		if !got {
			ready <- false
		}
		cmd.Wait()
		logf.Close()
		close(r.done)
	}()
	select {
	case ok := <-ready:
		if !ok {
			r.Alive = false
			return fmt.Errorf("%s exited before it was ready; see %s", r.Name, r.logFile)
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s not ready after 30s; see %s", r.Name, r.logFile)
	}
	return nil
}

// killRegion kills a region's node with SIGKILL and stops its backends.
func (d *demo) killRegion(r *demoRegion) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !r.Alive {
		return fmt.Errorf("%s is not running", r.Name)
	}
	r.cmd.Process.Kill()
	<-r.done
	d.stopServers(r)
	r.Alive = false
	return nil
}

func (d *demo) close() {
	for _, r := range d.regions {
		if r.Alive {
			d.killRegion(r)
		} else if r.Servers {
			d.killServers(r)
		}
	}
	if d.control != nil {
		d.control.Close()
	}
	if path, err := stateFile(false); err == nil {
		os.Remove(path)
	}
	os.RemoveAll(d.dir)
}

func (d *demo) printHelp(w io.Writer) {
	us, eu, ap := d.regions[0], d.regions[1], d.regions[2]
	host, port, _ := net.SplitHostPort(us.DNS)
	dig := fmt.Sprintf("dig @%s -p %s", host, port)
	fmt.Fprintf(w, `gslb demo: a three-region cluster on loopback is running.

  region     nameserver          admin (API, node dashboard)      proxy
`)
	for _, r := range d.regions {
		fmt.Fprintf(w, "  %-9s  %-18s  http://%-25s  http://%s\n", r.Name, r.DNS, r.Admin+"/", r.Proxy)
	}
	fmt.Fprintf(w, "\nDashboard with kill and start buttons: http://%s/\n", d.ctlAddr)
	fmt.Fprintf(w, `
Each region: a gslb node (DNS, prober, Raft member, admin), its region proxy
and two backends behind it. Every node answers the same: ask any of them.

Try (the +subnet is the client's network, as a resolver would send it):
  %[1]s www.example.com +subnet=81.2.69.0/24 +short    # Europe -> eu-west (%[2]s)
  %[1]s www.example.com +subnet=8.8.8.0/24 +short      # North America -> us-east (%[3]s)
  %[1]s www.example.com +subnet=133.11.0.0/24 +short   # Asia -> ap-south (%[4]s)
  %[1]s www.example.com +subnet=81.2.69.0/24           # the reply's CLIENT-SUBNET shows the scope
  %[1]s admin.example.com +short                       # failover: eu-west first
  %[1]s cdn.example.com +subnet=81.2.69.0/24 +short    # weighted 3:1, sticky per network
  %[1]s example.com SOA +nsid                          # NSID names the node that answered
  curl http://%[5]s/                              # the eu-west proxy and its backends

Watch a failover:
  gslb demo kill eu-west      # from another terminal: SIGKILL the eu-west node, stop its backends
  %[1]s www.example.com +subnet=81.2.69.0/24 +short    # within ~3 s: another region
  gslb status --server %[6]s  # members, each prober's vote, Raft
  gslb demo start eu-west     # bring it back; answers return after passes=2 checks

Watch spill-over (the servers die, the node and proxy live):
  gslb demo kill-servers eu-west   # stop only eu-west's two backends
  curl http://%[5]s/          # still answered, by us-east's servers through eu-west's proxy
  %[1]s www.example.com +subnet=81.2.69.0/24 +short    # within ~2 s: another region
  gslb status --server %[8]s  # "spill-over to: us-east (up, N spilled)"
  gslb demo start eu-west     # its servers return: requests go to them again
The dashboard counts the spilled requests on each region's card.

Logs and configs: %[7]s
Ctrl-C stops everything.
`, dig, eu.IP, us.IP, ap.IP, eu.Proxy, us.Admin, d.dir, eu.Admin)
}

// demoControl is `gslb demo kill|kill-servers|start REGION`.
func demoControl(action string, args []string) int {
	if len(args) != 1 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(os.Stderr, "usage: gslb demo %s REGION\n\n%s\n", action, map[string]string{
			"kill":         "Kills a region of the running demo: its node, proxy and backends.",
			"kill-servers": "Stops only the backends of a region of the running demo: its node and\nproxy keep running, and the proxy spills requests to the nearest other region.",
			"start":        "Starts again what of a region of the running demo was stopped."}[action])
		if len(args) == 1 {
			return 0
		}
		return 2
	}
	path, err := stateFile(false)
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "gslb demo:", err)
		return 1
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo: no demo is running (start one with `gslb demo`)")
		return 1
	}
	var st demoState
	if err := json.Unmarshal(data, &st); err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo:", err)
		return 1
	}
	body, _ := json.Marshal(map[string]string{"region": args[0]})
	resp, err := http.Post("http://"+st.Control+"/demo/"+action, "application/json", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo: the demo is not answering:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		fmt.Fprintf(os.Stderr, "gslb demo %s %s: %s\n", action, args[0], e.Error)
		return 1
	}
	verb := map[string]string{"kill": "killed", "kill-servers": "servers stopped (its node and proxy keep running)", "start": "started"}[action]
	fmt.Printf("%s %s\n", args[0], verb)
	return 0
}

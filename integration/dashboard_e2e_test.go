//go:build e2e

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDashboardDemo loads the node dashboard of a real `gslb demo` in
// headless Chromium, kills a region with `gslb demo kill` and watches the
// page on a surviving node show it down (CH-01 as an operator sees it);
// then checks the page keeps retrying when its node does not answer, that
// it shows NO QUORUM once a second region is killed, and that Ctrl-C on
// the demo leaves no node behind.
func TestDashboardDemo(t *testing.T) {
	chrome := chromium(t)
	if ln, err := net.Listen("tcp", "127.0.0.12:0"); err != nil {
		t.Skipf("the demo needs the whole 127/8 loopback (as Linux has): %v", err)
	} else {
		ln.Close()
	}
	tmp := t.TempDir() // TMPDIR of the demo: its state file and node folders
	d := startDemo(t, tmp)
	us := d.region(t, "us-east")
	// The demo serves the first live node's dashboard (us-east) with its
	// kill and start buttons on its own control listener (same origin).
	page := "http://" + d.state.Control + "/"

	t.Run("files", func(t *testing.T) {
		for _, tc := range []struct {
			path, ctype string
			code        int
			body        string
		}{
			{"/", "text/html", 200, `src="/dashboard/app.js"`},
			{"/dashboard/", "text/html", 200, `href="/dashboard/style.css"`},
			{"/dashboard/app.js", "text/javascript", 200, "/api/v1/status"},
			{"/dashboard/style.css", "text/css", 200, "--down"},
			{"/dashboard/nothing.js", "", 404, ""},
			{"/nothing", "", 404, ""},
		} {
			resp, err := http.Get("http://" + us.Admin + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ct := resp.Header.Get("Content-Type")
			if resp.StatusCode != tc.code || !strings.HasPrefix(ct, tc.ctype) || !strings.Contains(string(body), tc.body) {
				t.Errorf("GET %s: %d %q, want %d %q with %q", tc.path, resp.StatusCode, ct, tc.code, tc.ctype, tc.body)
			}
		}
	})

	var dom string
	waitDOM(t, chrome, page, "the three regions up on us-east's dashboard", 30*time.Second, &dom, func(dom string) bool {
		return regionState(dom, "us-east") == "up" && regionState(dom, "eu-west") == "up" && regionState(dom, "ap-south") == "up"
	})
	if !strings.Contains(dom, `data-fact="node">us-east<`) || !strings.Contains(dom, `data-fact="quorum">yes<`) {
		t.Errorf("the header does not show node us-east with quorum:\n%s", dom)
	}
	if n := strings.Count(dom, `data-action="kill"`); n != 3 {
		t.Errorf("%d Kill region buttons, want 3 (the page comes through the demo):\n%s", n, dom)
	}
	var nodeDOM string
	waitDOM(t, chrome, "http://"+us.Admin+"/", "us-east's own dashboard, without demo buttons", 30*time.Second, &nodeDOM, func(dom string) bool {
		return regionState(dom, "us-east") == "up"
	})
	if n := strings.Count(nodeDOM, `data-action="kill"`); n != 0 {
		t.Errorf("%d Kill region buttons on a node's own dashboard, want 0 (the demo is not part of the node)", n)
	}
	t.Logf("us-east dashboard: us-east=%s eu-west=%s ap-south=%s, %d kill buttons",
		regionState(dom, "us-east"), regionState(dom, "eu-west"), regionState(dom, "ap-south"), strings.Count(dom, `data-action="kill"`))

	kill := exec.Command(binary(t), "demo", "kill", "eu-west")
	kill.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := kill.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "eu-west killed") {
		t.Fatalf("gslb demo kill eu-west: %v\n%s", err, out)
	}
	killed := time.Now()
	waitDOM(t, chrome, page, "eu-west down on us-east's dashboard", 30*time.Second, &dom, func(dom string) bool {
		return regionState(dom, "eu-west") == "down"
	})
	t.Logf("eu-west shown down %.1fs after gslb demo kill (page polls every second; checks interval=1s fails=2)", time.Since(killed).Seconds())
	if regionState(dom, "us-east") != "up" || regionState(dom, "ap-south") != "up" {
		t.Errorf("after the kill: us-east %s, ap-south %s, want both up", regionState(dom, "us-east"), regionState(dom, "ap-south"))
	}
	if card := regionCard(dom, "eu-west"); !strings.Contains(card, `data-action="start"`) {
		t.Errorf("the killed eu-west card has no Start region button:\n%s", card)
	}
	if !strings.Contains(dom, `data-to="down"`) {
		t.Errorf("the timeline shows no transition to down:\n%s", dom)
	}

	t.Run("node not answering", func(t *testing.T) {
		// The page from a front that passes the page through to us-east
		// and answers the API with 503 for its first failures requests.
		front := func(failures int64) (string, *atomic.Int64) {
			var calls atomic.Int64
			target, _ := url.Parse("http://" + us.Admin)
			rp := httputil.NewSingleHostReverseProxy(target)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v1/status" && calls.Add(1) <= failures {
					http.Error(w, "down for the test", http.StatusServiceUnavailable)
					return
				}
				rp.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/", &calls
		}
		never, calls := front(1 << 40)
		dom := dumpDOM(t, chrome, never)
		if connState(dom) != "down" || !strings.Contains(dom, "node not answering") {
			t.Errorf("a node answering 503: the page does not say \"node not answering\":\n%s", dom)
		}
		if calls.Load() < 2 {
			t.Errorf("the page asked for the status %d times in 4s of page time, want it to keep retrying", calls.Load())
		}
		t.Logf("node answering 503: banner shown, %d status requests in 4s of page time", calls.Load())

		later, _ := front(2)
		dom = dumpDOM(t, chrome, later)
		if connState(dom) != "ok" || regionState(dom, "us-east") != "up" {
			t.Errorf("a node back after two 503s: the page did not recover:\n%s", dom)
		}
	})

	// Two regions of three gone: the survivor has no Raft quorum.
	kill = exec.Command(binary(t), "demo", "kill", "ap-south")
	kill.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := kill.CombinedOutput(); err != nil {
		t.Fatalf("gslb demo kill ap-south: %v\n%s", err, out)
	}
	waitDOM(t, chrome, page, "the NO QUORUM banner on us-east's dashboard", 30*time.Second, &dom, func(dom string) bool {
		tag := quorumRE.FindString(dom)
		return tag != "" && !strings.Contains(tag, "hidden")
	})
	role := ""
	if m := roleRE.FindStringSubmatch(dom); m != nil {
		role = m[1]
	}
	t.Logf("ap-south killed too: us-east's dashboard shows NO QUORUM (raft role %q)", role)
	if !strings.Contains(dom, `data-fact="quorum">NO<`) {
		t.Errorf("the NO QUORUM banner is shown but the header does not say quorum NO:\n%s", dom)
	}

	if err := d.p.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("gslb demo after SIGINT: %v", err)
	}
	for _, r := range d.state.Regions {
		if dnsAnswers(r.DNS) {
			t.Errorf("%s: its DNS %s still answers after the demo stopped", r.Name, r.DNS)
		}
	}
	if pids := processesWith(d.state.Dir); len(pids) > 0 {
		t.Errorf("processes of the demo (%s) left after SIGINT: %v", d.state.Dir, pids)
	}
	if _, err := os.Stat(demoStateFile(tmp)); !os.IsNotExist(err) {
		t.Errorf("the demo state file is left after SIGINT: %v", err)
	}
}

// chromium returns the headless browser, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary is installed: the dashboard test needs it (.ci/run installs Debian's chromium)")
	return ""
}

// dumpDOM loads url in headless Chromium, lets the page run 4 s of
// virtual time, and returns the DOM it built.
func dumpDOM(t *testing.T, chrome, url string) string {
	t.Helper()
	dir, err := os.MkdirTemp(t.TempDir(), "chromium-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+dir, "--virtual-time-budget=4000", "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	return string(out)
}

// waitDOM dumps url until cond holds of its DOM, at most for d.
func waitDOM(t *testing.T, chrome, url, what string, d time.Duration, dom *string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		*dom = dumpDOM(t, chrome, url)
		if cond(*dom) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last DOM:\n%s", d, what, *dom)
		}
	}
}

var articleRE = regexp.MustCompile(`<article[^>]*>`)
var stateRE = regexp.MustCompile(`data-state="([a-z]+)"`)

// regionState is the data-state of a region's card: up, down or drained
// ("" when the page has no card for it).
func regionState(dom, name string) string {
	for _, tag := range articleRE.FindAllString(dom, -1) {
		if strings.Contains(tag, `data-region="`+name+`"`) {
			if m := stateRE.FindStringSubmatch(tag); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

var roleRE = regexp.MustCompile(`data-fact="raft role">([^<]*)<`)
var quorumRE = regexp.MustCompile(`<div id="quorum"[^>]*>`)
var connRE = regexp.MustCompile(`<div id="conn"[^>]*>`)

// connState is the data-state of the page's connection banner: wait, ok
// or down.
func connState(dom string) string {
	if m := stateRE.FindStringSubmatch(connRE.FindString(dom)); m != nil {
		return m[1]
	}
	return ""
}

// regionCard is the HTML of a region's card.
func regionCard(dom, name string) string {
	for _, loc := range articleRE.FindAllStringIndex(dom, -1) {
		if strings.Contains(dom[loc[0]:loc[1]], `data-region="`+name+`"`) {
			card := dom[loc[0]:]
			if end := strings.Index(card, "</article>"); end >= 0 {
				card = card[:end]
			}
			return card
		}
	}
	return ""
}

// demoRun is a running `gslb demo` and its state file.
type demoRun struct {
	p       *proc
	printed *lockedBuffer // what the demo printed on stdout
	state   struct {
		Control string
		Dir     string
		Regions []struct{ Name, DNS, Admin string }
	}
}

func (d *demoRun) region(t *testing.T, name string) struct{ Name, DNS, Admin string } {
	t.Helper()
	for _, r := range d.state.Regions {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("the demo state has no region %s: %+v", name, d.state)
	return struct{ Name, DNS, Admin string }{}
}

// startDemo runs `gslb demo -port P` with TMPDIR=tmp and waits for its
// table ("Ctrl-C stops everything").
func startDemo(t *testing.T, tmp string, flags ...string) *demoRun {
	t.Helper()
	base := demoBase(t, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"})
	cmd := exec.Command(binary(t), append([]string{"demo", "-port", fmt.Sprint(base)}, flags...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// Its own process group: should the demo not stop on SIGINT, the
	// cleanup kills it with its nodes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &demoRun{p: &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}}
	cmd.Stderr = d.p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	printed := &lockedBuffer{}
	d.printed = printed
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-d.p.done:
			d.p.done <- err
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-d.p.done
		}
		if t.Failed() {
			t.Logf("gslb demo stdout:\n%s\nstderr:\n%s", printed.String(), d.p.stderr.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(printed, sc.Text())
			if !seen && strings.HasPrefix(sc.Text(), "Ctrl-C stops everything") {
				seen = true
				close(ready)
			}
		}
		d.p.done <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-d.p.done:
		d.p.done <- err
		t.Fatalf("gslb demo exited before it was ready (%v):\n%s%s", err, printed.String(), d.p.stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("gslb demo not ready after 90s:\n%s%s", printed.String(), d.p.stderr.String())
	}
	data, err := os.ReadFile(demoStateFile(tmp))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(demoStateFile(tmp)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("demo state file mode: %v %v, want 0600", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Dir(demoStateFile(tmp))); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("demo state directory mode: %v %v, want 0700", st.Mode(), err)
	}
	if err := json.Unmarshal(data, &d.state); err != nil || len(d.state.Regions) != 3 || d.state.Dir == "" {
		t.Fatalf("demo state file: %v: %s", err, data)
	}
	return d
}

// demoBase picks a base port P in 20000-60000 with P..P+5 free for TCP and
// UDP on every ip.
func demoBase(t *testing.T, ips []string) int {
	t.Helper()
	free := func(base int) bool {
		for _, ip := range ips {
			for off := 0; off < 6; off++ {
				addr := net.JoinHostPort(ip, fmt.Sprint(base+off))
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return false
				}
				ln.Close()
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					return false
				}
				pc.Close()
			}
		}
		return true
	}
	for i := 0; i < 2000; i++ {
		base := 20000 + (os.Getpid()*13+i*31)%39990
		if free(base) {
			return base
		}
	}
	t.Fatal("no free port range P..P+5 in 20000-60000 on 127.0.0.11-13")
	return 0
}

// dnsAnswers reports whether addr answers a DNS query (example.com. SOA)
// over UDP within a second.
func dnsAnswers(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	q := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 6, 0, 1}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(q); err != nil {
		return false
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return err == nil && n >= 12 && buf[0] == 0x12 && buf[1] == 0x34
}

// processesWith lists the processes whose command line mentions s (pgrep -f).
func processesWith(s string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return pids
}

// demoStateFile is where `gslb demo` run with TMPDIR=tmp keeps its state:
// a private directory of the user.
func demoStateFile(tmp string) string {
	return filepath.Join(tmp, fmt.Sprintf("gslb-demo-%d", os.Getuid()), "state.json")
}

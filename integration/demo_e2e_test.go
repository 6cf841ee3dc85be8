//go:build e2e

package integration

import (
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoAsUser drives the built `gslb demo` as a user would: start it,
// run every dig line it prints, kill a region with the printed command, see
// the answers change, bring it back, stop the demo with SIGINT and find no
// process left behind (issue 8; CH-01, CH-02).
func TestDemoAsUser(t *testing.T) {
	need(t, "dig")
	tmp := t.TempDir()
	d := startDemo(t, tmp)
	printed := d.printed.String()
	digRE := regexp.MustCompile(`(?m)^\s+(dig @\S+ -p \d+ [^#\n]*?)\s*(?:#\s*(.*))?$`)
	lines := digRE.FindAllStringSubmatch(printed, -1)
	if len(lines) < 6 {
		t.Fatalf("the demo printed %d dig lines:\n%s", len(lines), printed)
	}
	run := func(line string) string {
		t.Helper()
		f := strings.Fields(line)
		out, err := exec.Command("dig", append(f[1:], "+time=2", "+tries=1")...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}
	ipRE := regexp.MustCompile(`\((127\.0\.0\.\d+)\)`)
	var euLine string
	for _, l := range lines {
		out := run(l[1])
		if strings.Contains(l[1], "+short") {
			if strings.TrimSpace(out) == "" {
				t.Errorf("%s: empty answer", l[1])
			}
		} else if !strings.Contains(out, "status: NOERROR") {
			t.Errorf("%s:\n%s", l[1], out)
		}
		// "# Europe -> eu-west (127.0.0.12)": the answer is that address.
		if m := ipRE.FindStringSubmatch(l[2]); m != nil && strings.Contains(l[1], "+short") {
			if got := strings.TrimSpace(out); got != m[1] {
				t.Errorf("%s: %q, want %s (%s)", l[1], got, m[1], l[2])
			}
			if strings.Contains(l[2], "eu-west") {
				euLine = l[1]
			}
		}
	}
	if euLine == "" {
		t.Fatalf("no dig line for eu-west's clients in:\n%s", printed)
	}
	demoCmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command(binary(t), append([]string{"demo"}, args...)...)
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gslb demo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The demo's control refuses what a web page could send: a
	// cross-origin form post, and JSON from another origin.
	for _, tc := range []struct{ ctype, origin, site string }{
		{"text/plain", "http://evil.example", "cross-site"},
		{"application/json", "http://evil.example", ""},
	} {
		req, _ := http.NewRequest("POST", "http://"+d.state.Control+"/demo/kill", strings.NewReader(`{"region":"eu-west"}`))
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
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("demo control, %s from %s: %d (CORS %q), want 403 and no CORS header", tc.ctype, tc.origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	if out := run(euLine); strings.TrimSpace(out) != "127.0.0.12" {
		t.Errorf("after the refused cross-origin kill, EU clients get %q, want eu-west's 127.0.0.12", strings.TrimSpace(out))
	}
	if !strings.Contains(printed, "gslb demo kill eu-west") {
		t.Fatalf("the demo does not say how to kill a region:\n%s", printed)
	}
	killed := time.Now()
	demoCmd("kill", "eu-west")
	waitFor(t, "EU clients moved off eu-west", 30*time.Second, func() bool {
		a := strings.TrimSpace(run(euLine))
		return a != "" && a != "127.0.0.12"
	})
	t.Logf("EU clients answered by another region %v after `gslb demo kill eu-west`", time.Since(killed).Round(10*time.Millisecond))
	demoCmd("start", "eu-west")
	waitFor(t, "EU clients back on eu-west", 60*time.Second, func() bool { return strings.TrimSpace(run(euLine)) == "127.0.0.12" })

	d.p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.p.done:
		d.p.done <- err
		if err != nil {
			t.Errorf("demo exit after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30s of SIGINT")
	}
	if left := processesWith(d.state.Dir); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	for _, r := range d.state.Regions {
		if dnsAnswers(r.DNS) {
			t.Errorf("%s's nameserver %s still answers", r.Name, r.DNS)
		}
	}
}

//go:build e2e

// Package integration runs the built gslb binary as separate processes and
// queries it with real dig and kdig, as an operator would. Run with
// `make e2e` (GSLB_BIN names the binary).
package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func binary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("GSLB_BIN")
	if bin == "" {
		t.Fatal("GSLB_BIN is not set: run the e2e tests with `make e2e`")
	}
	return bin
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it: apt-get install bind9-dnsutils knot-dnsutils bind9)", tool)
		}
	}
}

// proc is a running gslb process.
type proc struct {
	cmd    *exec.Cmd
	ready  map[string]string // from the "ready k=v ..." line
	stderr *lockedBuffer
	done   chan error
}

// start runs gslb with args and waits for its ready line on stdout.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, binary(t), args...)
}

// startCmd runs name with args (gslb, or a wrapper such as `ip netns exec
// NS gslb ...`) and waits for gslb's ready line on stdout.
func startCmd(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("gslb %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.done <- cmd.Wait()
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("gslb exited before it was ready:\n%s", p.stderr.String())
			}
			if strings.HasPrefix(l, "ready ") {
				p.ready = map[string]string{}
				for _, f := range strings.Fields(l)[1:] {
					k, v, _ := strings.Cut(f, "=")
					p.ready[k] = v
				}
				go func() {
					for range lines {
					}
				}()
				return p
			}
		case <-timeout:
			t.Fatalf("gslb not ready after 30s:\n%s", p.stderr.String())
		}
	}
}

// stop sends sig and waits for the exit status.
func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("gslb did not exit within 20s of %v", sig)
		return nil
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// digResult is what dig or kdig printed, parsed.
type digResult struct {
	Status   string
	Flags    []string
	Sections map[string][]string // "ANSWER", "AUTHORITY", "ADDITIONAL": normalized records
	NSID     string
	Subnet   string // the CLIENT-SUBNET line as printed
	Raw      string
}

func (r digResult) flag(f string) bool {
	for _, x := range r.Flags {
		if x == f {
			return true
		}
	}
	return false
}

var (
	statusRE = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRE  = regexp.MustCompile(`(?m)^;; [Ff]lags: ([a-z ]*)[;]`)
	nsidRE   = regexp.MustCompile(`NSID: .*\("([^"]*)"\)`)
	subnetRE = regexp.MustCompile(`(?:CLIENT-SUBNET|SUBNET): ([^\s]+)`)
)

// runDig runs dig (or kdig) with args against addr ("127.0.0.1:PORT").
func runDig(t *testing.T, tool, addr string, args ...string) digResult {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	limits := []string{"+time=5", "+tries=1"}
	if tool == "kdig" {
		limits = []string{"+timeout=5", "+retry=0"}
	}
	full := append(append([]string{"@" + host, "-p", port}, limits...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, full...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(full, " "), err, out)
	}
	return parseDig(string(out))
}

func parseDig(out string) digResult {
	r := digResult{Sections: map[string][]string{}, Raw: out}
	if m := statusRE.FindStringSubmatch(out); m != nil {
		r.Status = m[1]
	}
	if m := flagsRE.FindStringSubmatch(out); m != nil {
		r.Flags = strings.Fields(m[1])
	}
	if m := nsidRE.FindStringSubmatch(out); m != nil {
		r.NSID = m[1]
	}
	if m := subnetRE.FindStringSubmatch(out); m != nil {
		r.Subnet = m[1]
	}
	section := ""
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, ";; ") && strings.Contains(l, " SECTION:"):
			section = strings.TrimSuffix(strings.TrimPrefix(l, ";; "), " SECTION:")
		case l == "" || strings.HasPrefix(l, ";"):
			if l == "" {
				section = ""
			}
		case section != "":
			r.Sections[section] = append(r.Sections[section], strings.Join(strings.Fields(l), " "))
		}
	}
	return r
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, src, dir string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, filepath.Base(src), string(data))
}

// waitFor retries cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mkdir(path string) error { return os.MkdirAll(path, 0o755) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

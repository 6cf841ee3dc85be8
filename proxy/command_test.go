package proxy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy/proxytest"
)

// gslbBinary returns $GSLB_BIN or builds cmd/gslb into a temporary
// directory.
func gslbBinary(t *testing.T) string {
	if bin := os.Getenv("GSLB_BIN"); bin != "" {
		return bin
	}
	if testing.Short() {
		t.Skip("builds the gslb binary; skipped with -short (set GSLB_BIN to use a built one)")
	}
	bin := filepath.Join(t.TempDir(), "gslb")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/gslb")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/gslb: %v\n%s", err, out)
	}
	return bin
}

// `gslb proxy -config FILE`: ready line, proxying, SIGHUP reload (a bad
// file is refused and the running config stays), SIGTERM exits 0.
func TestCommandProxy(t *testing.T) {
	bin := gslbBinary(t)
	bs := proxytest.NewBackends(t, 2)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "proxy.yaml")
	write := func(body string) {
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(backend string) string {
		return fmt.Sprintf(`proxy:
  listeners:
    - {name: http, address: "127.0.0.1:0"}
  routes: [{name: all, backends: web}]
  groups:
    - {name: web, backends: [{address: %q}]}
`, backend)
	}
	write(conf(bs[0].Addr))

	cmd := exec.Command(bin, "proxy", "-config", cfgPath)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "proxy ready http=127.0.0.1:") {
		t.Fatalf("ready line %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "proxy ready http="))
	url := "http://" + addr
	c := client()
	if code, b := get(t, c, url+"/"); code != 200 || b != "b0" {
		t.Fatalf("through gslb proxy: %d from %q", code, b)
	}

	// The listener address is the same string (port 0): the socket stays.
	write(conf(bs[1].Addr))
	cmd.Process.Signal(syscall.SIGHUP)
	proxytest.Eventually(t, "reload to b1", func() bool {
		_, b := get(t, c, url+"/")
		return b == "b1"
	})

	write("proxy: {listeners: [{address: nope}]}")
	cmd.Process.Signal(syscall.SIGHUP)
	proxytest.Eventually(t, "refused reload logged", func() bool {
		return strings.Contains(stderr.String(), "reload refused")
	})
	if !strings.Contains(stderr.String(), `proxy.listeners[0].address: \"nope\" is not host:port`) {
		t.Errorf("refused reload does not name the field:\n%s", stderr.String())
	}
	if code, b := get(t, c, url+"/"); code != 200 || b != "b1" {
		t.Fatalf("after a refused reload: %d from %q", code, b)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gslb proxy did not exit within 30 s of SIGTERM")
	}

	// A bad config refuses to start, naming the field.
	write("proxy: {listeners: [{address: \"127.0.0.1:0\"}], routes: [{backends: web}]}")
	out, err := exec.Command(bin, "proxy", "-config", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `proxy.routes[0].backends: unknown group "web"`) {
		t.Fatalf("bad config: %v\n%s", err, out)
	}
}

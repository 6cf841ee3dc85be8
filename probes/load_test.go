package probes_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/probes/probestest"
	"github.com/gslbd/gslb/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// TestLoadServerHelper is the HTTP and TCP server of TestLoad, run in a
// child process so that the prober's CPU time is measured apart from the
// server's. It prints its two addresses and serves until stdin closes.
func TestLoadServerHelper(t *testing.T) {
	if os.Getenv("GSLB_PROBES_LOAD_SERVER") != "1" {
		t.Skip("helper process for TestLoad")
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("GSLB_PROBES_LOAD_TLS"); dir != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		hl = tls.NewListener(hl, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fmt.Printf("%s %s\n", hl.Addr(), tl.Addr())
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
}

// TestLoad measures the CPU cost of 1,000 checks per second: 5,000 targets
// at the default 5 s interval against a server in a child process. It runs
// only when asked:
//
//	GSLB_PROBES_LOAD=http go test -run '^TestLoad$' -v ./probes/
//
// GSLB_PROBES_LOAD may be http, https (a certificate from a test CA,
// verified) or tcp; GSLB_PROBES_LOAD_SECONDS sets the measured time
// (default 20, at most 60).
func TestLoad(t *testing.T) {
	scheme := os.Getenv("GSLB_PROBES_LOAD")
	if scheme != "http" && scheme != "https" && scheme != "tcp" {
		t.Skip("set GSLB_PROBES_LOAD=http, https or tcp to measure the cost of 1,000 checks/s")
	}
	secs := 20
	if s, err := strconv.Atoi(os.Getenv("GSLB_PROBES_LOAD_SECONDS")); err == nil && s > 0 {
		secs = min(s, 60)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadServerHelper$")
	cmd.Env = append(os.Environ(), "GSLB_PROBES_LOAD_SERVER=1")
	var roots *x509.CertPool
	if scheme == "https" {
		ca := probestest.NewCA(t)
		dir := t.TempDir()
		writeKeyPair(t, dir, ca.Issue(t, time.Now().Add(time.Hour), "127.0.0.1"))
		cmd.Env = append(cmd.Env, "GSLB_PROBES_LOAD_TLS="+dir)
		roots = ca.Pool()
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var httpAddr, tcpAddr string
	if _, err := fmt.Fscan(bufio.NewReader(stdout), &httpAddr, &tcpAddr); err != nil {
		t.Fatalf("reading the helper's addresses: %v", err)
	}
	addr := netip.MustParseAddrPort(httpAddr)
	if scheme == "tcp" {
		addr = netip.MustParseAddrPort(tcpAddr)
	}

	const targets, interval = 5000, 5 * time.Second
	checker := probes.NewChecker(probes.CheckerConfig{RootCAs: roots})
	var done, failed atomic.Int64
	var lastFailure atomic.Value
	count := func(ctx context.Context, tg probes.Target) probes.Result {
		r := checker.Probe(ctx, tg)
		done.Add(1)
		if !r.Up && ctx.Err() == nil { // not cut short by the end of the test
			failed.Add(1)
			lastFailure.Store(r.Reason)
		}
		return r
	}
	reg := prometheus.NewRegistry()
	p := probes.NewProber(probes.ProberConfig{Name: "load", Probe: count, Metrics: probes.NewMetrics(reg),
		Sink: probes.NewAggregator(probes.AggregatorConfig{Logger: quiet}), Logger: quiet})
	ts := make([]probes.Target, targets)
	for i := range ts {
		c := zones.Check{Scheme: scheme, Port: addr.Port(), Interval: interval, Timeout: 2 * time.Second, Fails: 3, Passes: 2}
		if scheme != "tcp" {
			c.Path, c.Method, c.ExpectMin, c.ExpectMax = "/health?n="+strconv.Itoa(i), "GET", 200, 399
		} else {
			c.QName = strconv.Itoa(i) // only to make the keys distinct
		}
		ts[i] = probes.Target{Check: c, Addr: addr.Addr()}
	}
	p.SetTargets(ts)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(ctx); close(ran) }()

	time.Sleep(interval) // warm up: one full interval, every target started
	cpu0, n0, t0, m0 := cpuTime(t), done.Load(), time.Now(), counterValue(t, reg, "gslb_probe_missed_total")
	time.Sleep(time.Duration(secs) * time.Second)
	cpu1, n1, t1, m1 := cpuTime(t), done.Load(), time.Now(), counterValue(t, reg, "gslb_probe_missed_total")
	load, _ := os.ReadFile("/proc/loadavg")
	cancel()
	<-ran
	stdin.Close()
	cmd.Wait()

	wall := t1.Sub(t0)
	rate := float64(n1-n0) / wall.Seconds()
	cpu := cpu1 - cpu0
	t.Logf("%s checks: %d targets every %v: %.0f checks/s over %v, %d failed, %v missed (no slot in an interval); loadavg %s",
		scheme, targets, interval, rate, wall.Round(time.Millisecond), failed.Load(), m1-m0, strings.TrimSpace(string(load)))
	t.Logf("prober process CPU: %v = %.1f%% of one core (%.1f µs per check)", cpu.Round(time.Millisecond),
		100*cpu.Seconds()/wall.Seconds(), float64(cpu.Microseconds())/float64(n1-n0))
	srv := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("server process CPU over its whole life (%v): %v", (wall + interval).Round(time.Second), srv.Round(time.Millisecond))
	if f := failed.Load(); f > 0 {
		t.Errorf("%d checks failed; last: %v", f, lastFailure.Load())
	}
}

func writeKeyPair(t *testing.T, dir string, c tls.Certificate) {
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProbeHTTP is one HTTP check against an in-process server (the
// server's work is included in the time).
func BenchmarkProbeHTTP(b *testing.B) {
	srv := probestest.NewServer(b)
	c := probes.NewChecker(probes.CheckerConfig{})
	tg := probes.Target{Check: httpCheck("http", srv.Addr.Port(), "/"), Addr: loopback}
	b.ReportAllocs()
	for b.Loop() {
		if r := c.Probe(context.Background(), tg); !r.Up {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkProbeTCP is one TCP connect check against an in-process listener.
func BenchmarkProbeTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c := probes.NewChecker(probes.CheckerConfig{})
	tg := probes.Target{Check: zones.Check{Scheme: "tcp", Port: uint16(ln.Addr().(*net.TCPAddr).Port), Timeout: time.Second}, Addr: loopback}
	b.ReportAllocs()
	for b.Loop() {
		if r := c.Probe(context.Background(), tg); !r.Up {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkAggregatorReport is one delta report applied to an aggregator
// that holds 1,000 targets from 3 probers.
func BenchmarkAggregatorReport(b *testing.B) {
	a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
	defer a.Close()
	for _, name := range []string{"a", "b", "c"} {
		r := probes.Report{Prober: name, Time: time.Now(), Every: every, Full: true}
		for i := range 1000 {
			r.Statuses = append(r.Statuses, probes.Status{Key: "m" + strconv.Itoa(i), Up: true})
		}
		a.Report(r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		a.Report(probes.Report{Prober: "a", Time: time.Now(), Every: every,
			Statuses: []probes.Status{{Key: "m" + strconv.Itoa(i%1000), Up: i%2 == 0}}})
	}
}

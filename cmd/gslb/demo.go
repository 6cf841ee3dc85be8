package main

import (
	"context"
	"embed"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

//go:embed demozones/*.zone
var demoZones embed.FS

// runDemo serves the embedded example zone on loopback and prints what to
// try. (The three-region cluster demo with failover builds on this.)
func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	addr := fs.String("dns", "127.0.0.1:5353", "DNS address for the demo node (a free port is used if it is taken)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dir, err := os.MkdirTemp("", "gslb-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ents, _ := demoZones.ReadDir("demozones")
	for _, e := range ents {
		data, _ := demoZones.ReadFile("demozones/" + e.Name())
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gslb demo:", err)
			return 1
		}
	}
	listen := *addr
	if c, err := net.ListenPacket("udp", listen); err != nil {
		host, _, _ := net.SplitHostPort(listen)
		listen = net.JoinHostPort(host, "0")
	} else {
		c.Close()
	}
	log, _ := newLogger(os.Stderr, "warn")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ready := &demoReady{dir: dir}
	off := false
	cfg := &nodeConfig{DNS: []string{listen}, Zones: dir, NSID: "demo-node", ZonesPoll: time.Second, Probes: probesConfig{Enabled: &off}}
	if err := serve(ctx, cfg, log, ready); err != nil {
		fmt.Fprintln(os.Stderr, "gslb demo:", err)
		return 1
	}
	return 0
}

// demoReady turns the server's ready line into the demo's instructions.
type demoReady struct{ dir string }

func (d *demoReady) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	addr := ""
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "dns="); ok {
			addr, _, _ = strings.Cut(v, ",")
		}
	}
	host, port, _ := net.SplitHostPort(addr)
	printDemo(os.Stdout, host, port, d.dir)
	return len(p), nil
}

func printDemo(w io.Writer, host, port, dir string) {
	dig := fmt.Sprintf("dig @%s -p %s", host, port)
	fmt.Fprintf(w, `gslb demo: one node serving example.com on %s port %s (UDP and TCP).

Try:
  %s www.example.com A +norec          # GSLB record, policy "all": every pool member
  %s www.example.com AAAA +norec
  %s docs.example.com A +norec         # a CNAME into the GSLB record
  %s example.com SOA +nsid             # NSID names the node
  %s nope.example.com A +norec         # NXDOMAIN with the SOA
  %s www.example.com A +subnet=198.51.100.0/24   # ECS echoed with its scope
  %s example.com MX +tcp

The zone file is %s/example.com.zone: edit it and the node reloads it within
a second (or send SIGHUP); a broken edit is logged with file:line and the old
zone keeps serving. Ctrl-C stops the demo.
`, host, port, dig, dig, dig, dig, dig, dig, dig, dir)
}

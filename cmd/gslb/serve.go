package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/probes"
)

// openGeo opens the database named by --geoip, or the embedded default.
func openGeo(path string) (*geodata.DB, error) {
	if path == "" {
		return geodata.Default()
	}
	db, err := geodata.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--geoip %s: %w", path, err)
	}
	return db, nil
}

// listFlag collects a flag given several times or as a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

type serveFlags struct {
	dns      listFlag
	zones    string
	nsid     string
	logLevel string
	poll     time.Duration
	geoip    string
	admin    string
	node     string
	region   string
	probes   bool
}

func runServe(args []string) int {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Var(&f.dns, "dns", "DNS listen address, UDP and TCP (repeat or comma-separate; port 0 picks a free port)")
	fs.StringVar(&f.zones, "zones", "", "directory of zone files (*.zone), reloaded on SIGHUP and when a file changes")
	fs.StringVar(&f.nsid, "nsid", "", "NSID (RFC 5001) and id.server answer (default: the host name)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&f.poll, "zones-poll", time.Second, "how often to look for changed zone files (0: only on SIGHUP)")
	fs.StringVar(&f.geoip, "geoip", "", "GeoIP2/GeoLite2/DB-IP City or Country database (default: the embedded country database)")
	fs.StringVar(&f.admin, "admin", "", "admin HTTP address for /metrics and /api/v1/* (e.g. 127.0.0.1:9153; empty: none)")
	fs.StringVar(&f.node, "node", "", "this node's name in probe reports and status (default: the NSID)")
	fs.StringVar(&f.region, "region", "", "the region this node runs in (its probes are reported from there)")
	fs.BoolVar(&f.probes, "probes", true, "health-check pool members (false: every member counts as up)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gslb serve --dns ADDR[,ADDR] --zones DIR [flags]\n\nRuns a node: an authoritative DNS server for the zones in DIR.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gslb serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := newLogger(os.Stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gslb serve: --log-level: %v\n", err)
		return 2
	}
	if len(f.dns) == 0 {
		fmt.Fprintln(os.Stderr, "gslb serve: --dns: at least one address is required (e.g. --dns 127.0.0.1:5353)")
		return 2
	}
	if f.zones == "" {
		fmt.Fprintln(os.Stderr, "gslb serve: --zones: a directory of zone files is required")
		return 2
	}
	if st, err := os.Stat(f.zones); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "gslb serve: --zones %s: not a directory\n", f.zones)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, log, os.Stdout); err != nil {
		log.Error("serve failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// serve runs a single node until ctx ends.
func serve(ctx context.Context, f serveFlags, log *slog.Logger, stdout io.Writer) error {
	db, err := openGeo(f.geoip)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("geo database", "database", db.Describe())
	srv, err := dnsserver.New(dnsserver.Config{Addrs: f.dns, NSID: f.nsid, Logger: log})
	if err != nil {
		return err
	}
	node := f.node
	if node == "" {
		node = srv.NSID()
	}
	reg := newRegistry(srv)
	loader := &dnsserver.Loader{Dir: f.zones, Log: log.With("component", "zones"), Env: gslb.Env{Geo: db, Latency: &gslb.LatencyTable{}}}
	var h *health
	if f.probes {
		h = newHealth(node, f.region, reg, log.With("component", "probes"))
		loader.Env.Health = verdictHealth{h.agg}
		defer h.agg.Close()
	}
	load := func(why string) {
		snap, errs := loader.Load()
		srv.Swap(snap)
		for o, serial := range snap.Zones() {
			log.Info("serving zone", "zone", o, "serial", serial, "reason", why)
		}
		if len(errs) > 0 {
			log.Warn("zone load finished with errors", "errors", len(errs))
		}
		if h != nil {
			// Checks start when a zone loads, not on the first query.
			h.prober.SetTargets(probes.TargetsFromZones(loader.Zones()...))
		}
	}
	load("start")
	if err := srv.Start(); err != nil {
		return err
	}
	if h != nil {
		go h.prober.Run(ctx)
		go h.follow(ctx, loader, srv, log)
	}
	ready := []string{}
	var addrs []string
	for _, a := range srv.UDPAddrs() {
		addrs = append(addrs, a.String())
	}
	ready = append(ready, "dns="+strings.Join(addrs, ","))
	if f.admin != "" {
		status := func() any { return statusOf(node, f.region, srv, loader, h) }
		events := func() any {
			if h == nil {
				return []probes.Event{}
			}
			return h.agg.Events()
		}
		a, err := startAdmin(f.admin, reg, status, events, log)
		if err != nil {
			srv.Shutdown(context.Background())
			return err
		}
		defer a.srv.Close()
		ready = append(ready, "admin="+a.addr.String())
	}
	fmt.Fprintf(stdout, "ready %s\n", strings.Join(ready, " "))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if f.poll > 0 {
		t := time.NewTicker(f.poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		case <-hup:
			load("SIGHUP")
		case <-tick:
			if loader.Changed() {
				load("file changed")
			}
		}
	}
}

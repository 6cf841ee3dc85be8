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

	"github.com/gslbd/gslb/node"
)

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

func runServe(args []string) int {
	fs := newFlagSet("serve", "[--config node.yaml] [flags]",
		"Runs a node. Without --config, --dns and --zones are required; flags given with\n--config override its keys (the key each flag overrides is in brackets).", os.Stderr)
	configPath := fs.String("config", "", "node config `FILE` (YAML); flags given as well override its keys")
	var dnsAddrs listFlag
	fs.Var(&dnsAddrs, "dns", "DNS listen address, UDP and TCP (repeat or comma-separate; port 0 picks a free port) [dns]")
	zonesDir := fs.String("zones", "", "directory of zone files (*.zone), reloaded on SIGHUP and when a file changes [zones]")
	nsid := fs.String("nsid", "", "NSID (RFC 5001) and id.server answer (default: the node name, else the host name) [nsid]")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (default info) [log_level]")
	poll := fs.Duration("zones-poll", time.Second, "how often to look for changed zone files (0: only on SIGHUP) [zones_poll]")
	geoip := fs.String("geoip", "", "GeoIP2/GeoLite2/DB-IP City or Country database (default: the embedded country database) [geoip]")
	admin := fs.String("admin", "", "admin HTTP address for /metrics, /api/v1/* and the dashboard (e.g. 127.0.0.1:9153) [admin]")
	nodeName := fs.String("node", "", "this node's name in the cluster, probe reports and status [node]")
	region := fs.String("region", "", "the region this node runs in [region]")
	data := fs.String("data", "", "data directory (the cluster state) [data]")
	probesOn := fs.String("probes", "", "true or false: health-check pool members (default true) [probes.enabled]")
	rrlRate := fs.Int("rrl-rate", 0, "response-rate limit: replies per second per source network and answer (default 200; -1 turns it off) [dns.rrl.rate]")
	signZones := fs.String("dnssec", "", "sign these zones online: comma-separated names, or * for every zone (keys are kept in --data) [dnssec.zones]")
	rrlLogOnly := fs.Bool("rrl-log-only", false, "count and log what response-rate limiting would drop, drop nothing [dns.rrl.log_only]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg := node.DefaultConfig()
	if *configPath != "" {
		c, err := node.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gslb serve: %v\n", err)
			return 2
		}
		cfg = c
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["dns"] {
		cfg.DNS.Listen = node.StringList(dnsAddrs)
	}
	str := func(name string, dst *string, v string) {
		if set[name] {
			*dst = v
		}
	}
	str("zones", &cfg.Zones, *zonesDir)
	str("nsid", &cfg.NSID, *nsid)
	str("log-level", &cfg.LogLevel, *logLevel)
	str("geoip", &cfg.GeoIP, *geoip)
	str("admin", &cfg.Admin, *admin)
	str("node", &cfg.Node, *nodeName)
	str("region", &cfg.Region, *region)
	str("data", &cfg.Data, *data)
	if set["zones-poll"] {
		cfg.ZonesPoll = *poll
	}
	if set["rrl-rate"] {
		if *rrlRate < 0 {
			off := false
			cfg.DNS.RRL.Enabled = &off
		} else {
			cfg.DNS.RRL.Rate = *rrlRate
		}
	}
	if set["dnssec"] {
		if cfg.DNSSEC == nil {
			cfg.DNSSEC = &node.DNSSECConfig{}
		}
		cfg.DNSSEC.Zones = node.StringList{*signZones}
	}
	if set["rrl-log-only"] {
		cfg.DNS.RRL.LogOnly = *rrlLogOnly
	}
	if set["probes"] {
		on := *probesOn == "true"
		if *probesOn != "true" && *probesOn != "false" {
			fmt.Fprintf(os.Stderr, "gslb serve: --probes %q: want true or false\n", *probesOn)
			return 2
		}
		cfg.Probes.Enabled = &on
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	log, err := newLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gslb serve: log_level: %v\n", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "gslb serve: invalid configuration:\n%v\n", err)
		return 2
	}
	if cfg.Zones != "" {
		if st, err := os.Stat(cfg.Zones); err != nil || !st.IsDir() {
			fmt.Fprintf(os.Stderr, "gslb serve: zones: %s is not a directory\n", cfg.Zones)
			return 2
		}
	}
	if err := serve(cfg, log, os.Stdout); err != nil {
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

// serve runs a node until SIGINT or SIGTERM, printing its ready line to
// stdout. Signals are taken from the first moment: a SIGHUP that arrives
// while the node still loads its zones is applied once it is ready, and
// SIGINT or SIGTERM during the start stops it.
func serve(cfg *node.Config, log *slog.Logger, stdout io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	fmt.Fprintln(stdout, n.ReadyLine())
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			n.Reload()
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.Stop(sctx)
}

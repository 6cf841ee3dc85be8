package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// runProxy runs only the region proxy: `gslb proxy -config FILE`. It prints
// a ready line with the listening addresses to stdout, reloads the config
// on SIGHUP (keeping the running one if the new one is bad) and drains on
// SIGTERM or SIGINT.
func runProxy(args []string) int {
	fs := newFlagSet("proxy", "--config FILE [--metrics ADDR] [--pprof ADDR] [--check] [--debug]",
		"Runs only the region proxy (L7 HTTP / L4 TCP balancer) of the config's proxy:\nsection. SIGHUP reloads the config (a bad one is refused and the running one\nkept); SIGTERM or SIGINT drains and stops.", os.Stderr)
	cfgPath := fs.String("config", "", "config `FILE` with a proxy: section (required)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this `ADDR` (e.g. 127.0.0.1:9100)")
	check := fs.Bool("check", false, "validate the config and exit")
	debug := fs.Bool("debug", false, "log at debug level")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this `FILE` until exit")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof (CPU, heap, allocs profiles) on this `ADDR` (e.g. 127.0.0.1:6060)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(os.Stderr, "gslb proxy: --config FILE is required")
		fs.Usage()
		return 2
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := proxy.LoadFile(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gslb proxy: %v\n", err)
		return 1
	}
	if *check {
		fmt.Println("OK")
		return 0
	}
	p, err := proxy.New(cfg, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gslb proxy: %v\n", err)
		return 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gslb proxy: %v\n", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "gslb proxy: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := p.Start(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "gslb proxy: %v\n", err)
		return 1
	}
	ready := p.ReadyLine()
	// The optional side listeners: Prometheus metrics, net/http/pprof.
	type side struct {
		name, addr string
		mux        *http.ServeMux
	}
	var sides []side
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(p)
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		sides = append(sides, side{"metrics", *metricsAddr, mux})
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
		sides = append(sides, side{"pprof", *pprofAddr, mux})
	}
	for _, sd := range sides {
		srv := &http.Server{Handler: sd.mux, ReadHeaderTimeout: 10 * time.Second}
		ln, err := listenTCP(sd.addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gslb proxy: %s: %v\n", sd.name, err)
			return 1
		}
		ready += " " + sd.name + "=" + ln.Addr().String()
		go srv.Serve(ln)
		defer srv.Close()
	}
	fmt.Println(ready)

	for sig := range sigs {
		if sig == syscall.SIGHUP {
			cfg, err := proxy.LoadFile(*cfgPath)
			if err == nil {
				err = p.Reload(cfg)
			}
			if err != nil {
				logger.Error("reload refused; keeping the running config", "err", err)
				continue
			}
			logger.Info("reloaded", "config", *cfgPath)
			continue
		}
		logger.Info("shutting down", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		err := p.Shutdown(ctx)
		cancel()
		if err != nil {
			logger.Warn("shutdown", "err", err)
		}
		return 0
	}
	return 0
}

func listenTCP(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

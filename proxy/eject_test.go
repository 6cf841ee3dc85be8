package proxy_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
	"github.com/prometheus/client_golang/prometheus"
)

// PX-02 (issue 17, item 4): an outlier ejection is logged, the backend's
// gslb_proxy_backend_up and _ejected series say the same thing, and a
// backend whose active check passes while it is ejected says so (once).
func TestEjectionLoggedAndExported(t *testing.T) {
	bad := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(500)
		}
	})
	good := proxytest.NewBackend(t, "good")
	g := proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: bad}, {Address: good.Addr}},
		Outlier:     &proxy.OutlierConfig{ConsecutiveFailures: 3, BaseEjection: time.Hour},
		HealthCheck: &proxy.HealthCheckConfig{Type: "http", Path: "/healthz", Interval: 10 * time.Millisecond, Passes: 1}}
	var buf syncBuffer
	p, err := proxy.New(proxytest.HTTPConfig(g), slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(t.Context())
	c, url := client(), "http://"+p.Addrs()["http"]+"/"
	for range 10 {
		get(t, c, url)
	}
	proxytest.Eventually(t, "the passing check reported", func() bool {
		return strings.Contains(buf.String(), "backend passes its active check while ejected")
	})
	time.Sleep(50 * time.Millisecond) // a few more passing checks: still one line
	log := buf.String()
	if n := strings.Count(log, "msg=\"backend ejected\""); n != 1 || !strings.Contains(log, "backend="+bad) {
		t.Errorf("%d ejection lines for %s, want 1:\n%s", n, bad, log)
	}
	if n := strings.Count(log, "passes its active check while ejected"); n != 1 {
		t.Errorf("%d lines saying the ejected backend passes its check, want 1:\n%s", n, log)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"gslb_proxy_backend_up": 0, "gslb_proxy_backend_ejected": 1, "gslb_proxy_backend_ejections_total": 1}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "backend" && l.GetValue() == bad {
					v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
					if v != w {
						t.Errorf("%s{backend=%s} = %v, want %v", mf.GetName(), bad, v, w)
					}
					delete(want, mf.GetName())
				}
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("series missing for the ejected backend: %v", want)
	}
}

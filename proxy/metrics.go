package proxy

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the per-route series; per-backend series are read from the
// backends' atomics at scrape time. Label values are route, group and
// backend names from the config, so they are bounded.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	mu     sync.Mutex
	routes map[string]*routeMetrics

	backendRequests *prometheus.Desc
	backendActive   *prometheus.Desc
	backendConns    *prometheus.Desc
	backendUp       *prometheus.Desc
	backendEjected  *prometheus.Desc
	backendEjects   *prometheus.Desc
	backendLatency  *prometheus.Desc
	groupHealthy    *prometheus.Desc
	groupPanic      *prometheus.Desc
	healthy         *prometheus.Desc
}

// routeMetrics are one route's pre-resolved series (no label lookup on the
// request path).
type routeMetrics struct {
	classes [6]prometheus.Counter
	latency prometheus.Observer
}

func newMetrics() *metrics {
	const ns, sub = "gslb", "proxy"
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "HTTP requests by route and status class (1xx..5xx).",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "HTTP request latency through the proxy by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		routes:          map[string]*routeMetrics{},
		backendRequests: prometheus.NewDesc(ns+"_"+sub+"_backend_responses_total", "Backend responses by status class; code=error counts connection errors.", []string{"group", "backend", "code"}, nil),
		backendConns:    prometheus.NewDesc(ns+"_"+sub+"_backend_connections_total", "TCP proxy connections established per backend (connect failures count as code=error responses).", []string{"group", "backend"}, nil),
		backendActive:   prometheus.NewDesc(ns+"_"+sub+"_backend_active", "In-flight requests (HTTP) or connections (TCP) per backend.", []string{"group", "backend"}, nil),
		backendUp:       prometheus.NewDesc(ns+"_"+sub+"_backend_up", "1 when the backend may take new requests (healthy, not ejected, not draining).", []string{"group", "backend"}, nil),
		backendEjected:  prometheus.NewDesc(ns+"_"+sub+"_backend_ejected", "1 while the backend is ejected by passive outlier detection.", []string{"group", "backend"}, nil),
		backendEjects:   prometheus.NewDesc(ns+"_"+sub+"_backend_ejections_total", "Passive outlier ejections per backend.", []string{"group", "backend"}, nil),
		backendLatency:  prometheus.NewDesc(ns+"_"+sub+"_backend_latency_ewma_seconds", "EWMA of response header latency per backend.", []string{"group", "backend"}, nil),
		groupHealthy:    prometheus.NewDesc(ns+"_"+sub+"_group_healthy", "1 when the group has an available backend.", []string{"group"}, nil),
		groupPanic:      prometheus.NewDesc(ns+"_"+sub+"_group_panic", "1 while the group is in panic mode (balancing over unhealthy primaries too).", []string{"group"}, nil),
		healthy:         prometheus.NewDesc(ns+"_"+sub+"_healthy", "Aggregate region health: 1 when every route and TCP listener has an available backend.", nil, nil),
	}
}

var classNames = [6]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (m *metrics) route(name string) *routeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm := m.routes[name]; rm != nil {
		return rm
	}
	rm := &routeMetrics{latency: m.latency.WithLabelValues(name)}
	for i, c := range classNames {
		rm.classes[i] = m.requests.WithLabelValues(name, c)
	}
	m.routes[name] = rm
	return rm
}

// code counts a response the proxy generated itself (no latency sample).
func (rm *routeMetrics) code(status int) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	rm.classes[c].Inc()
}

func (rm *routeMetrics) observe(status int, d time.Duration) {
	rm.code(status)
	rm.latency.Observe(d.Seconds())
}

// Describe implements prometheus.Collector. The proxy is an unchecked
// collector: its backend series follow the config.
func (p *Proxy) Describe(ch chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (p *Proxy) Collect(ch chan<- prometheus.Metric) {
	m := p.metrics
	m.requests.Collect(ch)
	m.latency.Collect(ch)
	st := p.state.Load()
	now := time.Now().UnixNano()
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, g := range st.groups {
		ch <- prometheus.MustNewConstMetric(m.groupHealthy, prometheus.GaugeValue, b2f(g.Healthy()), g.name)
		ch <- prometheus.MustNewConstMetric(m.groupPanic, prometheus.GaugeValue, b2f(g.Panic()), g.name)
		for _, b := range g.backends {
			for i := range b.requests {
				ch <- prometheus.MustNewConstMetric(m.backendRequests, prometheus.CounterValue, float64(b.requests[i].Load()), g.name, b.addr, classNames[i])
			}
			ch <- prometheus.MustNewConstMetric(m.backendConns, prometheus.CounterValue, float64(b.tcpConns.Load()), g.name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendActive, prometheus.GaugeValue, float64(b.active.Load()), g.name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendUp, prometheus.GaugeValue, b2f(b.available(now)), g.name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendEjected, prometheus.GaugeValue, b2f(b.ejected(now)), g.name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendEjects, prometheus.CounterValue, float64(b.ejectTotal.Load()), g.name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendLatency, prometheus.GaugeValue, ewmaSeconds(b), g.name, b.addr)
		}
	}
	ok, _ := st.health()
	ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, b2f(ok))
	p.collectSpill(ch)
}

func ewmaSeconds(b *Backend) float64 {
	return math.Float64frombits(b.ewmaNanos.Load()) / 1e9
}

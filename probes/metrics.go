package probes

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the probers' and aggregators' Prometheus metrics. Label values
// are bounded by configuration: prober names, target keys from the served
// zones, check schemes. A nil *Metrics records nothing.
type Metrics struct {
	duration    *prometheus.HistogramVec
	up          *prometheus.GaugeVec
	verdict     *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	missed      *prometheus.CounterVec
	certExpiry  *prometheus.GaugeVec
	lastChange  *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
// Register one Metrics per registry and share it between a node's Prober
// and Aggregator.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "gslb", "probe"
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "duration_seconds",
			Help:    "Duration of single health probes, by check scheme and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"scheme", "result"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "member_up",
			Help: "1 if the prober sees the target up after hysteresis, else 0.",
		}, []string{"prober", "target"}),
		verdict: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "member_verdict",
			Help: "Cluster-wide quorum verdict on the target: 1 up, 0 down.",
		}, []string{"target"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "transitions_total",
			Help: "Up/down transitions of a target seen by the prober (its flap count), by new state.",
		}, []string{"prober", "target", "to"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "missed_total",
			Help: "Probes skipped because no concurrency slot freed within the interval.",
		}, []string{"prober"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "cert_expiry_timestamp_seconds",
			Help: "NotAfter of the https target's certificate, as a Unix time.",
		}, []string{"prober", "target"}),
		lastChange: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "member_last_change_timestamp_seconds",
			Help: "When the prober's view of the target last changed (or was first known), as a Unix time.",
		}, []string{"prober", "target"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.up, m.verdict, m.transitions, m.missed, m.certExpiry, m.lastChange)
	}
	return m
}

func (m *Metrics) observe(scheme string, r Result) {
	if m == nil {
		return
	}
	res := "ok"
	if !r.Up {
		res = "fail"
	}
	m.duration.WithLabelValues(scheme, res).Observe(r.Duration.Seconds())
}

func (m *Metrics) setUp(prober, key string, up bool) {
	if m == nil {
		return
	}
	m.up.WithLabelValues(prober, key).Set(b2f(up))
}

func (m *Metrics) transition(prober, key string, up bool) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(prober, key, upDown(up)).Inc()
}

func (m *Metrics) setLastChange(prober, key string, unix float64) {
	if m == nil {
		return
	}
	m.lastChange.WithLabelValues(prober, key).Set(unix)
}

func (m *Metrics) miss(prober string) {
	if m == nil {
		return
	}
	m.missed.WithLabelValues(prober).Inc()
}

func (m *Metrics) setCertExpiry(prober, key string, unix int64) {
	if m == nil {
		return
	}
	m.certExpiry.WithLabelValues(prober, key).Set(float64(unix))
}

func (m *Metrics) forgetTarget(prober, key string) {
	if m == nil {
		return
	}
	m.up.DeleteLabelValues(prober, key)
	m.certExpiry.DeleteLabelValues(prober, key)
	m.lastChange.DeleteLabelValues(prober, key)
	m.transitions.DeletePartialMatch(prometheus.Labels{"prober": prober, "target": key})
}

func (m *Metrics) setVerdict(key string, up bool) {
	if m == nil {
		return
	}
	m.verdict.WithLabelValues(key).Set(b2f(up))
}

func (m *Metrics) forgetVerdict(key string) {
	if m == nil {
		return
	}
	m.verdict.DeleteLabelValues(key)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package dnsserver

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Counters are plain atomics bumped on the query path; the Prometheus
// collector reads them at scrape time, so answering a query takes no lock
// and allocates nothing for metrics. Labels have fixed, small value sets:
// never a query name or a client address.

// qtypes are the query types counted on their own; others count as "other".
var qtypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeMX, dns.TypeNS, dns.TypeSOA,
	dns.TypeTXT, dns.TypeSRV, dns.TypePTR, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeANY}

const (
	nQtypes = 16 // len(qtypes) + "other"
	nRcodes = 17 // 0..15 and BADVERS (16), which stands for every extended rcode
)

func qtypeIndex(t uint16) int {
	for i, q := range qtypes {
		if q == t {
			return i
		}
	}
	return len(qtypes)
}

func rcodeIndex(rc int) int {
	if rc < 0 || rc >= nRcodes {
		return nRcodes - 1
	}
	return rc
}

// stats are the server's counters.
type stats struct {
	responses [2][nQtypes][nRcodes]atomic.Uint64 // [udp, tcp][qtype][rcode]
	cacheHits atomic.Uint64
	truncated atomic.Uint64
	panics    atomic.Uint64

	// cacheMisses counts cacheable UDP queries not answered from the
	// cache; cacheStale the entries found stale (health they depended on
	// changed), which are misses too.
	cacheMisses atomic.Uint64
	cacheStale  atomic.Uint64
}

func (st *stats) count(tcp bool, qtype uint16, rcode int) {
	t := 0
	if tcp {
		t = 1
	}
	st.responses[t][qtypeIndex(qtype)][rcodeIndex(rcode)].Add(1)
}

var (
	descResponses  = prometheus.NewDesc("gslb_dns_responses_total", "DNS responses sent, by transport, query type and rcode.", []string{"transport", "qtype", "rcode"}, nil)
	descCacheHits  = prometheus.NewDesc("gslb_dns_cache_hits_total", "UDP queries answered from the per-snapshot reply cache.", nil, nil)
	descCacheMiss  = prometheus.NewDesc("gslb_dns_cache_misses_total", "Cacheable UDP queries the reply cache did not answer (no entry, or a stale one).", nil, nil)
	descCacheOld   = prometheus.NewDesc("gslb_dns_cache_stale_total", "Reply cache entries not used because the health or RTTs their answer depended on changed.", nil, nil)
	descTruncated  = prometheus.NewDesc("gslb_dns_truncated_total", "UDP responses truncated to the client's buffer (TC set).", nil, nil)
	descPanics     = prometheus.NewDesc("gslb_dns_panics_total", "Queries whose handling panicked (answered SERVFAIL).", nil, nil)
	descTCPConns   = prometheus.NewDesc("gslb_dns_tcp_connections", "TCP connections open.", nil, nil)
	descTCPRefused = prometheus.NewDesc("gslb_dns_tcp_refused_total", "TCP connections closed at accept: the source address or network had its share, or the table was full with every connection mid-query.", []string{"reason"}, nil)
	descTCPEvicted = prometheus.NewDesc("gslb_dns_tcp_evicted_total", "Idle TCP connections closed to make room for a new one.", nil, nil)
	descTCPCut     = prometheus.NewDesc("gslb_dns_tcp_read_timeouts_total", "TCP queries not complete within the read timeout (connection closed).", nil, nil)
	descRRL        = prometheus.NewDesc("gslb_dns_rrl_limited_total", "UDP replies over the response-rate limit, by response class and what was done (dropped, slipped as an empty TC reply, or logged only).", []string{"class", "action"}, nil)
	descZones      = prometheus.NewDesc("gslb_dns_zone_serial", "SOA serial of each zone being served.", []string{"zone"}, nil)
	descUDPDrops   = prometheus.NewDesc("gslb_dns_udp_receive_drops_total", "UDP queries the kernel dropped because a listening socket's receive buffer was full (from /proc/net/udp).", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descResponses, descCacheHits, descCacheMiss, descCacheOld, descTruncated, descPanics, descZones, descTCPConns, descTCPRefused, descTCPEvicted, descTCPCut, descRRL, descUDPDrops} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	for t, transport := range []string{"udp", "tcp"} {
		for qi := 0; qi < nQtypes; qi++ {
			qt := "other"
			if qi < len(qtypes) {
				qt = dns.TypeToString[qtypes[qi]]
			}
			for rc := 0; rc < nRcodes; rc++ {
				v := s.stats.responses[t][qi][rc].Load()
				if v == 0 {
					continue
				}
				ch <- prometheus.MustNewConstMetric(descResponses, prometheus.CounterValue, float64(v), transport, qt, dns.RcodeToString[rc])
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(s.stats.cacheHits.Load()))
	ch <- prometheus.MustNewConstMetric(descCacheMiss, prometheus.CounterValue, float64(s.stats.cacheMisses.Load()))
	ch <- prometheus.MustNewConstMetric(descCacheOld, prometheus.CounterValue, float64(s.stats.cacheStale.Load()))
	ch <- prometheus.MustNewConstMetric(descTruncated, prometheus.CounterValue, float64(s.stats.truncated.Load()))
	ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(s.stats.panics.Load()))
	ch <- prometheus.MustNewConstMetric(descTCPConns, prometheus.GaugeValue, float64(s.tcpt.connections()))
	for i, reason := range []string{"address", "network", "full"} {
		ch <- prometheus.MustNewConstMetric(descTCPRefused, prometheus.CounterValue, float64(s.tcpt.refused[i].Load()), reason)
	}
	ch <- prometheus.MustNewConstMetric(descTCPEvicted, prometheus.CounterValue, float64(s.tcpt.evicted.Load()))
	ch <- prometheus.MustNewConstMetric(descTCPCut, prometheus.CounterValue, float64(s.tcpt.cut.Load()))
	if s.rrl != nil {
		for c := range s.rrl.limited {
			for a := range s.rrl.limited[c] {
				ch <- prometheus.MustNewConstMetric(descRRL, prometheus.CounterValue, float64(s.rrl.limited[c][a].Load()), rrlClassNames[c], rrlActionNames[a])
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descUDPDrops, prometheus.CounterValue, float64(s.UDPDrops()))
	for z, serial := range s.snap.Load().Zones() {
		ch <- prometheus.MustNewConstMetric(descZones, prometheus.GaugeValue, float64(serial), z)
	}
}

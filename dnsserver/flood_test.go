package dnsserver

import (
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRandomSubdomainFlood covers DNS-48's bounded parts: 20,000 unique
// NXDOMAIN names add no metric series (no series per query name), and
// every query is answered. (The reply cache is a fixed array: the flood
// fills it and evicts popular entries, which then take the uncached path.)
func TestRandomSubdomainFlood(t *testing.T) {
	s := newTestServer(t)
	s.rrl = nil // one source asks 20,000 times
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	series := func() int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			n += len(mf.GetMetric())
		}
		return n
	}
	w := &writer{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}}
	r := &udpReader{s: s, buf: make([]byte, dns.MaxMsgSize), out: make([]byte, 0, dns.MaxMsgSize), hseed: s.hseed}
	r.q.buf = make([]byte, 0, dns.MaxMsgSize)
	r.w.r = r
	ask := func(name string) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		pkt, _ := m.Pack()
		r.w.from = w.remote.(*net.UDPAddr).AddrPort()
		out := r.handle(pkt)
		rep := new(dns.Msg)
		if out == nil || rep.Unpack(out) != nil || rep.Rcode != dns.RcodeNameError {
			t.Fatalf("%s: no NXDOMAIN reply", name)
		}
	}
	ask("warm-up.example.com.")
	before := series()
	for i := 0; i < 20000; i++ {
		ask(fmt.Sprintf("r%08x.example.com.", i*2654435761))
	}
	if after := series(); after != before {
		t.Errorf("metric series grew from %d to %d over 20,000 unique names", before, after)
	}
	used := 0 // bounded by construction (a fixed array); logged to show the flood fills it
	snap := s.snap.Load()
	for i := range snap.cache.slots {
		if snap.cache.slots[i].Load() != nil {
			used++
		}
	}
	t.Logf("20,000 unique names: %d metric series before and after, %d of %d cache slots used", before, used, cacheSlots)
}

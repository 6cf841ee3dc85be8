package probes

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

func TestMeasureNetworkBoundAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewProber(ProberConfig{Name: "a", MaxNetworks: 2, NetworkTTL: time.Minute,
			Logger: slog.New(slog.DiscardHandler)})
		n1 := netip.MustParsePrefix("192.0.2.0/24")
		n2 := netip.MustParsePrefix("198.51.100.0/24")
		n3 := netip.MustParsePrefix("203.0.113.0/24")
		p.MeasureNetwork(n1, netip.MustParseAddr("192.0.2.1"))
		p.takeAsks()
		time.Sleep(time.Second)
		p.MeasureNetwork(n2, netip.MustParseAddr("198.51.100.1"))
		p.takeAsks()
		time.Sleep(time.Second)
		p.MeasureNetwork(netip.MustParsePrefix("192.0.2.77/24"), netip.MustParseAddr("192.0.2.1")) // n1 asked again
		p.takeAsks()
		time.Sleep(time.Second)
		p.MeasureNetwork(n3, netip.MustParseAddr("203.0.113.1")) // evicts n2, the least recently asked
		p.takeAsks()
		p.mu.Lock()
		_, has1 := p.networks[n1]
		_, has2 := p.networks[n2]
		_, has3 := p.networks[n3]
		p.mu.Unlock()
		if !has1 || has2 || !has3 || len(p.networks) != 2 {
			t.Errorf("networks after 4 asks with MaxNetworks 2: %v, want %v and %v", p.networks, n1, n3)
		}
		// The queue is bounded too: asks beyond it are dropped, never waited for.
		for i := range 100 {
			p.MeasureNetwork(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), netip.MustParseAddr("10.0.0.1"))
		}
		if len(p.asks) != cap(p.asks) {
			t.Errorf("%d asks queued, want the queue (%d) full", len(p.asks), cap(p.asks))
		}
		time.Sleep(2 * time.Minute)
		p.measureRTTs(context.Background()) // every network expired: no probe is sent
		if len(p.networks) != 0 {
			t.Errorf("networks after their TTL: %v, want none", p.networks)
		}
	})
}

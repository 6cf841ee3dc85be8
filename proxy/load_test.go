package proxy_test

import (
	"testing"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
)

// The load meter (issue 17): available backends and weights, requests in
// flight against max_conns, the request rate between two samples, and the
// region's utilisation (1 once no backend is available).
func TestLoadMeter(t *testing.T) {
	bs := proxytest.NewBackends(t, 2)
	g := proxytest.Group("web", proxy.AlgRoundRobin, bs...)
	g.MaxConns = 2
	g.Backends[1].Weight = 3
	p, url := startHTTP(t, g)
	m := proxy.NewLoadMeter(p)
	if gs, u := m.Sample(); len(gs) != 1 || gs[0].Available != 2 || gs[0].Weight != 4 || gs[0].Headroom != 4 || u != 0 {
		t.Fatalf("idle: %+v, utilisation %v; want 2 available, weight 4, headroom 4, 0", gs, u)
	}
	c := client()
	for range 10 {
		get(t, c, url+"/")
	}
	// Two requests held in flight on the two backends.
	done := make(chan struct{})
	for range 2 {
		go func() { get(t, client(), url+"/hold"); done <- struct{}{} }()
	}
	for _, b := range bs {
		<-b.Held()
	}
	gs, u := m.Sample()
	if gs[0].InFlight != 2 || gs[0].Headroom != 2 || u != 0.5 || gs[0].Rate <= 0 || gs[0].Latency <= 0 {
		t.Errorf("2 held of 4: %+v, utilisation %v; want 2 in flight, headroom 2, 0.5, a rate and a latency", gs[0], u)
	}
	for _, b := range bs {
		b.Release()
	}
	<-done
	<-done
	if err := p.SetDraining("web", bs[0].Addr, true); err != nil {
		t.Fatal(err)
	}
	if err := p.SetDraining("web", bs[1].Addr, true); err != nil {
		t.Fatal(err)
	}
	if gs, u := m.Sample(); gs[0].Available != 0 || gs[0].Headroom != 0 || u != 1 {
		t.Errorf("every backend draining: %+v, utilisation %v; want none available, headroom 0, 1", gs[0], u)
	}
}

package node

import (
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/store"
)

// A load report is proposed when a group's availability changes, when the
// region's utilisation moves by loadChange, and every loadSummaryEvery;
// not for small moves in between (issue 17: a bounded rate, not every
// request).
func TestLoadChanged(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	g := proxy.GroupLoad{Group: "app", Backends: 2, Available: 2, Weight: 2, InFlight: 3, MaxConns: 10, Headroom: 17, Rate: 12.34, Latency: 1234567, Utilisation: 0.15}
	last := loadReport("eu-1", "eu-west", t0, []proxy.GroupLoad{g}, 0.15)
	if got := last.Groups[0]; got.Rate != 12.3 || got.Latency != 1235*time.Microsecond || got.Headroom != 17 {
		t.Errorf("translated group %+v, want the rate to 0.1/s and the latency to the microsecond", got)
	}
	down := g
	down.Available, down.Weight = 1, 1
	for _, tc := range []struct {
		name string
		r    *store.LoadReport
		want bool
	}{
		{"same a second later", loadReport("eu-1", "eu-west", t0.Add(time.Second), []proxy.GroupLoad{g}, 0.15), false},
		{"small move", loadReport("eu-1", "eu-west", t0.Add(time.Second), []proxy.GroupLoad{g}, 0.19), false},
		{"utilisation moved", loadReport("eu-1", "eu-west", t0.Add(time.Second), []proxy.GroupLoad{g}, 0.2), true},
		{"a backend went", loadReport("eu-1", "eu-west", t0.Add(time.Second), []proxy.GroupLoad{down}, 0.15), true},
		{"summary due", loadReport("eu-1", "eu-west", t0.Add(loadSummaryEvery), []proxy.GroupLoad{g}, 0.15), true},
		{"groups changed", loadReport("eu-1", "eu-west", t0.Add(time.Second), nil, 0.15), true},
	} {
		if got := loadChanged(last, tc.r); got != tc.want {
			t.Errorf("%s: loadChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !loadChanged(nil, last) {
		t.Error("the first report is not proposed")
	}
	loads := regionLoads([]store.LoadReport{*last, *loadReport("eu-2", "eu-west", t0.Add(time.Second), []proxy.GroupLoad{down}, 0.5)})
	if l := loads["eu-west"]; l == nil || l.Utilisation != 0.5 || l.Available != 3 || l.Backends != 4 || l.InFlight != 6 || !l.At.Equal(t0.Add(time.Second)) {
		t.Errorf("eu-west summed over two nodes: %+v, want utilisation 0.5 (the larger), 3 of 4 available, 6 in flight, the newer time", l)
	}
}

package gslb_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// loadHealth is a Health with every member up and the listed regions'
// utilisation (issue 17).
type loadHealth map[string]float64

func (loadHealth) Up(*zones.Pool, netip.Addr) (bool, bool) { return true, true }
func (l loadHealth) Utilisation(region string) (float64, bool) {
	u, ok := l[region]
	return u, ok
}

// TestLoadPolicy (issue 17): the load policy spreads client networks over
// the healthy regions by spare capacity, consistently per network (a
// network moves only from the region that filled up), with hysteresis (a
// move of less than 10 points changes nothing), and by weight alone when
// every region is full.
func TestLoadPolicy(t *testing.T) {
	set, recs := compileSet(t, "www 30 IN GSLB load pools=web-us,web-eu\n", gslb.Env{Health: loadHealth{"us-east": 0, "eu-west": 0}})
	r := recs["www"]
	const nets = 4000
	answers := func(v *gslb.View) (eu float64, by []string) {
		for i := range nets {
			c := fmt.Sprintf("%d.%d.%d.0/24", 11+i%200, i/200, i%7)
			a := r.Answer(nil, gslb.IPv4, client(c), v)
			if a.Scope != 24 {
				t.Fatalf("%s: scope %d, want 24", c, a.Scope)
			}
			by = append(by, addrs(a))
			if addrs(a) == "10.2.0.1" {
				eu++
			}
		}
		return eu / nets, by
	}
	v0 := set.DefaultView()
	share0, by0 := answers(v0)
	if share0 < 0.45 || share0 > 0.55 {
		t.Errorf("both regions idle: eu-west answers %.3f of networks, want 0.50 ± 0.05", share0)
	}
	if again, _ := answers(v0); again != share0 {
		t.Errorf("the same view answered %.3f then %.3f", share0, again)
	}
	v1, changed := v0.Update(loadHealth{"us-east": 0, "eu-west": 0.8}, nil)
	if !changed {
		t.Fatal("eu-west at 80 %: the view did not change")
	}
	if l, ok := v1.LoadLevel("eu-west"); !ok || l != 80 {
		t.Errorf("eu-west's level %d %v, want 80", l, ok)
	}
	share1, by1 := answers(v1)
	// Spare capacity 20 against 100: 1/6 of the networks.
	if want := 20.0 / 120; share1 < want-0.05 || share1 > want+0.05 {
		t.Errorf("eu-west at 80 %%: it answers %.3f of networks, want %.3f ± 0.05", share1, want)
	}
	for i := range by0 {
		if by0[i] == "10.1.0.1,10.1.0.2" && by1[i] != by0[i] {
			t.Fatalf("network %d moved from us-east to %s when eu-west filled up", i, by1[i])
		}
	}
	e := r.ExplainView(gslb.IPv4, *client("11.0.0.0/24"), nil, v1)
	if !strings.Contains(e.Choice.Why, "web-eu in eu-west: load 80%, 16.7% of networks") || !strings.Contains(e.Choice.Why, "web-us in us-east: load 0%, 83.3% of networks") {
		t.Errorf("explain shows no load figures: %s", e.Choice.Why)
	}
	dst := make([]netip.Addr, 0, 8)
	cl := client("11.0.0.0/24")
	if n := testing.AllocsPerRun(100, func() { r.Answer(dst[:0], gslb.IPv4, cl, v1) }); n != 0 {
		t.Errorf("a load answer: %.1f allocations, want 0", n)
	}
	// Hysteresis: 85 % is within 10 points of the 80 % answered with.
	if v2, changed := v1.Update(loadHealth{"us-east": 0.05, "eu-west": 0.85}, nil); changed {
		l, _ := v2.LoadLevel("eu-west")
		t.Errorf("a move of 5 points changed the view (eu-west now at %d)", l)
	}
	// Every region full: by weight alone, as when idle.
	v3, _ := v1.Update(loadHealth{"us-east": 1, "eu-west": 1}, nil)
	if share3, _ := answers(v3); share3 != share0 {
		t.Errorf("both regions full: eu-west answers %.3f, want %.3f as by weight alone", share3, share0)
	}
	// No load known (a Health without Load): by weight.
	v4, _ := v1.Update(gslb.AllUp{}, nil)
	if share4, _ := answers(v4); share4 != share0 {
		t.Errorf("no load known: eu-west answers %.3f, want %.3f", share4, share0)
	}
}

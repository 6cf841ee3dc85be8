package gslb_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
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

// TestGeoSpill (issue 17): geo with spill=80%: while the preferred
// region's load is past 80 %, the share (load - 80) / 20 of its client
// networks is answered with the next region in the client's order, the
// same networks every time (scope /24); below it, every network is back.
func TestGeoSpill(t *testing.T) {
	path := geodatatest.Write(t, map[string]geodata.Info{
		"10.0.0.0/8": {Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true},
	})
	db, err := geodata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	set, recs := compileSet(t, "www 30 IN GSLB geo spill=80% pools=web-us,web-eu,web-ap\n", gslb.Env{Geo: db, Health: loadHealth{"eu-west": 0.5}})
	r := recs["www"]
	const nets = 2000
	share := func(v *gslb.View) (us float64, by []string) {
		for i := range nets {
			c := fmt.Sprintf("10.%d.%d.0/24", i/250, i%250)
			a := r.Answer(nil, gslb.IPv4, client(c), v)
			by = append(by, addrs(a))
			switch addrs(a) {
			case "10.1.0.1,10.1.0.2":
				us++
				if a.Scope != 24 {
					t.Fatalf("%s spilled to us-east with scope %d, want 24", c, a.Scope)
				}
			case "10.2.0.1":
			default:
				t.Fatalf("%s: answered %s, want eu-west or the next region, us-east", c, addrs(a))
			}
		}
		return us / nets, by
	}
	v0 := set.DefaultView()
	if s, _ := share(v0); s != 0 {
		t.Errorf("eu-west at 50 %%: %.3f of EU networks spilled, want 0", s)
	}
	v1, _ := v0.Update(loadHealth{"eu-west": 0.85}, nil)
	s1, by1 := share(v1)
	if s1 < 0.20 || s1 > 0.30 {
		t.Errorf("eu-west at 85 %%, spill=80%%: %.3f of EU networks to us-east, want 0.25 ± 0.05", s1)
	}
	if _, again := share(v1); !slices.Equal(by1, again) {
		t.Error("the same networks are not spilled on every query")
	}
	if _, changed := v1.Update(loadHealth{"eu-west": 0.9}, nil); changed {
		t.Error("a move of 5 points changed the view (hysteresis)")
	}
	v2, _ := v1.Update(loadHealth{"eu-west": 0.95}, nil)
	s2, by2 := share(v2)
	if s2 < 0.70 || s2 > 0.80 {
		t.Errorf("eu-west at 95 %%: %.3f spilled, want 0.75 ± 0.05", s2)
	}
	for i := range by1 {
		if by1[i] != "10.2.0.1" && by2[i] == "10.2.0.1" {
			t.Fatalf("network %d came back to eu-west as its load rose", i)
		}
	}
	e := r.ExplainView(gslb.IPv4, *client("10.1.2.0/24"), db, v2)
	if !strings.Contains(e.Choice.Why, "spill=80%: eu-west at 95% sends 75.0% of its client networks") {
		t.Errorf("explain shows no spill figures: %s", e.Choice.Why)
	}
	dst := make([]netip.Addr, 0, 8)
	cl := client("10.1.2.0/24")
	if n := testing.AllocsPerRun(100, func() { r.Answer(dst[:0], gslb.IPv4, cl, v2) }); n != 0 {
		t.Errorf("a spilling geo answer: %.1f allocations, want 0", n)
	}
	v3, _ := v2.Update(loadHealth{"eu-west": 0.6}, nil)
	if s, _ := share(v3); s != 0 {
		t.Errorf("eu-west back at 60 %%: %.3f still spilled, want 0", s)
	}
}

package probes_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
)

// TestHysteresisModel checks the counter against the rule it implements,
// written the plain way (gdnsd's semantics: a result agreeing with the state
// resets the streak), over random result sequences with a fixed seed.
func TestHysteresisModel(t *testing.T) {
	// PR-01
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 500 {
		fails, passes := 1+rng.IntN(5), 1+rng.IntN(5)
		h := probes.Hysteresis{Fails: fails, Passes: passes}
		up, streak := true, 0
		var seq []bool
		for i := range 200 {
			ok := rng.IntN(3) > 0
			if run%2 == 1 {
				ok = rng.IntN(3) == 0 // mostly failing
			}
			seq = append(seq, ok)
			if ok == up {
				streak = 0
			} else {
				streak++
			}
			wantChange := false
			if up && streak == fails || !up && streak == passes {
				up, streak, wantChange = !up, 0, true
			}
			if changed := h.Observe(ok); changed != wantChange || h.Up() != up {
				t.Fatalf("fails=%d passes=%d after %v (step %d): changed=%v up=%v, want changed=%v up=%v",
					fails, passes, seq, i, changed, h.Up(), wantChange, up)
			}
		}
	}
}

// TestHysteresisIsolatedFailures: single failures and a 10% random failure
// rate never flip a target with fails=3.
func TestHysteresisIsolatedFailures(t *testing.T) {
	// PR-02
	h := probes.Hysteresis{Fails: 3, Passes: 2}
	for i := range 1000 {
		if h.Observe(i%7 != 0) {
			t.Fatalf("isolated failure at %d flipped the state", i)
		}
	}
	// With gdnsd's thresholds (fails=10, passes=20) a 10% random failure
	// rate never flips; with fails=3 it does now and then (three failures in
	// a row come about once in 1000 probes), which the log shows.
	for _, th := range []struct{ fails, passes, maxFlips int }{{10, 20, 0}, {3, 2, 40}} {
		h := probes.Hysteresis{Fails: th.fails, Passes: th.passes}
		rng := rand.New(rand.NewPCG(3, 4))
		flips := 0
		for range 10000 {
			if h.Observe(rng.IntN(10) != 0) {
				flips++
			}
		}
		t.Logf("10%% random failures, fails=%d passes=%d: %d flips in 10000 probes", th.fails, th.passes, flips)
		if flips > th.maxFlips {
			t.Errorf("10%% random failures, fails=%d: %d flips, want at most %d", th.fails, flips, th.maxFlips)
		}
	}
}

func TestHysteresisStartsUp(t *testing.T) {
	// PR-12: cold start is fail-open.
	h := probes.Hysteresis{Fails: 3, Passes: 2}
	if !h.Up() || h.Known() {
		t.Fatalf("new Hysteresis: up=%v known=%v, want up and unknown", h.Up(), h.Known())
	}
	h.Observe(false)
	if !h.Up() || !h.Known() {
		t.Fatalf("after one failure: up=%v known=%v, want still up, known", h.Up(), h.Known())
	}
}

func TestRTTStat(t *testing.T) {
	var s probes.RTTStat
	if s.Min() != 0 {
		t.Fatalf("empty Min = %v", s.Min())
	}
	ms := time.Millisecond
	s.Add(100 * ms)
	if s.EWMA != 100*ms || s.Min() != 100*ms {
		t.Fatalf("one sample: EWMA %v Min %v, want 100ms", s.EWMA, s.Min())
	}
	s.Add(20 * ms) // EWMA += (20-100)/4
	if s.EWMA != 80*ms || s.Min() != 20*ms {
		t.Fatalf("two samples: EWMA %v Min %v, want 80ms 20ms", s.EWMA, s.Min())
	}
	for range 8 { // the 20ms sample leaves the window of recent samples
		s.Add(50 * ms)
	}
	if s.Min() != 50*ms {
		t.Errorf("after 8 samples of 50ms: Min %v, want 50ms", s.Min())
	}
	if d := s.EWMA - 50*ms; d < 0 || d > 4*ms {
		t.Errorf("after 8 samples of 50ms: EWMA %v, want about 50ms", s.EWMA)
	}
}

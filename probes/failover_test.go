package probes_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/zones"
)

// scripted is a ProberConfig.Probe whose result is a function of the
// (fake) time, recording when each probe ran and the reported transitions.
type scripted struct {
	mu     sync.Mutex
	slow   time.Duration // how long each probe takes
	result func(now time.Time) probes.Result
	probes []time.Time
	deltas []probes.Status // transitions reported, in order
	at     []time.Time     // when each was reported
}

func (s *scripted) probe(_ context.Context, _ probes.Target) probes.Result {
	s.mu.Lock()
	s.probes = append(s.probes, time.Now())
	r, slow := s.result(time.Now()), s.slow
	s.mu.Unlock()
	time.Sleep(slow)
	return r
}

func (s *scripted) Report(r probes.Report) {
	if r.Full {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deltas = append(s.deltas, r.Statuses...)
	s.at = append(s.at, time.Now())
}

func (s *scripted) set(f func(time.Time) probes.Result) {
	s.mu.Lock()
	s.result = f
	s.mu.Unlock()
}

// since returns the probe times at or after t0.
func (s *scripted) since(t0 time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, at := range s.probes {
		if !at.Before(t0) {
			out = append(out, at)
		}
	}
	return out
}

func (s *scripted) state() (up bool, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.deltas) == 0 {
		return true, 0
	}
	return s.deltas[len(s.deltas)-1].Up, len(s.deltas)
}

var (
	ok      = func(time.Time) probes.Result { return probes.Result{Up: true, Reason: "HTTP 200"} }
	failing = func(time.Time) probes.Result { return probes.Result{Reason: "HTTP 503"} }
	refused = func(time.Time) probes.Result { return probes.Result{Reason: "connection refused", Refused: true} }
)

// defaultTarget is an http check with the zones defaults (interval 5s,
// fails 3, passes 2).
func defaultTarget(a netip.Addr) probes.Target {
	return probes.Target{Check: zones.Check{Scheme: "http", Port: 80, Path: "/healthz",
		Interval: zones.DefaultInterval, Fails: zones.DefaultFails, Passes: zones.DefaultPasses}, Addr: a}
}

const fastinter = 100 * time.Millisecond // the defaults' short interval

func startScripted(t *testing.T, s *scripted, damping probes.Damping, ts ...probes.Target) *probes.Prober {
	p := probes.NewProber(probes.ProberConfig{Name: "a", Probe: s.probe, Sink: s, Damping: damping, Logger: quiet})
	p.SetTargets(ts)
	runProber(t, p)
	return p
}

var noDamping = probes.Damping{HalfLife: -1}

func TestFastConfirmation(t *testing.T) {
	// One failure while up is re-checked at the short interval until fails
	// is reached, one success while down until passes is; a result that
	// agrees with the state ends the doubt, and the regular schedule (one
	// check per interval) is what is left in a steady state.
	for _, tc := range []struct {
		Name      string
		fail      func(time.Time) probes.Result
		wantFails int
	}{
		{"timeout or error status: fails=3 checks", failing, 3},
		{"refused: counts twice, 2 checks", refused, 2},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &scripted{result: ok}
				iv := zones.DefaultInterval
				startScripted(t, s, noDamping, defaultTarget(addr(1)))
				time.Sleep(2 * iv)
				tw := time.Now()
				time.Sleep(10 * iv)
				synctest.Wait()
				if n := len(s.since(tw)); n < 9 || n > 11 {
					t.Errorf("%d checks in 10 steady intervals, want 10±1", n)
				}
				s.set(tc.fail)
				t0 := time.Now()
				time.Sleep(iv*11/10 + fastinter*time.Duration(tc.wantFails)) // the interval is jittered by ±5%
				synctest.Wait()
				var got []time.Time
				s.mu.Lock()
				for _, at := range s.probes {
					if !at.Before(t0) && len(s.at) > 1 && !at.After(s.at[1]) {
						got = append(got, at)
					}
				}
				s.mu.Unlock()
				if up, n := s.state(); up || n != 2 {
					t.Fatalf("after %d failing checks: reported up=%v after %d reports, want down", len(got), up, n)
				}
				if len(got) != tc.wantFails {
					t.Fatalf("%d checks to go down, want %d", len(got), tc.wantFails)
				}
				for i := 1; i < len(got); i++ {
					if d := got[i].Sub(got[i-1]); d != fastinter {
						t.Errorf("re-check %d came %v after the previous one, want the short interval %v", i, d, fastinter)
					}
				}
				// Down and failing: back to one check per interval.
				t1 := time.Now()
				time.Sleep(10 * iv)
				synctest.Wait()
				if n := len(s.since(t1)); n < 9 || n > 11 {
					t.Errorf("%d checks in 10 intervals while down, want 10±1", n)
				}
				// Back: passes=2 checks a short interval apart.
				s.set(ok)
				t2 := time.Now()
				time.Sleep(iv*11/10 + 2*fastinter)
				synctest.Wait()
				got = s.since(t2)
				if up, _ := s.state(); !up || len(got) < 2 || got[1].Sub(got[0]) != fastinter {
					t.Errorf("coming back: up=%v after checks at %v, want up after 2 a short interval apart", up, got)
				}
			})
		})
	}
}

func TestBlipIsNotConfirmed(t *testing.T) {
	// A single failure between successes costs one extra check and no
	// transition.
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{result: ok}
		iv := zones.DefaultInterval
		startScripted(t, s, noDamping, defaultTarget(addr(1)))
		time.Sleep(2 * iv)
		synctest.Wait()
		var once sync.Once
		s.set(func(time.Time) probes.Result {
			r := ok(time.Time{})
			once.Do(func() { r = failing(time.Time{}) })
			return r
		})
		t0 := time.Now()
		time.Sleep(10 * iv)
		synctest.Wait()
		if up, n := s.state(); !up || n != 1 {
			t.Errorf("after one failure: up=%v, %d reports, want up and only the first", up, n)
		}
		if n := len(s.since(t0)); n < 10 || n > 12 {
			t.Errorf("%d checks in 10 intervals with one blip, want 11±1", n)
		}
	})
}

func TestCheckNow(t *testing.T) {
	// CheckNow checks at once, at most once per short interval, and leaves
	// the regular schedule alone.
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{result: ok}
		iv := zones.DefaultInterval
		m := defaultTarget(addr(1))
		p := startScripted(t, s, noDamping, m)
		// Right after a regular check, so that the next one is an interval
		// away, and a short interval after it.
		time.Sleep(2 * iv)
		for n := len(s.since(time.Time{})); len(s.since(time.Time{})) == n; {
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		time.Sleep(fastinter)
		t0 := time.Now()
		p.CheckNow(m.Key(), "no such key")
		synctest.Wait()
		if got := s.since(t0); len(got) != 1 || !got[0].Equal(t0) {
			t.Fatalf("CheckNow: checks at %v, want one at once (%v)", got, t0)
		}
		p.CheckNow(m.Key())
		p.CheckNow(m.Key())
		synctest.Wait()
		if n := len(s.since(t0)); n != 1 {
			t.Fatalf("CheckNow again at once: %d checks, want the second deferred", n)
		}
		time.Sleep(fastinter)
		synctest.Wait()
		if got := s.since(t0); len(got) != 2 || got[1].Sub(t0) != fastinter {
			t.Fatalf("deferred CheckNow: checks at %v, want the second a short interval later", got)
		}
		// A CheckNow that finds the member down starts the fast confirmation.
		s.set(refused)
		time.Sleep(time.Second)
		t1 := time.Now()
		p.CheckNow(m.Key())
		time.Sleep(fastinter)
		synctest.Wait()
		if up, _ := s.state(); up {
			t.Errorf("refused after CheckNow and one re-check: still up (checks %v)", s.since(t1))
		}
		// The regular schedule goes on: about one check per interval.
		s.set(failing)
		t2 := time.Now()
		time.Sleep(10 * iv)
		synctest.Wait()
		if n := len(s.since(t2)); n < 9 || n > 11 {
			t.Errorf("%d checks in 10 intervals after CheckNow, want 10±1", n)
		}
	})
}

func TestDampingFlappingMember(t *testing.T) {
	// PR-02, CH-03 (issue 16): a member alternating 200/503 every 700 ms,
	// with the default checks and damping, changes state once while it
	// flaps: its first outage is reported (as any outage, without delay),
	// its quick return is put on probation, fails it and is held down. It
	// never comes back while it flaps, whatever the schedule's jitter and
	// the flapping's phase; once it stops, it comes back within
	// HalfLife × log2(Max/Reuse), an interval and the settle window; and
	// when it then really goes down it is reported down at once. Checks
	// that take 150 ms each (a loaded machine, a far member) space the
	// settle windows' checks out: a window then lasts its ten checks.
	for run := range 16 {
		phase := time.Duration(run) * 117 * time.Millisecond
		var slow time.Duration
		if run >= 12 {
			slow = 150 * time.Millisecond
		}
		t.Run(fmt.Sprintf("phase %v, checks taking %v", phase, slow), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				began := time.Now().Add(-phase)
				flap := func(now time.Time) probes.Result {
					if (now.Sub(began)/(700*time.Millisecond))%2 == 1 {
						return failing(now)
					}
					return ok(now)
				}
				s := &scripted{result: flap, slow: slow}
				startScripted(t, s, probes.Damping{}, defaultTarget(addr(1)))
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				s.mu.Lock()
				deltas, at := append([]probes.Status(nil), s.deltas...), append([]time.Time(nil), s.at...)
				s.mu.Unlock()
				var changes []string
				for i, d := range deltas[1:] { // the first is the first result, not a change
					changes = append(changes, fmt.Sprintf("%v up=%v", at[i+1].Sub(began), d.Up))
				}
				if len(changes) != 1 || deltas[1].Up {
					t.Fatalf("changes over 10 minutes of flapping: %v, want exactly one, down", changes)
				}
				t.Logf("the one change: %v", changes[0])
				// It stops flapping and stays up: it comes back.
				s.set(ok)
				t0 := time.Now()
				d := probes.DefaultDamping()
				hold := time.Duration(float64(d.HalfLife)*math.Log2(d.Max/d.Reuse)) + zones.DefaultInterval*11/10 + 10*(fastinter+slow) + time.Second
				time.Sleep(hold)
				synctest.Wait()
				if up, _ := s.state(); !up {
					t.Errorf("still held down %v after the flapping stopped", time.Since(t0))
				}
				// It really goes down: reported down at once, damping or not.
				s.set(refused)
				t1 := time.Now()
				time.Sleep(zones.DefaultInterval*11/10 + fastinter)
				synctest.Wait()
				if up, _ := s.state(); up {
					t.Errorf("a member refusing for %v after flapping is still up", time.Since(t1))
				}
			})
		})
	}
}

// outage runs a member that is up, then fails (refused) for length from
// the first check that sees it, then is up for good, with the default
// checks and damping; it returns the checks and the reported transitions
// from the first failed check on.
func outage(t *testing.T, length time.Duration) (checks []probes.Result, ats []time.Time, deltas []probes.Status, deltaAt []time.Time) {
	var failedAt time.Time
	var mu sync.Mutex
	s := &scripted{}
	s.set(func(now time.Time) probes.Result {
		mu.Lock()
		defer mu.Unlock()
		var r probes.Result
		switch {
		case now.Before(failedAt.Add(length)) && !failedAt.IsZero():
			r = refused(now)
		case !failedAt.IsZero():
			r = ok(now)
		default:
			r = ok(now)
		}
		if !failedAt.IsZero() {
			checks, ats = append(checks, r), append(ats, now)
		}
		return r
	})
	startScripted(t, s, probes.Damping{}, defaultTarget(addr(1)))
	time.Sleep(2 * zones.DefaultInterval)
	synctest.Wait()
	// Fail from the next check on.
	s.mu.Lock()
	next := s.result
	s.mu.Unlock()
	s.set(func(now time.Time) probes.Result {
		mu.Lock()
		if failedAt.IsZero() {
			failedAt = now
		}
		mu.Unlock()
		return next(now)
	})
	time.Sleep(length + 3*zones.DefaultInterval)
	synctest.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return checks, ats, s.deltas[1:], s.at[1:]
}

func TestDampingOutageNotDelayed(t *testing.T) {
	// PR-01, CH-02: an outage longer than the settle window is reported down and back
	// when the hysteresis says so: fails (two refusals) and passes checks
	// a short interval apart, no probation, no hold.
	synctest.Test(t, func(t *testing.T) {
		checks, ats, deltas, deltaAt := outage(t, 3*time.Second)
		if len(deltas) != 2 || deltas[0].Up || !deltas[1].Up {
			t.Fatalf("transitions %v, want down then up", deltas)
		}
		if !deltaAt[0].Equal(ats[1]) || ats[1].Sub(ats[0]) != fastinter {
			t.Errorf("down reported at %v after checks at %v, want at the second refusal a short interval after the first", deltaAt[0], ats[:2])
		}
		// Back: the check that passed first, and the next one.
		for i, r := range checks {
			if r.Up {
				if i+1 >= len(ats) || !deltaAt[1].Equal(ats[i+1]) || ats[i+1].Sub(ats[i]) != fastinter {
					t.Errorf("up reported at %v, want at the second passed check a short interval after the first (%v)", deltaAt[1], ats[i:])
				}
				break
			}
		}
	})
}

func TestDampingQuickReturnOnProbation(t *testing.T) {
	// PR-02: a member that comes back within the settle window (1s) of being
	// confirmed down is reported up only after a settle window of passed
	// checks at the short interval; a failed check on probation holds it
	// down (TestDampingFlappingMember).
	synctest.Test(t, func(t *testing.T) {
		checks, ats, deltas, deltaAt := outage(t, 500*time.Millisecond)
		if len(deltas) != 2 || deltas[0].Up || !deltas[1].Up {
			t.Fatalf("transitions %v, want down then up", deltas)
		}
		first := -1
		for i, r := range checks {
			if r.Up {
				first = i
				break
			}
		}
		if first < 0 {
			t.Fatal("no passed check")
		}
		var passed int
		for i := first; i < len(ats) && !ats[i].After(deltaAt[1]); i++ {
			if i > first && ats[i].Sub(ats[i-1]) != fastinter {
				t.Errorf("probation check %d came %v after the previous one, want the short interval", i-first, ats[i].Sub(ats[i-1]))
			}
			passed++
		}
		// passes=2 checks bring the hysteresis up; the probation then
		// lasts ten short intervals.
		if d := deltaAt[1].Sub(ats[first]); d < 10*fastinter || d > 12*fastinter {
			t.Errorf("up reported %v after the first passed check (%d checks), want a settle window (10 short intervals) after the hysteresis", d, passed)
		}
	})
}

func TestDampingOutageAndReturn(t *testing.T) {
	// One outage and its return are never damped; a second outage soon
	// after holds the second return until the penalty decays.
	synctest.Test(t, func(t *testing.T) {
		d := probes.DefaultDamping()
		now := time.Now()
		d.Down(now)
		now = now.Add(2 * time.Second) // and back up
		if d.Suppressed(now) {
			t.Fatalf("one outage and return suppressed (penalty %.2f)", d.Penalty(now))
		}
		now = now.Add(5 * time.Second)
		d.Down(now) // down again
		if !d.Suppressed(now) {
			t.Fatalf("a second outage 7 s after the first is not suppressed (penalty %.2f)", d.Penalty(now))
		}
		rel := d.ReleaseAt(now)
		if !d.Suppressed(rel.Add(-10 * time.Millisecond)) {
			t.Errorf("released before ReleaseAt (%v later)", rel.Sub(now))
		}
		if d.Suppressed(rel) {
			t.Errorf("still suppressed at ReleaseAt (%v later, penalty %.2f)", rel.Sub(now), d.Penalty(rel))
		}
		// An outage a long time after: not suppressed.
		later := rel.Add(10 * time.Minute)
		d.Down(later)
		if d.Suppressed(later.Add(time.Second)) {
			t.Errorf("an outage and return long after the flapping are suppressed")
		}
	})
}

func TestLostNodeOneFailureIsEnough(t *testing.T) {
	// PR-03, CH-09 (issue 16): a target whose fronting node the cluster
	// has lost goes down on one failed check (a hung machine's proxy
	// accepts and never answers: three timeouts would take three times the
	// timeout); once the node is back, fails checks are needed again.
	timeout := func(time.Time) probes.Result { return probes.Result{Reason: "timeout after 2s"} }
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{result: ok}
		m := defaultTarget(addr(1))
		p := startScripted(t, s, noDamping, m)
		time.Sleep(2 * zones.DefaultInterval)
		synctest.Wait()
		p.SetLost(true, m.Key(), "no such key")
		s.set(timeout)
		t0 := time.Now()
		p.CheckNow(m.Key())
		synctest.Wait()
		if up, n := s.state(); up || n != 2 || len(s.since(t0)) != 1 {
			t.Fatalf("lost node, one failed check (%d checks): up=%v after %d reports, want down", len(s.since(t0)), up, n)
		}
		s.set(ok)
		time.Sleep(zones.DefaultInterval * 11 / 10)
		synctest.Wait()
		if up, _ := s.state(); !up {
			t.Fatalf("back after passed checks: still down")
		}
		p.SetLost(false, m.Key())
		s.set(timeout)
		time.Sleep(time.Minute) // past the settle windows and any probation
		synctest.Wait()
		if up, _ := s.state(); up {
			t.Fatalf("node back, failing checks: still up")
		}
		s.set(ok)
		time.Sleep(zones.DefaultInterval * 11 / 10)
		synctest.Wait()
		s.set(timeout)
		t1 := time.Now()
		p.CheckNow(m.Key())
		synctest.Wait()
		if up, _ := s.state(); !up {
			t.Errorf("node back: down after one failed check (%d checks), want fails=3", len(s.since(t1)))
		}
		time.Sleep(2 * fastinter)
		synctest.Wait()
		if up, _ := s.state(); up {
			t.Errorf("node back: up after three failed checks")
		}
	})
}

package probes

import (
	"math"
	"time"
)

// Hysteresis is one prober's up/down state for one target. A target starts
// up (cold start is fail-open), goes down after Fails consecutive failures
// and comes back after Passes consecutive successes; a result that agrees
// with the current state resets the count. A refused or reset connection
// counts as two failures (ObserveRefused): the member's host answered that
// nothing listens, which a timeout cannot tell from loss on the way. The
// zero value with Fails and Passes set is ready; it is not safe for
// concurrent use.
type Hysteresis struct {
	Fails, Passes int

	down  bool
	known bool
	run   int // weight of the consecutive results that disagree with the state
}

// Up reports the current state.
func (h *Hysteresis) Up() bool { return !h.down }

// Known reports whether at least one result has been observed.
func (h *Hysteresis) Known() bool { return h.known }

// InDoubt reports whether the last results disagree with the state without
// having flipped it yet: the prober then re-checks at the short interval.
func (h *Hysteresis) InDoubt() bool { return h.run > 0 }

// Observe records one probe result and reports whether the state flipped.
func (h *Hysteresis) Observe(ok bool) (changed bool) { return h.observe(ok, 1) }

// ObserveRefused records a failure whose connection was refused or reset:
// it weighs two ordinary failures, so with fails=3 two refusals a short
// interval apart take the target down, and one alone never does unless
// fails=1 (a restarting server refuses for a moment).
func (h *Hysteresis) ObserveRefused() (changed bool) { return h.observe(false, 2) }

// ObserveLost records a failure of a target whose node the cluster has
// lost (it stopped answering Raft): it weighs fails, so the target goes
// down at once. The failed check is still the evidence; the lost node
// only says that no second one is needed.
func (h *Hysteresis) ObserveLost() (changed bool) { return h.observe(false, max(h.Fails, 1)) }

func (h *Hysteresis) observe(ok bool, weight int) (changed bool) {
	h.known = true
	if ok != h.down { // agrees with the current state
		h.run = 0
		return false
	}
	h.run += weight
	need := max(h.Fails, 1)
	if h.down {
		need = max(h.Passes, 1)
	}
	if h.run < need {
		return false
	}
	h.down = !h.down
	h.run = 0
	return true
}

// RTTStat smooths round-trip times: an exponentially weighted moving average
// (weight 1/4 for each new sample) and the minimum of the last 8 samples. The
// zero value is ready; it is not safe for concurrent use.
type RTTStat struct {
	EWMA time.Duration
	N    int // samples seen
	last [8]time.Duration
}

// Add records one sample.
func (s *RTTStat) Add(d time.Duration) {
	if s.N == 0 {
		s.EWMA = d
	} else {
		s.EWMA += (d - s.EWMA) / 4
	}
	s.last[s.N%len(s.last)] = d
	s.N++
}

// Min is the smallest of the recent samples, or 0 before the first.
func (s *RTTStat) Min() time.Duration {
	n := min(s.N, len(s.last))
	if n == 0 {
		return 0
	}
	m := s.last[0]
	for _, d := range s.last[1:n] {
		m = min(m, d)
	}
	return m
}

// Damping holds a flapping target down, as BGP route flap damping (RFC 2439)
// does a route: every time the target's state goes down (a withdrawal) a
// penalty of 1 is added, and the penalty halves every HalfLife; when a down
// flip takes the penalty to Suppress or above, the target is suppressed:
// reported down, whatever its checks say, until the penalty has decayed
// below Reuse. A failed check that did not take the target down (a blip:
// the next check passed) adds half a flap, and so does each failed check
// while suppressed (it is still flapping, even when its checks no longer
// take its state down); coming back adds nothing, so a target that stopped failing is released
// on time. The penalty is capped at Max, which bounds how long a target
// that stopped flapping stays held (HalfLife × log2(Max/Reuse)).
//
// With the defaults one outage and its return never suppress; a second
// outage within 30 s of the first does, for about a minute, and for as long
// as the target keeps failing now and then; 90 s at most after it stopped.
// The Prober adds a probation that catches a fast flapper at its first
// outage (Flapped): a target that passes a check within the settle window
// after going down, or whose suppression ends, is reported up only after a
// settle window of passed checks, and one failed check in it suppresses it
// at once. Suppression only
// ever holds a target down: a target that really goes down is reported
// down at once.
// The zero value holds nothing until configured; Damping is not safe for
// concurrent use.
type Damping struct {
	HalfLife             time.Duration // <= 0 disables damping
	Suppress, Reuse, Max float64
	penalty              float64
	at                   time.Time // when penalty was last decayed
	suppressed           bool
}

// Damping defaults: see Damping and docs/health.md.
const (
	DefaultDampingHalfLife = 30 * time.Second
	DefaultDampingSuppress = 1.5
	DefaultDampingReuse    = 0.5
	DefaultDampingMax      = 4
)

// DefaultDamping returns a Damping with the default settings.
func DefaultDamping() Damping {
	return Damping{HalfLife: DefaultDampingHalfLife, Suppress: DefaultDampingSuppress,
		Reuse: DefaultDampingReuse, Max: DefaultDampingMax}
}

func (d *Damping) decay(now time.Time) {
	if !d.at.IsZero() && d.penalty > 0 {
		d.penalty *= math.Exp2(-float64(now.Sub(d.at)) / float64(d.HalfLife))
	}
	d.at = now
	if d.suppressed && d.penalty < d.Reuse {
		d.suppressed = false
	}
}

// add adds p to the penalty at now.
func (d *Damping) add(now time.Time, p float64) {
	d.decay(now)
	d.penalty = min(d.penalty+p, d.Max)
}

// Down records that the target's state went down at now.
func (d *Damping) Down(now time.Time) {
	if d.HalfLife > 0 {
		d.add(now, 1)
		d.suppressed = d.suppressed || d.penalty >= d.Suppress
	}
}

// Blip records a failed check that did not take the target down: half a
// flap. It never suppresses by itself.
func (d *Damping) Blip(now time.Time) {
	if d.HalfLife > 0 {
		d.add(now, 0.5)
	}
}

// Failed records a failed check at now: while suppressed it adds half a
// flap, else nothing.
func (d *Damping) Failed(now time.Time) {
	if d.Suppressed(now) {
		d.add(now, 0.5)
	}
}

// Flapped records that the target showed it is flapping: it failed a
// check while on probation, after a quick return or after its suppression
// ended (see Prober). It adds half a
// flap and suppresses the target whatever the penalty, which is raised to
// Suppress at least, so that the hold lasts HalfLife × log2(Suppress/Reuse)
// at the least (48 s with the defaults) and longer while it keeps failing.
func (d *Damping) Flapped(now time.Time) {
	if d.HalfLife > 0 {
		d.add(now, 0.5)
		d.penalty = max(d.penalty, d.Suppress)
		d.suppressed = true
	}
}

// Suppressed reports whether the target is held down at now.
func (d *Damping) Suppressed(now time.Time) bool {
	if d.HalfLife <= 0 {
		return false
	}
	d.decay(now)
	return d.suppressed
}

// Penalty returns the penalty at now.
func (d *Damping) Penalty(now time.Time) float64 {
	if d.HalfLife <= 0 {
		return 0
	}
	d.decay(now)
	return d.penalty
}

// ReleaseAt returns when a suppressed target's penalty falls below Reuse
// if it does not flip again (zero when it is not suppressed).
func (d *Damping) ReleaseAt(now time.Time) time.Time {
	if !d.Suppressed(now) {
		return time.Time{}
	}
	return now.Add(time.Duration(math.Log2(d.penalty/d.Reuse)*float64(d.HalfLife)) + time.Millisecond)
}

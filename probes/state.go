package probes

import "time"

// Hysteresis is one prober's up/down state for one target. A target starts
// up (cold start is fail-open), goes down after Fails consecutive failures
// and comes back after Passes consecutive successes; a result that agrees
// with the current state resets the count. The zero value with Fails and
// Passes set is ready; it is not safe for concurrent use.
type Hysteresis struct {
	Fails, Passes int

	down  bool
	known bool
	run   int // consecutive results that disagree with the current state
}

// Up reports the current state.
func (h *Hysteresis) Up() bool { return !h.down }

// Known reports whether at least one result has been observed.
func (h *Hysteresis) Known() bool { return h.known }

// Observe records one probe result and reports whether the state flipped.
func (h *Hysteresis) Observe(ok bool) (changed bool) {
	h.known = true
	if ok != h.down { // agrees with the current state
		h.run = 0
		return false
	}
	h.run++
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

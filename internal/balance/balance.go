// Package balance holds the selection maths shared by the DNS policies and the
// region proxy: smooth weighted round robin schedules, Maglev and rendezvous
// (highest random weight) consistent hashing, and stable key hashing.
//
// It holds maths only, never live objects: callers pass weights and member
// identities and get indices back. Every function here is pure and safe for
// concurrent use; the types are immutable once built.
package balance

import (
	"math"
	"math/bits"
)

// Hash64 returns a stable 64-bit hash of s (FNV-1a followed by a 64-bit
// finalizer), the same in every process and on every platform, so that two
// proxies or two DNS nodes agree on where a key goes.
func Hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return Mix64(h)
}

// HashBytes is Hash64 for a byte slice.
func HashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return Mix64(h)
}

// Mix64 is the splitmix64 finalizer: it spreads the bits of x so that
// nearby inputs give unrelated outputs.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SWRR returns one full cycle of nginx's smooth weighted round robin over
// weights: a slice of member indices in which member i appears weights[i]/g
// times (g the gcd of the positive weights), spread as evenly as the
// algorithm allows. Walking the slice with an atomic counter gives lock-free
// smooth weighted selection. Members with weight <= 0 never appear.
//
// maxLen bounds the schedule: when the reduced weights sum to more, they are
// scaled down proportionally (each positive weight stays >= 1). maxLen <= 0
// means 1<<16.
func SWRR(weights []int, maxLen int) []int {
	if maxLen <= 0 {
		maxLen = 1 << 16
	}
	g := 0
	for _, w := range weights {
		if w > 0 {
			g = gcd(g, w)
		}
	}
	if g == 0 {
		return nil
	}
	w := make([]int, len(weights))
	total := 0
	for i, x := range weights {
		if x > 0 {
			w[i] = x / g
			total += w[i]
		}
	}
	if total > maxLen {
		scale := float64(maxLen) / float64(total)
		total = 0
		for i := range w {
			if w[i] > 0 {
				w[i] = max(1, int(float64(w[i])*scale))
				total += w[i]
			}
		}
	}
	cur := make([]int, len(w))
	out := make([]int, 0, total)
	for range total {
		best := -1
		for i := range w {
			if w[i] <= 0 {
				continue
			}
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, best)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// MaglevSize is the default Maglev lookup table size: a prime much larger
// than any realistic member count, so disruption on membership change stays
// close to the 1/N optimum.
const MaglevSize = 65537

// Maglev is an immutable Maglev lookup table (Eisenbud et al., NSDI 2016)
// mapping a key hash to a member index.
type Maglev struct {
	table []int32
}

// NewMaglev builds a Maglev table of size m (a prime; <= 0 means
// MaglevSize) for members named by ids (their stable identities, e.g.
// addresses) with the given weights (nil means all 1; weights <= 0 exclude a
// member). Members keep their preferred slots when others come or go, so a
// change of membership moves about 1/N of the keys. It returns nil when no
// member has a positive weight.
func NewMaglev(ids []string, weights []int, m int) *Maglev {
	if m <= 0 {
		m = MaglevSize
	}
	n := len(ids)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	w := make([]int, n)
	maxW := 0
	for i, id := range ids {
		h := Hash64(id)
		offset[i] = h % uint64(m)
		skip[i] = Mix64(h^0x9e3779b97f4a7c15)%uint64(m-1) + 1
		w[i] = 1
		if weights != nil {
			w[i] = weights[i]
		}
		maxW = max(maxW, w[i])
	}
	if maxW <= 0 {
		return nil
	}
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	// Weighted Maglev: in each round a member with weight w takes a turn
	// with probability w/maxW, decided by a deterministic credit counter.
	credit := make([]int, n)
	for filled < m {
		for i := 0; i < n && filled < m; i++ {
			if w[i] <= 0 {
				continue
			}
			credit[i] += w[i]
			if credit[i] < maxW {
				continue
			}
			credit[i] -= maxW
			for {
				c := (offset[i] + next[i]*skip[i]) % uint64(m)
				next[i]++
				if table[c] < 0 {
					table[c] = int32(i)
					filled++
					break
				}
			}
		}
	}
	return &Maglev{table: table}
}

// Lookup returns the member index for a key hash.
func (t *Maglev) Lookup(h uint64) int {
	return int(t.table[h%uint64(len(t.table))])
}

// Rendezvous returns the index of the member with the highest random weight
// for key hash h (weighted rendezvous hashing: score = -w / ln(u)), or -1
// when no member has a positive weight. idHashes are the members' stable
// identity hashes (Hash64 of their names). Adding or removing a member moves
// only the keys that it wins or held.
func Rendezvous(h uint64, idHashes []uint64, weights []int) int {
	best, bestScore := -1, math.Inf(-1)
	for i, id := range idHashes {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		if w <= 0 {
			continue
		}
		x := Mix64(h ^ id)
		// u in (0,1): 53 high bits, never 0.
		u := (float64(x>>11) + 0.5) / (1 << 53)
		score := -float64(w) / math.Log(u)
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// LessLoaded reports whether a member with load la and weight wa is less
// loaded than one with lb and wb, comparing la/wa < lb/wb without division.
// It is the comparison used by weighted least connections and power of two
// choices. Weights must be positive.
func LessLoaded(la, wa, lb, wb int64) bool {
	hi1, lo1 := bits.Mul64(uint64(la), uint64(wb))
	hi2, lo2 := bits.Mul64(uint64(lb), uint64(wa))
	if hi1 != hi2 {
		return hi1 < hi2
	}
	return lo1 < lo2
}

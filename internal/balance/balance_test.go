package balance

import (
	"fmt"
	"slices"
	"testing"
)

func TestSWRR(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    []int
	}{
		// nginx's documented sequence for weights 5,1,1: a a b a c a a.
		{"nginx-5-1-1", []int{5, 1, 1}, []int{0, 0, 1, 0, 2, 0, 0}},
		{"equal", []int{1, 1, 1}, []int{0, 1, 2}},
		{"gcd-reduced", []int{20, 20}, []int{0, 1}},
		{"zero-excluded", []int{0, 2, 0, 1}, []int{1, 3, 1}},
		{"none", []int{0, 0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SWRR(tc.weights, 0)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("SWRR(%v) = %v, want %v", tc.weights, got, tc.want)
			}
		})
	}
}

func TestSWRRCounts(t *testing.T) {
	for _, w := range [][]int{{5, 3, 2}, {2, 3, 5}, {3, 5, 2}} {
		s := SWRR(w, 0)
		counts := make([]int, len(w))
		for _, i := range s {
			counts[i]++
		}
		if !slices.Equal(counts, w) {
			t.Errorf("SWRR(%v) counts = %v, want %v", w, counts, w)
		}
	}
	// Scaled down when the cycle would be too long; every member keeps a slot.
	s := SWRR([]int{1000, 1, 999}, 100)
	if len(s) > 102 || !slices.Contains(s, 1) {
		t.Errorf("SWRR scaled: len %d, contains member 1 = %v", len(s), slices.Contains(s, 1))
	}
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("client-%d", i)
	}
	return out
}

func TestMaglevAddMovesFewKeys(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
		}
		before := NewMaglev(ids, nil, 0)
		after := NewMaglev(append(slices.Clone(ids), "10.0.1.1:80"), nil, 0)
		moved := 0
		ks := keys(20000)
		for _, k := range ks {
			h := Hash64(k)
			if before.Lookup(h) != after.Lookup(h) {
				moved++
			}
		}
		frac := float64(moved) / float64(len(ks))
		limit := 1/float64(n+1) + 0.05
		t.Logf("maglev n=%d->%d: moved %.4f of keys (limit %.4f)", n, n+1, frac, limit)
		if frac > limit {
			t.Errorf("maglev n=%d: moved %.4f of keys, want <= %.4f", n, frac, limit)
		}
	}
}

func TestMaglevWeights(t *testing.T) {
	m := NewMaglev([]string{"a", "b", "c"}, []int{5, 3, 2}, 0)
	counts := make([]int, 3)
	for _, idx := range m.table {
		counts[idx]++
	}
	for i, want := range []float64{0.5, 0.3, 0.2} {
		got := float64(counts[i]) / float64(len(m.table))
		if got < want-0.01 || got > want+0.01 {
			t.Errorf("member %d owns %.4f of the table, want %.2f±0.01", i, got, want)
		}
	}
	if NewMaglev([]string{"a"}, []int{0}, 0) != nil {
		t.Error("NewMaglev with no positive weight: want nil")
	}
}

func TestRendezvous(t *testing.T) {
	ids := []uint64{Hash64("a"), Hash64("b"), Hash64("c")}
	more := append(slices.Clone(ids), Hash64("d"))
	moved, toNew := 0, 0
	counts := make([]int, 3)
	ks := keys(30000)
	for _, k := range ks {
		h := Hash64(k)
		a, b := Rendezvous(h, ids, nil), Rendezvous(h, more, nil)
		counts[a]++
		if a != b {
			moved++
			if b == 3 {
				toNew++
			}
		}
	}
	if moved != toNew {
		t.Errorf("rendezvous: %d keys moved between old members, want 0", moved-toNew)
	}
	if f := float64(moved) / float64(len(ks)); f > 0.25+0.05 {
		t.Errorf("rendezvous: moved %.4f, want <= 0.30", f)
	}
	for i, c := range counts {
		if f := float64(c) / float64(len(ks)); f < 0.30 || f > 0.37 {
			t.Errorf("rendezvous: member %d got %.4f of keys, want about 1/3", i, f)
		}
	}
	if Rendezvous(1, ids, []int{0, 0, 0}) != -1 {
		t.Error("rendezvous with zero weights: want -1")
	}
}

func TestLessLoaded(t *testing.T) {
	if !LessLoaded(1, 2, 1, 1) || LessLoaded(2, 1, 1, 1) || LessLoaded(2, 2, 1, 1) {
		t.Fatal("LessLoaded wrong")
	}
}

func BenchmarkMaglevLookup(b *testing.B) {
	m := NewMaglev([]string{"a", "b", "c"}, nil, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = m.Lookup(Hash64("10.1.2.3"))
	}
}

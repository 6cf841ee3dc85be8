package gslb

import (
	"testing"
	"unsafe"
)

// TestRecordLayout pins what Record's doc says: the fields Answer reads
// for every query lie within its first 64 bytes.
func TestRecordLayout(t *testing.T) {
	var r Record
	hot := []struct {
		name      string
		off, size uintptr
	}{
		{"set", unsafe.Offsetof(r.set), unsafe.Sizeof(r.set)},
		{"Policy", unsafe.Offsetof(r.Policy), unsafe.Sizeof(r.Policy)},
		{"pools", unsafe.Offsetof(r.pools), unsafe.Sizeof(r.pools)},
		{"TTL", unsafe.Offsetof(r.TTL), unsafe.Sizeof(r.TTL)},
		{"opts.shortTTL", unsafe.Offsetof(r.opts) + unsafe.Offsetof(r.opts.shortTTL), unsafe.Sizeof(r.opts.shortTTL)},
		{"opts.answers", unsafe.Offsetof(r.opts) + unsafe.Offsetof(r.opts.answers), unsafe.Sizeof(r.opts.answers)},
		{"opts.fallback", unsafe.Offsetof(r.opts) + unsafe.Offsetof(r.opts.fallback), unsafe.Sizeof(r.opts.fallback)},
		{"opts.cname", unsafe.Offsetof(r.opts) + unsafe.Offsetof(r.opts.cname), unsafe.Sizeof(r.opts.cname)},
	}
	for _, f := range hot {
		if f.off+f.size > 64 {
			t.Errorf("Record.%s ends at byte %d, want within the first 64", f.name, f.off+f.size)
		}
	}
}

// TestRecordsShareParts: records of the same policy, pools, weights and
// options share their pool list and policy (a query for any of them reads
// those from the cache); records that differ in any of these do not, and
// every record still answers as its own definition says.
func TestRecordsShareParts(t *testing.T) {
	src := internalHeader + `$POOL a region=us-east members=10.1.0.1
$POOL b region=eu-west members=10.2.0.1
g1 30 IN GSLB geo pools=a,b
g2 60 IN GSLB geo pools=a,b
g3 30 IN GSLB geo pools=b,a
g4 30 IN GSLB geo pools=a,b spill=80%
l1 30 IN GSLB latency pools=a,b
w1 30 IN GSLB weighted pools=a@3,b@1
w2 30 IN GSLB weighted pools=a@3,b@1
w3 30 IN GSLB weighted pools=a@1,b@3
w4 30 IN GSLB weighted pools=a@3,b@1 sticky=prefix
f1 30 IN GSLB failover pools=a,b
f2 30 IN GSLB failover pools=a,b answers=1
`
	z, set := compileSource(t, src, Env{})
	rec := map[string]*Record{}
	for _, zr := range z.Records {
		rec[zr.Name[:2]] = set.Record(zr)
	}
	sameList := func(a, b []int) bool { return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0] }
	for _, tc := range []struct {
		a, b  string
		share bool
	}{
		{"g1", "g2", true}, // the TTL is the record's own
		{"w1", "w2", true},
		{"g1", "g3", false},
		{"g1", "g4", false},
		{"g1", "l1", false},
		{"w1", "w3", false},
		{"w1", "w4", false},
		{"f1", "f2", false},
	} {
		ra, rb := rec[tc.a], rec[tc.b]
		if got := ra.Policy == rb.Policy && sameList(ra.pools, rb.pools) && sameList(ra.pw, rb.pw); got != tc.share {
			t.Errorf("%s and %s share policy and pools: %v, want %v", tc.a, tc.b, got, tc.share)
		}
	}
	if rec["g2"].TTL != 60 || rec["g1"].TTL != 30 {
		t.Errorf("TTLs %d, %d: want 30, 60", rec["g1"].TTL, rec["g2"].TTL)
	}
	if rec["g3"].pools[0] != rec["g1"].pools[1] {
		t.Errorf("g3's pools %v, g1's %v: want the reverse order", rec["g3"].pools, rec["g1"].pools)
	}
	if rec["w3"].pw[0] != 1 || rec["w1"].pw[0] != 3 {
		t.Errorf("weights w1 %v, w3 %v", rec["w1"].pw, rec["w3"].pw)
	}
}

package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// sampleBolt writes a bbolt file with branch pages, overflow pages, nested
// and inline buckets, closes it and returns its bytes.
func sampleBolt(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.db")
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		big, _ := tx.CreateBucket([]byte("big"))
		for i := range 2000 {
			big.Put(fmt.Appendf(nil, "key-%05d", i), fmt.Appendf(nil, "value %d with some padding to fill pages", i))
		}
		big.Put([]byte("overflow"), make([]byte, 20000))
		outer, _ := tx.CreateBucket([]byte("outer"))
		inner, _ := outer.CreateBucket([]byte("inner")) // small: stored inline
		inner.Put([]byte("a"), []byte("b"))
		deep, _ := outer.CreateBucket([]byte("deep"))
		for i := range 500 {
			deep.Put(fmt.Appendf(nil, "%05d", i), make([]byte, 100))
		}
		return nil
	})
	if err == nil {
		err = db.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walk reads every key of every bucket through bbolt.
func walk(path string) error {
	return guard(func() error {
		db, err := bolt.Open(path, 0o600, boltOptions())
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			var visit func(b *bolt.Bucket) error
			visit = func(b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if v == nil {
						return visit(b.Bucket(k))
					}
					return nil
				})
			}
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return visit(b) })
		})
	})
}

func TestCheckBoltHealthy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.db")
	if err := os.WriteFile(path, sampleBolt(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkBolt(path); err != nil {
		t.Fatalf("healthy file: %v", err)
	}
	if err := checkBolt(filepath.Join(t.TempDir(), "missing.db")); err != nil {
		t.Fatalf("missing file: %v", err)
	}
}

// Whatever one damaged page holds, either checkBolt reports it or bbolt can
// open and read the whole file without a panic or a fault (a damaged page
// that nothing refers to, or a meta page when the other one is good). A
// panic on a bbolt goroutine would crash this test binary.
func TestCheckBoltDamagedPages(t *testing.T) {
	orig := sampleBolt(t)
	ps := os.Getpagesize()
	dir := t.TempDir()
	// Damage the pages in use: the meta pages and what the root reaches
	// (bbolt grows the file well past them).
	healthy := filepath.Join(dir, "healthy.db")
	if err := os.WriteFile(healthy, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(healthy)
	if err != nil {
		t.Fatal(err)
	}
	c := &boltChecker{f: f, size: int64(len(orig)), seen: map[uint64]bool{}}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	inUse := []int{0, 1}
	for id := range c.seen {
		inUse = append(inUse, int(id))
	}
	slices.Sort(inUse)
	pages := int(c.hwm)
	t.Logf("%d pages in use of %d below the high water mark", len(inUse), pages)
	rng := rand.New(rand.NewPCG(3, 4))
	caught := 0
	for i := range 400 {
		b := append([]byte(nil), orig...)
		p := inUse[rng.IntN(len(inUse))]
		what := "random bytes"
		switch i % 4 {
		case 0, 1:
			for j := p * ps; j < (p+1)*ps; j++ {
				b[j] = byte(rng.Uint32())
			}
		case 2:
			q := rng.IntN(pages)
			copy(b[p*ps:(p+1)*ps], orig[q*ps:(q+1)*ps])
			what = fmt.Sprintf("a copy of page %d", q)
		case 3:
			// A few bytes inside the page: element offsets and sizes.
			for range 4 {
				b[p*ps+rng.IntN(ps)] = byte(rng.Uint32())
			}
			what = "4 random bytes"
		}
		path := filepath.Join(dir, fmt.Sprintf("d%d.db", i))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkBolt(path)
		var de *damagedError
		switch {
		case errors.As(err, &de):
			caught++
		case err != nil:
			t.Fatalf("page %d overwritten with %s: %v", p, what, err)
		default:
			if werr := walk(path); werr != nil {
				t.Fatalf("page %d overwritten with %s: checkBolt passed, bbolt fails: %v", p, what, werr)
			}
		}
		os.Remove(path)
	}
	t.Logf("%d of 400 damaged files refused by checkBolt, the rest read fine by bbolt", caught)
	if caught < 100 {
		t.Fatalf("only %d of 400 damaged files refused", caught)
	}

	short := filepath.Join(dir, "short.db")
	if err := os.WriteFile(short, orig[:pages*ps/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkBolt(short); !errors.As(err, new(*damagedError)) {
		t.Fatalf("truncated file: %v", err)
	}
}

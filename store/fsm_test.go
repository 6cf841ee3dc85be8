package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func newTestFSM(t *testing.T) *fsm {
	t.Helper()
	f, err := openFSM(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close() })
	return f
}

// logs encodes cmds as consecutive command entries starting at index from.
func logs(t *testing.T, from uint64, cmds ...Command) []*raft.Log { return logsF(t, from, cmds...) }

func logsF(t testing.TB, from uint64, cmds ...Command) []*raft.Log {
	t.Helper()
	var out []*raft.Log
	for i, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &raft.Log{Index: from + uint64(i), Term: 1, Type: raft.LogCommand, Data: b})
	}
	return out
}

func sampleCommands() []Command {
	return []Command{
		&ReportBatch{Prober: "us-east", Transitions: []Transition{{Key: "web-eu/a", Up: false, At: t0}, {Key: "web-eu/b", Up: true, At: t0}}},
		&ReportBatch{Prober: "eu-west", Transitions: []Transition{{Key: "web-eu/a", Up: true, At: t0}}, RTTs: []RTTSummary{{Kind: RTTRegion, Name: "us-east", EWMA: 70 * time.Millisecond, Min: 68 * time.Millisecond, At: t0}}},
		&Override{Kind: KindMember, Name: "web-eu/b", Action: ActionForceDown, Until: t0.Add(time.Minute), At: t0},
		&Override{Kind: KindRegion, Name: "ap-south", Action: ActionDrain, At: t0},
		&ZoneUpdate{Name: "example.com.", Serial: 10, Content: []byte("zone v10")},
		&MemberChange{Op: MemberJoin, ID: "n1", Addr: "127.0.0.1:1", Voter: true, At: t0},
	}
}

func fp(t *testing.T, f *fsm) (uint64, [32]byte) {
	t.Helper()
	idx, sum, err := f.fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return idx, sum
}

// Apply is deterministic: the same entries, applied in batches of
// different sizes, give byte-identical databases.
func TestApplyDeterministic(t *testing.T) {
	entries := logs(t, 3, sampleCommands()...)
	a, b := newTestFSM(t), newTestFSM(t)
	a.ApplyBatch(entries)
	for _, l := range entries {
		b.Apply(l)
	}
	ia, sa := fp(t, a)
	ib, sb := fp(t, b)
	if ia != 8 || ib != 8 || sa != sb {
		t.Fatalf("fingerprints differ: %d %x vs %d %x", ia, sa[:8], ib, sb[:8])
	}
	if !sameState(a.current(), b.current()) {
		t.Fatal("in-memory states differ")
	}
	// Entries at or below the applied index (a restart replaying its log)
	// change nothing.
	a.ApplyBatch(entries)
	if _, s := fp(t, a); s != sa {
		t.Fatal("replaying applied entries changed the state")
	}
}

func TestApplySemantics(t *testing.T) {
	f := newTestFSM(t)
	var idx uint64 = 1
	apply := func(c Command) any {
		t.Helper()
		r := f.ApplyBatch(logs(t, idx, c))[0]
		idx++
		return r
	}
	t.Run("older transition ignored", func(t *testing.T) {
		apply(&ReportBatch{Prober: "p", Transitions: []Transition{{Key: "k", Up: false, At: t0.Add(time.Second)}}})
		apply(&ReportBatch{Prober: "p", Transitions: []Transition{{Key: "k", Up: true, At: t0}}})
		if v, _ := f.current().Verdict("k", "p"); v.Up {
			t.Fatalf("verdict = %+v, want the newer down", v)
		}
	})
	t.Run("zone serials", func(t *testing.T) {
		for _, tc := range []struct {
			z    ZoneUpdate
			want string // "" = accepted
		}{
			{ZoneUpdate{Name: "a.", Serial: 4294967290, Content: []byte("v1")}, ""},
			{ZoneUpdate{Name: "a.", Serial: 4294967290, Content: []byte("v1")}, ""}, // same again: no-op
			{ZoneUpdate{Name: "a.", Serial: 4294967290, Content: []byte("v2")}, "rejected: zone a.: serial 4294967290 is already committed with different content"},
			{ZoneUpdate{Name: "a.", Serial: 5, Content: []byte("v3")}, ""}, // RFC 1982: 5 follows 4294967290
			{ZoneUpdate{Name: "a.", Serial: 4294967290, Content: []byte("v4")}, "rejected: zone a.: serial 4294967290 is older than the committed 5"},
		} {
			r := apply(&tc.z)
			err, _ := r.(error)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrRejected)) {
				t.Fatalf("apply %+v = %v, want %q", tc.z, r, tc.want)
			}
		}
		if z, _ := f.current().Zone("a."); z.Serial != 5 || string(z.Content) != "v3" {
			t.Fatalf("zone = %+v", z)
		}
		apply(&ZoneUpdate{Name: "a."})
		if _, ok := f.current().Zone("a."); ok {
			t.Fatal("zone with nil content not removed")
		}
	})
	t.Run("overrides", func(t *testing.T) {
		apply(&Override{Kind: KindPool, Name: "x", Action: ActionForceUp, Until: t0.Add(time.Minute), At: t0})
		apply(&Override{Kind: KindPool, Name: "y", Action: ActionDrain, At: t0})
		if o, ok := f.current().Override(KindPool, "x"); !ok || !o.Active(t0) || o.Active(t0.Add(time.Minute)) {
			t.Fatalf("override x = %+v %v", o, ok)
		}
		// A later command purges x, which expired before it.
		apply(&Override{Kind: KindRegion, Name: "r", Action: ActionDrain, At: t0.Add(2 * time.Minute)})
		if _, ok := f.current().Override(KindPool, "x"); ok {
			t.Fatal("expired override not purged")
		}
		apply(&Override{Kind: KindPool, Name: "y", Action: ActionUndrain, At: t0.Add(3 * time.Minute)})
		got := f.current().Overrides()
		if len(got) != 1 || got[0].Name != "r" {
			t.Fatalf("overrides = %+v, want only region r", got)
		}
	})
	t.Run("configuration entries skipped", func(t *testing.T) {
		before := f.current().Index()
		f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogConfiguration, Data: []byte{0xff}}})
		idx++
		if f.current().Index() != before {
			t.Fatalf("index moved to %d on a configuration entry", f.current().Index())
		}
	})
}

// Apply panics rather than skipping an entry it cannot decode: a node that
// skipped it would silently diverge.
func TestApplyPanicsOnUnknownVersion(t *testing.T) {
	f := newTestFSM(t)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic")
		} else {
			t.Logf("panic: %v", r)
		}
	}()
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(TypeOverride), 9, '{', '}'}})
}

type bufSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Cancel() error { s.cancelled = true; return nil }
func (s *bufSink) Close() error  { return nil }

// RF-09: snapshot then restore gives an identical state (bbolt contents
// compared), and a corrupt snapshot is refused without touching the state.
func TestSnapshotRestoreIdentical(t *testing.T) {
	a := newTestFSM(t)
	a.ApplyBatch(logs(t, 1, sampleCommands()...))
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot began are not in it.
	a.ApplyBatch(logs(t, 7, &ZoneUpdate{Name: "late.", Serial: 1, Content: []byte("x")}))
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	image := sink.Bytes()

	b := newTestFSM(t)
	b.ApplyBatch(logs(t, 1, &ZoneUpdate{Name: "stale.", Serial: 1, Content: []byte("gone after restore")}))
	if err := b.Restore(io.NopCloser(bytes.NewReader(image))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	ref := newTestFSM(t)
	ref.ApplyBatch(logs(t, 1, sampleCommands()...))
	ir, sr := fp(t, ref)
	ib, sb := fp(t, b)
	if ir != ib || sr != sb {
		t.Fatalf("restored %d %x, want %d %x", ib, sb[:8], ir, sr[:8])
	}
	if !sameState(b.current(), ref.current()) {
		t.Fatal("restored in-memory state differs")
	}
	t.Logf("snapshot %d bytes, index %d, fingerprint %x", len(image), ib, sb[:8])

	for _, tc := range []struct {
		name string
		img  []byte
	}{
		{"flipped byte", func() []byte { c := bytes.Clone(image); c[len(c)/2] ^= 1; return c }()},
		{"truncated", image[:len(image)-3]},
		{"not a snapshot", []byte("hello world, this is not it")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Restore(io.NopCloser(bytes.NewReader(tc.img)))
			if err == nil {
				t.Fatal("Restore accepted a damaged snapshot")
			}
			if _, s := fp(t, b); s != sb {
				t.Fatalf("failed Restore (%v) changed the state", err)
			}
		})
	}
}

// The state survives closing and reopening state.db with its index.
func TestStateReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f, err := openFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	f.ApplyBatch(logs(t, 5, sampleCommands()...))
	want := f.current()
	_, sum := fp(t, f)
	f.close()
	g, err := openFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if _, s := fp(t, g); s != sum || !sameState(g.current(), want) || g.current().Index() != 10 {
		t.Fatalf("reopened state differs (index %d)", g.current().Index())
	}
}

func sameState(a, b *State) bool {
	return a.Index() == b.Index() && a.Len() == b.Len() &&
		reflect.DeepEqual(a.Transitions(), b.Transitions()) &&
		reflect.DeepEqual(a.RTTs(), b.RTTs()) &&
		reflect.DeepEqual(a.Overrides(), b.Overrides()) &&
		reflect.DeepEqual(a.Zones(), b.Zones()) &&
		reflect.DeepEqual(a.Members(), b.Members())
}

// The sharded copy-on-write never changes a published State.
func TestPublishedStateIsImmutable(t *testing.T) {
	f := newTestFSM(t)
	f.ApplyBatch(logs(t, 1, sampleCommands()...))
	before := f.current()
	want := before.Transitions()
	for i := range 200 {
		f.ApplyBatch(logs(t, uint64(7+i), &ReportBatch{Prober: "us-east", Transitions: []Transition{{Key: fmt.Sprintf("k%d", i), Up: true, At: t0}, {Key: "web-eu/a", Up: true, At: t0.Add(time.Hour)}}}))
	}
	if got := before.Transitions(); !reflect.DeepEqual(got, want) {
		t.Fatalf("published state changed: %d verdicts, want %d", len(got), len(want))
	}
	if n := len(f.current().Transitions()); n != 203 {
		t.Fatalf("%d verdicts, want 203", n)
	}
	if v, _ := f.current().Verdict("web-eu/a", "us-east"); !v.Up {
		t.Fatal("update lost")
	}
}

// A snapshot with a good checksum whose records do not decode is refused
// as a whole, and the state is untouched.
func TestRestoreRefusesUndecodableRecords(t *testing.T) {
	bad := newTestFSM(t)
	err := bad.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVerdicts).Put([]byte("k"), []byte("not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if err := bad.db.View(func(tx *bolt.Tx) error { return writeSnapshot(tx, &img) }); err != nil {
		t.Fatal(err)
	}
	f := newTestFSM(t)
	f.ApplyBatch(logs(t, 1, sampleCommands()...))
	_, before := fp(t, f)
	err = f.Restore(io.NopCloser(&img))
	if err == nil {
		t.Fatal("restore accepted an undecodable record")
	}
	t.Logf("refused: %v", err)
	if _, after := fp(t, f); after != before || f.current().Index() != 6 {
		t.Fatal("failed restore changed the state")
	}
}

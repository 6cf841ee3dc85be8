package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// loggedCluster starts n nodes whose logs (warnings and up) go to the
// returned buffer.
func loggedCluster(t *testing.T, n int, opts ...func(*store.Config)) (*storetest.Cluster, *syncBuffer) {
	logs := &syncBuffer{}
	c := storetest.NewCluster(t, n, storetest.WithConfig(func(cfg *store.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		for _, o := range opts {
			o(cfg)
		}
	}))
	return c, logs
}

// writeReports submits n reports with keys prefix0..prefixN-1 and returns
// the index of the last.
func writeReports(t *testing.T, s *store.Store, prefix string, n int) uint64 {
	t.Helper()
	var idx uint64
	for i := range n {
		var err error
		idx, err = s.SubmitIndex(ctxT(t), report("us-east", fmt.Sprintf("%s%d/web-with-a-longer-name-to-fill-pages", prefix, i), i%2 == 0, t0.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatalf("submit %s%d: %v", prefix, i, err)
		}
	}
	return idx
}

// damage overwrites pages of the bbolt file at path with random bytes:
// "data pages" every page after the two meta pages, "meta pages" both meta
// pages.
func damage(t *testing.T, path, pages string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	from, to := int64(2), fi.Size()/ps
	if pages == "meta pages" {
		from, to = 0, 2
	}
	if to <= from {
		t.Fatalf("%s: %d pages, nothing to damage", path, fi.Size()/ps)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, ps)
	for p := from; p < to; p++ {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, p*ps); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: overwrote pages %d to %d of %d", filepath.Base(path), from, to-1, fi.Size()/ps)
}

// sameFingerprint fails t unless node i's state equals the leader's.
func sameFingerprint(t *testing.T, c *storetest.Cluster, leader, i int) {
	t.Helper()
	li, lsum, err := c.Nodes[leader].Store.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	fi, fsum, err := c.Nodes[i].Store.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if li != fi || lsum != fsum {
		t.Fatalf("%s state (index %d, %x) differs from the leader's (index %d, %x)", c.Nodes[i].ID, fi, fsum[:6], li, lsum[:6])
	}
}

// Issue 13 §4: a damaged state.db is derived data. The node moves it
// aside, says so, rebuilds it from its snapshot and log, and ends up with
// exactly the leader's state.
func TestDamagedStateDBRebuilt(t *testing.T) {
	for _, pages := range []string{"data pages", "meta pages"} {
		t.Run(pages, func(t *testing.T) {
			c, logs := loggedCluster(t, 3)
			leader := c.WaitLeader()
			f := follower(c, leader)
			c.WaitIndex(writeReports(t, c.Nodes[leader].Store, "a", 150))
			if err := c.Nodes[f].Store.Snapshot(); err != nil {
				t.Fatal(err)
			}
			idx := writeReports(t, c.Nodes[leader].Store, "b", 50)
			c.WaitIndex(idx)
			c.Stop(f)
			damage(t, filepath.Join(c.Nodes[f].Dir, "state.db"), pages)

			if err := c.TryRestart(f); err != nil {
				t.Fatalf("restart with a damaged state.db: %v", err)
			}
			if err := c.Nodes[f].Store.WaitRestored(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			c.WaitIndex(idx)
			sameFingerprint(t, c, leader, f)
			if !strings.Contains(logs.String(), "state.db is damaged: moved aside, rebuilding it from the Raft snapshot and log") {
				t.Fatalf("no log line about the rebuild:\n%s", logs)
			}
			aside, _ := filepath.Glob(filepath.Join(c.Nodes[f].Dir, "state.db.damaged-*"))
			if len(aside) != 1 {
				t.Fatalf("damaged file kept as %v, want one state.db.damaged-*", aside)
			}
		})
	}
}

// Issue 13 §4: a damaged raft.db stops the node with one line that names
// the file and the remedy, never a bbolt panic. Following the remedy (move
// it aside, start again) brings the node back with the cluster's state.
func TestDamagedRaftDBRefused(t *testing.T) {
	for _, pages := range []string{"data pages", "meta pages"} {
		t.Run(pages, func(t *testing.T) {
			c := storetest.NewCluster(t, 3)
			leader := c.WaitLeader()
			f := follower(c, leader)
			c.WaitIndex(writeReports(t, c.Nodes[leader].Store, "a", 150))
			c.Stop(f)
			path := filepath.Join(c.Nodes[f].Dir, "raft.db")
			damage(t, path, pages)

			err := c.TryRestart(f)
			if err == nil {
				t.Fatal("restart with a damaged raft.db succeeded")
			}
			msg := err.Error()
			t.Logf("refused: %s", msg)
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, path+" is damaged (") ||
				!strings.HasSuffix(msg, "): move it aside; the node rejoins and catches up from its peers") {
				t.Fatalf("error = %q, want one line naming %s and the remedy", msg, path)
			}

			if err := os.Rename(path, path+".damaged"); err != nil {
				t.Fatal(err)
			}
			c.Restart(f)
			idx := writeReports(t, c.Nodes[c.WaitLeader()].Store, "b", 20)
			c.WaitIndex(idx)
			sameFingerprint(t, c, c.WaitLeader(), f)
		})
	}
}

// Issue 13 §4: a node whose state.db was deleted does not serve an empty
// state while its own snapshot and log can restore it. New restores the
// snapshot before it returns; WaitRestored waits for the log after it,
// which needs a leader to say what is committed: cut off, it waits (and
// says how far it got); reconnected, it returns with the whole state.
func TestDeletedStateRestoredBeforeServing(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	c.WaitIndex(writeReports(t, c.Nodes[leader].Store, "a", 100))
	if err := c.Nodes[f].Store.Snapshot(); err != nil {
		t.Fatal(err)
	}
	snapState := c.Nodes[f].Store.State().Index()
	idx := writeReports(t, c.Nodes[leader].Store, "b", 50)
	c.WaitIndex(idx)
	want := c.Nodes[f].Store.State()

	c.Stop(f)
	if err := os.Remove(filepath.Join(c.Nodes[f].Dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	c.Partition(f)
	c.Restart(f)
	s := c.Nodes[f].Store
	if got := s.State().Index(); got != snapState {
		t.Fatalf("right after start, state index = %d, want the snapshot's %d", got, snapState)
	}
	if !s.Stats().Restoring {
		t.Fatal("Stats().Restoring = false while the log is not applied")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := s.WaitRestored(ctx)
	cancel()
	if err == nil {
		t.Fatal("WaitRestored returned before the log was applied")
	}
	t.Logf("cut off: %v", err)

	c.Heal(f)
	if err := s.WaitRestored(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := s.State(); got.Index() < idx || got.Len() != want.Len() {
		t.Fatalf("after WaitRestored: index %d with %d records, want %d with %d", got.Index(), got.Len(), idx, want.Len())
	}
	if s.Stats().Restoring {
		t.Fatal("Stats().Restoring = true after WaitRestored")
	}
	sameFingerprint(t, c, c.WaitLeader(), f)

	// A restart with an intact state.db has nothing to restore.
	c.Restart(f)
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := c.Nodes[f].Store.WaitRestored(ctx); err != nil {
		t.Fatalf("WaitRestored after a clean restart: %v", err)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory for the test
// and unmounts it at the end. It needs root; without it the test skips.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (mount -t tmpfs -o size=...) for a full disk")
	}
	dir := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full, and returns its
// path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n := 0
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
		n++
	}
	t.Logf("filled %s with %d KiB", dir, 4*n)
	return path
}

// Issue 13 §4: a follower whose data disk is full says so (Stats.CanApply,
// gslb_store_can_apply 0, gslb_cluster_quorum 0, the leader's commit index
// ahead of what it applied) instead of claiming a quorum while it serves an
// old state; once the disk has room again it catches up, and every
// acknowledged write is there. The follower is a non-voter so that its full
// disk cannot stall an election of the test cluster.
func TestFullDiskFollowerReportsAndCatchesUp(t *testing.T) {
	small := mountTmpfs(t, 8<<20)
	c := storetest.NewCluster(t, 3, storetest.NonVoters(1), storetest.WithConfig(func(cfg *store.Config) {
		if cfg.NodeID == "n3" {
			cfg.DataDir = filepath.Join(small, "n3")
		}
	}))
	leader := c.WaitLeader()
	const f = 2
	s := c.Nodes[f].Store
	c.WaitIndex(writeReports(t, c.Nodes[leader].Store, "a", 20))
	if st := s.Stats(); !st.CanApply || !st.Quorum || metricValue(t, s, "gslb_cluster_quorum", nil) != 1 {
		t.Fatalf("before the disk fills: %+v", st)
	}

	filler := fill(t, small)
	var idx uint64
	for i := 0; ; i++ {
		idx = writeReports(t, c.Nodes[leader].Store, fmt.Sprintf("b%d-", i), 20)
		if !s.Stats().CanApply {
			break
		}
		if i == 100 {
			t.Fatalf("2000 writes later the follower still writes to a full disk: %+v", s.Stats())
		}
	}
	storetest.WaitFor(t, "the full follower to report it cannot apply and is behind", func() bool {
		st := s.Stats()
		return !st.CanApply && !st.Quorum && st.Behind > 0 && st.ApplyErrors > 0 &&
			metricValue(t, s, "gslb_cluster_quorum", nil) == 0 && metricValue(t, s, "gslb_store_can_apply", nil) == 0 &&
			metricValue(t, s, "gslb_store_behind_entries", nil) > 0
	})
	st := s.Stats()
	t.Logf("full disk: applied %d, leader commit %d, behind %d, %d write errors, %q", st.AppliedIndex, st.LeaderCommitIndex, st.Behind, st.ApplyErrors, st.ApplyError)
	if !strings.Contains(st.ApplyError, "no space left on device") || st.CannotApplySince.IsZero() {
		t.Fatalf("ApplyError = %q since %v, want the disk's error and a time", st.ApplyError, st.CannotApplySince)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	idx = max(idx, writeReports(t, c.Nodes[leader].Store, "c", 5))
	c.WaitIndex(idx)
	storetest.WaitFor(t, "the follower to apply again", func() bool {
		st := s.Stats()
		return st.CanApply && st.Quorum && metricValue(t, s, "gslb_cluster_quorum", nil) == 1
	})
	sameFingerprint(t, c, leader, f)
	if got, want := s.State().Len(), c.Nodes[leader].Store.State().Len(); got != want {
		t.Fatalf("follower holds %d records, leader %d", got, want)
	}
}

// A single node, with no peer to copy from, rebuilds a damaged state.db
// from its own log alone (no snapshot here) and serves nothing before.
func TestDamagedStateDBRebuiltAlone(t *testing.T) {
	dir := t.TempDir()
	s, err := singleNode(t, dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, s)
	idx := writeReports(t, s, "a", 100)
	want := s.State()
	s.Close()
	damage(t, filepath.Join(dir, "state.db"), "data pages")

	s, err = singleNode(t, dir, "", true)
	if err != nil {
		t.Fatalf("restart with a damaged state.db: %v", err)
	}
	defer s.Close()
	if err := s.WaitRestored(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The restarted node listens on a new port, so its leadership adds a
	// member record: compare what was written before.
	got := s.State()
	if got.Index() < idx || !reflect.DeepEqual(got.Transitions(), want.Transitions()) || !reflect.DeepEqual(got.RTTs(), want.RTTs()) {
		t.Fatalf("rebuilt state at index %d with %d transitions, want index %d with %d", got.Index(), len(got.Transitions()), idx, len(want.Transitions()))
	}
}

// Issue 13 §4: when only state.db cannot be written, the state machine
// retries the batch instead of panicking (Raft would take a returned batch
// as applied); the node reports it (CanApply false, the state.db error,
// behind the leader) and applies everything once the disk has room. Here
// the follower's state.db is a symlink into a small tmpfs, so its raft.db
// keeps working.
func TestStateDBWriteFailureRetried(t *testing.T) {
	small := mountTmpfs(t, 8<<20)
	dir := filepath.Join(t.TempDir(), "n3")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(small, "state.db"), filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	c := storetest.NewCluster(t, 3, storetest.NonVoters(1), storetest.WithConfig(func(cfg *store.Config) {
		if cfg.NodeID == "n3" {
			cfg.DataDir = dir
		}
	}))
	leader := c.WaitLeader()
	const f = 2
	s := c.Nodes[f].Store
	c.WaitIndex(writeReports(t, c.Nodes[leader].Store, "a", 20))

	filler := fill(t, small)
	for i := 0; s.Stats().CanApply; i++ {
		writeReports(t, c.Nodes[leader].Store, fmt.Sprintf("b%d-", i), 20)
		if i == 100 {
			t.Fatalf("2000 writes later the follower still writes its state to a full disk: %+v", s.Stats())
		}
	}
	storetest.WaitFor(t, "the follower to report that it cannot write state.db and is behind", func() bool {
		st := s.Stats()
		return !st.CanApply && !st.Quorum && st.Behind > 0 && strings.HasPrefix(st.ApplyError, "state.db: ") &&
			metricValue(t, s, "gslb_store_write_errors_total", map[string]string{"db": "state"}) > 0
	})
	st := s.Stats()
	t.Logf("state.db full: applied %d, leader commit %d, behind %d, %q", st.AppliedIndex, st.LeaderCommitIndex, st.Behind, st.ApplyError)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	idx := writeReports(t, c.Nodes[leader].Store, "c", 5)
	c.WaitIndex(idx)
	storetest.WaitFor(t, "the follower to apply again", func() bool { st := s.Stats(); return st.CanApply && st.Quorum })
	sameFingerprint(t, c, leader, f)
}

// A leader whose state.db cannot be written hands leadership over, so the
// cluster keeps committing; it catches up once its disk has room. Every
// node's state.db is a symlink into a small tmpfs of its own, since the
// test cannot choose the leader in advance.
func TestLeaderWithFullStateDBHandsOver(t *testing.T) {
	// Mounted before the cluster starts, so they are unmounted after it
	// stops (cleanups run last first).
	disks := map[string]string{}
	for _, id := range []string{"n1", "n2", "n3"} {
		disks[id] = mountTmpfs(t, 8<<20)
	}
	c := storetest.NewCluster(t, 3, storetest.WithConfig(func(cfg *store.Config) {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(disks[cfg.NodeID], "state.db"), filepath.Join(cfg.DataDir, "state.db")); err != nil {
			t.Fatal(err)
		}
	}))
	old := c.WaitLeader()
	oldID := c.Nodes[old].ID
	c.WaitIndex(writeReports(t, c.Nodes[old].Store, "a", 20))

	filler := fill(t, disks[oldID])
	via := c.Nodes[follower(c, old)].Store
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		via.Submit(ctx, report("us-east", fmt.Sprintf("b%d", i), true, t0)) // may fail while the leader is stuck
		cancel()
		if id, _ := via.Leader(); id != "" && id != oldID {
			break
		}
		if i == 2000 {
			t.Fatalf("the leader with a full state.db still leads: %+v", c.Nodes[old].Store.Stats())
		}
	}
	leader := c.WaitLeader()
	t.Logf("leadership moved from %s to %s", oldID, c.Nodes[leader].ID)
	idx := writeReports(t, via, "c", 10)
	if st := c.Nodes[old].Store.Stats(); st.CanApply || st.Quorum {
		t.Fatalf("old leader with a full state.db: CanApply %v, Quorum %v", st.CanApply, st.Quorum)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.WaitIndex(idx)
	storetest.WaitFor(t, "the old leader to apply again", func() bool { return c.Nodes[old].Store.Stats().CanApply })
	sameFingerprint(t, c, c.WaitLeader(), old)
}

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// boltOptions are the options of both databases (see DESIGN.md).
func boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:         time.Second,
		InitialMmapSize: 128 << 20,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
	}
}

// guard runs f and turns a panic, or a memory fault on the mapped file, into
// an error: what bbolt does with a page that checkBolt could not foresee.
func guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return f()
}

// openState opens DATA/state.db. The state machine is derived data: when
// the file is damaged it is moved aside (state.db.damaged-UNIXTIME) and a
// new empty one is opened, which Raft fills again from the snapshot and
// the log (New decides that; rebuilt tells it to). Errors that are not
// damage (a lock held by another process, permissions, a newer format)
// are returned as they are.
func openState(dir string, log *slog.Logger) (f *fsm, rebuilt bool, err error) {
	path := filepath.Join(dir, "state.db")
	_, statErr := os.Stat(path)
	rebuilt = errors.Is(statErr, os.ErrNotExist)
	damage := checkBolt(path)
	if damage == nil {
		damage = guard(func() error {
			f, err = openFSM(path)
			return err
		})
		if damage == nil {
			return f, rebuilt, nil
		}
		var de *damagedError
		if !errors.As(damage, &de) && !isBoltDamage(damage) {
			return nil, false, damage
		}
		// A panic inside bbolt leaves its file handle open; the damaged file
		// is renamed, so the new one is a different file.
	}
	aside := fmt.Sprintf("%s.damaged-%d", path, time.Now().Unix())
	if err := os.Rename(path, aside); err != nil {
		return nil, false, fmt.Errorf("%v; moving it aside: %w", damage, err)
	}
	log.Warn("state.db is damaged: moved aside, rebuilding it from the Raft snapshot and log", "err", damage, "moved_to", aside)
	if f, err = openFSM(path); err != nil {
		return nil, false, err
	}
	return f, true, nil
}

// isBoltDamage reports whether err from opening or loading a database
// means its content is damaged.
func isBoltDamage(err error) bool {
	var ld *loadError
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping) ||
		errors.As(err, &ld) || errors.Is(err, errPanicked)
}

var errPanicked = errors.New("bbolt panicked")

// openLogs opens DATA/raft.db, the Raft log and stable store. Unlike
// state.db it cannot be rebuilt here (it holds the log and the vote), so a
// damaged file stops the node with one line that names the file and the
// remedy.
func openLogs(dir string) (*raftboltdb.BoltStore, error) {
	path := filepath.Join(dir, "raft.db")
	remedy := func(err error) error {
		return fmt.Errorf("%s is damaged (%v): move it aside; the node rejoins and catches up from its peers", path, flatten(err))
	}
	var de *damagedError
	if err := checkBolt(path); errors.As(err, &de) {
		return nil, remedy(de.err)
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var logs *raftboltdb.BoltStore
	err := guard(func() error {
		var err error
		logs, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: boltOptions()})
		return err
	})
	switch {
	case isBoltDamage(err):
		return nil, remedy(err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return logs, nil
}

// flatten keeps a message on one line.
func flatten(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// diskHealth records write failures of the two databases. A node whose
// writes fail cannot apply what the cluster commits: it says so in Stats
// and metrics, and reports no quorum, until a write succeeds again.
type diskHealth struct {
	stateErrs, raftErrs atomic.Uint64

	mu       sync.Mutex
	failing  map[string]error // by database: "state", "raft"
	since    time.Time
	lastErr  error
	lastLogT time.Time
	log      *slog.Logger
	// onFailing, if set, is called (without the lock) when db starts
	// failing.
	onFailing func(db string)
}

func newDiskHealth(log *slog.Logger) *diskHealth {
	return &diskHealth{failing: map[string]error{}, log: log}
}

// failed records a failed write to db ("state" or "raft").
func (h *diskHealth) failed(db string, err error) {
	if db == "state" {
		h.stateErrs.Add(1)
	} else {
		h.raftErrs.Add(1)
	}
	h.mu.Lock()
	if len(h.failing) == 0 {
		h.since = time.Now()
	}
	_, was := h.failing[db]
	h.failing[db] = err
	h.lastErr = fmt.Errorf("%s.db: %w", db, err)
	if time.Since(h.lastLogT) >= 10*time.Second {
		h.lastLogT = time.Now()
		h.log.Error("cannot write; this node applies nothing until the write succeeds", "db", db+".db", "err", err)
	}
	h.mu.Unlock()
	if !was && h.onFailing != nil {
		h.onFailing(db)
	}
}

// ok records a successful write to db.
func (h *diskHealth) ok(db string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, was := h.failing[db]; !was {
		return
	}
	delete(h.failing, db)
	if len(h.failing) == 0 {
		h.log.Info("writes succeed again", "db", db+".db", "failed_for", time.Since(h.since).Round(time.Millisecond))
		h.since = time.Time{}
	}
}

// status returns whether every database accepts writes, and if not, since
// when and the last error.
func (h *diskHealth) status() (canApply bool, since time.Time, lastErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failing) == 0 {
		return true, time.Time{}, nil
	}
	return false, h.since, h.lastErr
}

// watchedLogs is the Raft log store with its write errors recorded in a
// diskHealth. (raft does not panic on a log write error: a follower
// refuses the entries and the leader retries; a leader steps down.)
type watchedLogs struct {
	*raftboltdb.BoltStore
	h *diskHealth
}

func (w watchedLogs) note(err error) error {
	if err != nil {
		w.h.failed("raft", err)
	} else {
		w.h.ok("raft")
	}
	return err
}

func (w watchedLogs) StoreLog(l *raft.Log) error { return w.note(w.BoltStore.StoreLog(l)) }

func (w watchedLogs) StoreLogs(ls []*raft.Log) error { return w.note(w.BoltStore.StoreLogs(ls)) }

func (w watchedLogs) DeleteRange(min, max uint64) error {
	return w.note(w.BoltStore.DeleteRange(min, max))
}

// startRestore decides, before Raft starts, whether the state machine must
// catch up with the local snapshot and log before the node serves it: when
// state.db was missing, rebuilt, or behind the newest snapshot. Raft
// restores the snapshot inside raft.NewRaft; the entries after it are
// applied once this node learns they are committed (from the leader, or by
// being elected). The target is the last entry of the local log that the
// state machine sees (a command or a configuration change; Raft passes no
// no-ops or barriers), or 0 when the snapshot holds everything.
func (s *Store) startRestore(needed bool, snapIndex uint64) {
	if needed {
		last, _ := s.logs.LastIndex()
		first, _ := s.logs.FirstIndex()
		for i := last; i > snapIndex && i >= first && i > 0; i-- {
			var l raft.Log
			if err := s.logs.GetLog(i, &l); err != nil {
				break
			}
			if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
				s.restoreTarget = i
				break
			}
		}
	}
	if s.restoreTarget <= s.fsm.done.Load() {
		s.restoreTarget = 0
		close(s.restored)
		return
	}
	s.log.Info("state.db is behind the local Raft log: restoring before serving", "snapshot_index", snapIndex, "log_index", s.restoreTarget, "state_index", s.fsm.current().index)
	s.fsm.onDone = func(idx uint64) {
		if idx >= s.restoreTarget {
			s.restoreOnce.Do(func() {
				close(s.restored)
				s.log.Info("state restored from the local snapshot and log", "index", idx)
			})
		}
	}
}

// WaitRestored returns once the state machine holds everything the local
// snapshot and log held when New started, or with an error when ctx ends
// or the store closes first. A node calls it before it first serves State:
// it returns at once unless state.db was lost, damaged or behind the newest
// snapshot, and then takes as long as it takes this node to hear from a
// leader (or be elected) and apply its own log. It can wait until ctx
// ends when the node reaches no leader (then State is the snapshot and
// whatever of the log was applied), or when the end of the local log was
// never committed and the cluster writes nothing new.
func (s *Store) WaitRestored(ctx context.Context) error {
	select {
	case <-s.restored:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("restore state: applied up to %d of %d from the local log: %w", s.fsm.done.Load(), s.restoreTarget, ctx.Err())
	case <-s.done:
		return ErrClosed
	}
}

// isRestoring reports whether WaitRestored would wait.
func (s *Store) isRestoring() bool {
	select {
	case <-s.restored:
		return false
	default:
		return true
	}
}

// watchedStable is the Raft stable store (current term, vote). Raft panics
// when it cannot record a new term, so a failing write is retried here,
// with a backoff up to 5 s, until it succeeds or the store closes: the node
// stops taking part in the cluster while its disk refuses writes (it could
// not safely vote or follow a new term without recording it) and goes on
// when the disk does, instead of crashing into a restart loop.
type watchedStable struct {
	*raftboltdb.BoltStore
	h    *diskHealth
	done <-chan struct{}
}

func (w watchedStable) retry(write func() error) error {
	backoff := 50 * time.Millisecond
	for {
		err := write()
		if err == nil {
			w.h.ok("raft")
			return nil
		}
		w.h.failed("raft", err)
		select {
		case <-w.done:
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w watchedStable) Set(k, v []byte) error {
	return w.retry(func() error { return w.BoltStore.Set(k, v) })
}

func (w watchedStable) SetUint64(k []byte, v uint64) error {
	return w.retry(func() error { return w.BoltStore.SetUint64(k, v) })
}

// handOver transfers leadership away from a leader whose state.db stopped
// accepting writes: Raft does not know, and every write would wait for
// this node's state machine. (A leader whose raft.db fails steps down by
// itself.) The transfer needs a follower that is up to date; when none
// is, the node stays leader and Submit times out until its disk has room.
func (s *Store) handOver(db string) {
	select {
	case <-s.raftUp: // s.raft is set
	default:
		return
	}
	if db != "state" || s.raft.State() != raft.Leader {
		return
	}
	s.log.Warn("state.db cannot be written: handing leadership over")
	go func() {
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("leadership transfer", "err", err)
		}
	}()
}

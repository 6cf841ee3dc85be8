package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket names in the state database. The applied index lives in meta and is
// written in the same transaction as the changes it covers, so a crash never
// leaves the state ahead of or behind its index.
var (
	bucketMeta      = []byte("meta")
	bucketVerdicts  = []byte("verdicts")
	bucketRTTs      = []byte("rtts")
	bucketOverrides = []byte("overrides")
	bucketZones     = []byte("zones")
	bucketMembers   = []byte("members")

	bucketBeats = []byte("heartbeats")
	allBuckets  = [][]byte{bucketMeta, bucketVerdicts, bucketRTTs, bucketOverrides, bucketZones, bucketMembers, bucketBeats, bucketDNSSEC, bucketLoads}

	keyApplied = []byte("applied")
	keyFormat  = []byte("format")
)

// stateFormat is the layout version of the state database and of snapshots.
const stateFormat = 1

// ErrRejected is matched (errors.Is) by every domain rejection: a command
// that is well formed but that the state refuses, such as an older zone
// serial. The command was committed to the log and changed nothing.
var ErrRejected = errors.New("rejected")

// RejectedError is a domain rejection returned by Submit.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string        { return "rejected: " + e.Reason }
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

func rejectf(format string, args ...any) error {
	return &RejectedError{Reason: fmt.Sprintf(format, args...)}
}

// fsm is the Raft state machine: bbolt buckets plus the published State.
// raft calls Apply, ApplyBatch, Snapshot and Restore from one goroutine;
// State may be read concurrently from anywhere.
type fsm struct {
	db       *bolt.DB
	state    atomic.Pointer[State]
	onApply  func(*State) // called after each batch is published
	applyDur func(time.Duration)
	health   *diskHealth   // records write failures; nil in unit tests
	stop     chan struct{} // closed by Store.Close: a failing write stops retrying
	stopOnce sync.Once

	// done is the index of the last entry of the last batch written
	// (commands and configuration entries; Raft does not pass no-ops);
	// busy is set while a batch is being written.
	done   atomic.Uint64
	busy   atomic.Bool
	onDone func(index uint64) // called after done moves
}

// stopRetrying makes a batch whose write fails return instead of retrying
// (the store is closing).
func (f *fsm) stopRetrying() { f.stopOnce.Do(func() { close(f.stop) }) }

func (f *fsm) setDone(index uint64) {
	f.done.Store(index)
	if f.onDone != nil {
		f.onDone(index)
	}
}

func openFSM(path string) (*fsm, error) {
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("open state db %s: %w", path, err)
	}
	f := &fsm{db: db, stop: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyFormat); v != nil {
			if len(v) != 1 || v[0] != stateFormat {
				return fmt.Errorf("state format %v, this binary reads %d", v, stateFormat)
			}
			return nil
		}
		return meta.Put(keyFormat, []byte{stateFormat})
	})
	if err == nil {
		var s *State
		s, err = loadState(db)
		f.state.Store(s)
		if s != nil {
			f.done.Store(s.index)
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state db %s: %w", path, err)
	}
	return f, nil
}

func (f *fsm) close() error { return f.db.Close() }

func (f *fsm) current() *State { return f.state.Load() }

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: every entry of the batch is written
// in one bbolt transaction (one fsync), with the applied index. Entries at or
// below the stored applied index were applied before a restart and are
// skipped. It panics if an entry cannot be decoded: carrying on would let
// this node's state silently diverge. When the database cannot be written
// (a full or failing disk) it records the error and tries again, with a
// backoff up to 5 s, until the write succeeds or the store closes: Raft
// takes a returned batch as applied, so returning without writing would
// lose it. The node meanwhile serves its last state and reports that it
// cannot apply (Stats.CanApply).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	f.busy.Store(true)
	defer f.busy.Store(false)
	start := time.Now()
	base := f.current()
	backoff := 50 * time.Millisecond
	for {
		resp, next, err := f.write(base, logs)
		if err == nil {
			if f.health != nil {
				f.health.ok("state")
			}
			// Publish the state before saying the entries are done:
			// WaitRestored returns on done, and its caller reads State.
			if next != nil {
				f.state.Store(next)
			}
			if len(logs) > 0 {
				f.setDone(logs[len(logs)-1].Index)
			}
			if next != nil {
				if f.applyDur != nil {
					f.applyDur(time.Since(start))
				}
				if f.onApply != nil {
					f.onApply(next)
				}
			}
			return resp
		}
		if f.health == nil {
			panic(fmt.Sprintf("store: write state db: %v", err))
		}
		f.health.failed("state", err)
		select {
		case <-f.stop:
			// Not written: the stored applied index is still before these
			// entries, so they are applied again after a restart.
			for i := range resp {
				resp[i] = ErrClosed
			}
			return resp
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// write applies logs on top of base in one transaction. It returns the new
// State, or nil when no entry was a command past base.
func (f *fsm) write(base *State, logs []*raft.Log) ([]any, *State, error) {
	resp := make([]any, len(logs))
	d := newDraft(base)
	changed := false
	err := f.db.Update(func(tx *bolt.Tx) error {
		w := &writer{tx: tx, d: d}
		for i, l := range logs {
			if l.Type != raft.LogCommand || l.Index <= base.index {
				continue
			}
			cmd, err := Decode(l.Data)
			if err != nil {
				panic(fmt.Sprintf("store: log entry %d: %v (is this binary older than the cluster?)", l.Index, err))
			}
			resp[i] = w.apply(cmd)
			d.next.index = l.Index
			changed = true
		}
		if !changed {
			return nil
		}
		var idx [8]byte
		binary.BigEndian.PutUint64(idx[:], d.next.index)
		return tx.Bucket(bucketMeta).Put(keyApplied, idx[:])
	})
	if err != nil || !changed {
		return resp, nil, err
	}
	return resp, d.done(), nil
}

// writer applies commands to a bbolt transaction and to the next State.
type writer struct {
	tx *bolt.Tx
	d  *draft
}

func (w *writer) put(bucket, key []byte, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		err = w.tx.Bucket(bucket).Put(key, b)
	}
	if err != nil {
		panic(fmt.Sprintf("store: put %s/%q: %v", bucket, key, err))
	}
}

func (w *writer) del(bucket, key []byte) {
	if err := w.tx.Bucket(bucket).Delete(key); err != nil {
		panic(fmt.Sprintf("store: delete %s/%q: %v", bucket, key, err))
	}
}

// pairKey encodes two strings as one unambiguous bbolt key.
func pairKey(a, b string) []byte {
	k := binary.AppendUvarint(make([]byte, 0, 2+len(a)+len(b)), uint64(len(a)))
	return append(append(k, a...), b...)
}

// apply applies one command; it must be deterministic (no clock, no
// randomness, no map iteration order leaking into the result).
func (w *writer) apply(cmd Command) error {
	switch c := cmd.(type) {
	case *ReportBatch:
		for _, t := range c.Transitions {
			t.Prober = c.Prober
			k := verdictKey{t.Key, t.Prober}
			if old, ok := w.d.verdicts.get(k); ok && t.At.Before(old.At) {
				continue // a late retry of an older report
			}
			w.put(bucketVerdicts, pairKey(t.Key, t.Prober), t)
			w.d.verdicts.put(k, t)
		}
		if h := c.Heartbeat; h != nil {
			h := *h
			h.Prober = c.Prober
			if old, ok := w.d.next.beats[h.Prober]; !ok || !h.At.Before(old.At) {
				w.put(bucketBeats, []byte(h.Prober), h)
				w.d.beats()[h.Prober] = h
			}
		}
		for _, r := range c.RTTs {
			r.Prober = c.Prober
			if r.Kind != "" {
				r.Target = r.key()
			}
			k := rttKey{r.Prober, r.Target}
			if old, ok := w.d.rtts.get(k); ok && r.At.Before(old.At) {
				continue
			}
			w.put(bucketRTTs, pairKey(r.Prober, r.Target), r)
			w.d.rtts.put(k, r)
		}
		return nil
	case *Override:
		// Drop overrides that expired before this one was asked for. The
		// keys are sorted so the order of writes is deterministic.
		var expired []overrideKey
		for k, o := range w.d.next.overrides {
			if !o.Until.IsZero() && !c.At.Before(o.Until) {
				expired = append(expired, k)
			}
		}
		for _, k := range sortedKeys(expired) {
			w.del(bucketOverrides, pairKey(k.Kind, k.Name))
			delete(w.d.overrides(), k)
		}
		k := overrideKey{c.Kind, c.Name}
		if c.Action == ActionUndrain {
			if _, ok := w.d.next.overrides[k]; ok {
				w.del(bucketOverrides, pairKey(k.Kind, k.Name))
				delete(w.d.overrides(), k)
			}
			return nil
		}
		w.put(bucketOverrides, pairKey(k.Kind, k.Name), c)
		w.d.overrides()[k] = *c
		return nil
	case *ZoneUpdate:
		cur, ok := w.d.next.zones[c.Name]
		if c.Content == nil {
			if ok {
				w.del(bucketZones, []byte(c.Name))
				delete(w.d.zones(), c.Name)
			}
			return nil
		}
		if ok {
			switch {
			case c.Serial == cur.Serial && bytes.Equal(c.Content, cur.Content):
				return nil
			case c.Serial == cur.Serial:
				return rejectf("zone %s: serial %d is already committed with different content", c.Name, c.Serial)
			case serialLess(c.Serial, cur.Serial):
				return rejectf("zone %s: serial %d is older than the committed %d", c.Name, c.Serial, cur.Serial)
			}
		}
		w.put(bucketZones, []byte(c.Name), c)
		w.d.zones()[c.Name] = *c
		return nil
	case *MemberChange:
		if c.Op == MemberLeave {
			if _, ok := w.d.next.members[c.ID]; ok {
				w.del(bucketMembers, []byte(c.ID))
				delete(w.d.members(), c.ID)
			}
			return nil
		}
		w.put(bucketMembers, []byte(c.ID), c)
		w.d.members()[c.ID] = *c
		return nil
	case *DNSSECKeys:
		return w.applyDNSSECKeys(c) // dnssec.go
	case *LoadReport:
		return w.applyLoadReport(c) // load.go
	}
	panic(fmt.Sprintf("store: no apply for %T", cmd))
}

func sortedKeys(ks []overrideKey) []overrideKey {
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && (ks[j].Kind < ks[j-1].Kind || ks[j].Kind == ks[j-1].Kind && ks[j].Name < ks[j-1].Name); j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

// serialLess reports a < b in RFC 1982 serial number arithmetic.
func serialLess(a, b uint32) bool {
	return a != b && int32(a-b) < 0
}

// loadState reads the whole state database into a State.
func loadState(db *bolt.DB) (*State, error) {
	var s *State
	err := db.View(func(tx *bolt.Tx) error {
		var err error
		s, err = loadStateTx(tx)
		return err
	})
	return s, err
}

func loadStateTx(tx *bolt.Tx) (*State, error) {
	s := emptyState()
	err := func() error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
			s.index = binary.BigEndian.Uint64(v)
		}
		var vd shardDraft[verdictKey, Transition]
		if err := loadBucket(tx, bucketVerdicts, func(t Transition) { vd.put(verdictKey{t.Key, t.Prober}, t) }); err != nil {
			return err
		}
		s.verdicts = vd.result()
		var rd shardDraft[rttKey, RTTSummary]
		if err := loadBucket(tx, bucketRTTs, func(r RTTSummary) { rd.put(rttKey{r.Prober, r.Target}, r) }); err != nil {
			return err
		}
		s.rtts = rd.result()
		if err := loadBucket(tx, bucketOverrides, func(o Override) { s.overrides[overrideKey{o.Kind, o.Name}] = o }); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketZones, func(z ZoneUpdate) { s.zones[z.Name] = z }); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketBeats, func(h Heartbeat) { s.beats[h.Prober] = h }); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketDNSSEC, func(k DNSSECKeys) { s.dnssec = &k }); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketLoads, func(r LoadReport) { s.loads[r.Node] = r }); err != nil {
			return err
		}
		return loadBucket(tx, bucketMembers, func(m MemberChange) { s.members[m.ID] = m })
	}()
	if err != nil {
		return nil, &loadError{err}
	}
	return s, nil
}

// loadError is a record of the state database that does not decode.
type loadError struct{ err error }

func (e *loadError) Error() string { return "load state: " + e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

func loadBucket[T any](tx *bolt.Tx, name []byte, add func(T)) error {
	return tx.Bucket(name).ForEach(func(k, v []byte) error {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("bucket %s key %q: %w", name, k, err)
		}
		add(x)
		return nil
	})
}

// Snapshot implements raft.FSM. The snapshot is a bbolt read transaction;
// InitialMmapSize keeps it from blocking writers while it is persisted.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("snapshot: begin read: %w", err)
	}
	return &fsmSnapshot{tx: tx}, nil
}

type fsmSnapshot struct{ tx *bolt.Tx }

// Snapshot stream format: the magic, the format byte, then records, each a
// tag byte: 'B' uvarint-length bucket name; 'K' uvarint-length key and
// uvarint-length value (in the last named bucket); 'E' and the big-endian
// CRC-32 (IEEE) of every byte before it.
const snapMagic = "GSLBSNAP"

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(s.tx, sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.tx.Rollback() }

func writeSnapshot(tx *bolt.Tx, out io.Writer) error {
	crc := crc32.NewIEEE()
	w := bufio.NewWriterSize(io.MultiWriter(out, crc), 64<<10)
	w.WriteString(snapMagic)
	w.WriteByte(stateFormat)
	var buf []byte
	writeBytes := func(b []byte) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(b)))
		w.Write(buf)
		w.Write(b)
	}
	for _, name := range allBuckets {
		w.WriteByte('B')
		writeBytes(name)
		err := tx.Bucket(name).ForEach(func(k, v []byte) error {
			w.WriteByte('K')
			writeBytes(k)
			writeBytes(v)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var tail [5]byte
	tail[0] = 'E'
	crc.Write(tail[:1])
	binary.BigEndian.PutUint32(tail[1:], crc.Sum32())
	_, err := out.Write(tail[:])
	return err
}

// Restore implements raft.FSM: the state database is replaced by the
// snapshot in one transaction, then the State is rebuilt from it.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s *State
	err := f.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		err := readSnapshot(rc, func(bucket, k, v []byte) error {
			b := tx.Bucket(bucket)
			if b == nil {
				return fmt.Errorf("unknown bucket %q", bucket)
			}
			return b.Put(k, v)
		})
		if err != nil {
			return err
		}
		// Decode everything before committing: a snapshot whose records
		// do not decode is refused as a whole.
		s, err = loadStateTx(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.state.Store(s)
	f.setDone(s.index)
	if f.onApply != nil {
		f.onApply(s)
	}
	return nil
}

func readSnapshot(in io.Reader, put func(bucket, k, v []byte) error) error {
	crc := crc32.NewIEEE()
	r := bufio.NewReaderSize(in, 64<<10)
	tr := io.TeeReader(r, crc)
	br := byteReader{tr}
	head := make([]byte, len(snapMagic)+1)
	if _, err := io.ReadFull(tr, head); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if string(head[:len(snapMagic)]) != snapMagic {
		return fmt.Errorf("not a gslb snapshot (magic %q)", head[:len(snapMagic)])
	}
	if head[len(snapMagic)] != stateFormat {
		return fmt.Errorf("snapshot format %d, this binary reads %d", head[len(snapMagic)], stateFormat)
	}
	readBytes := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > 1<<30 {
			return nil, fmt.Errorf("record of %d bytes", n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(tr, b)
		return b, err
	}
	var bucket []byte
	for {
		tag, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("read record: %w", err)
		}
		switch tag {
		case 'B':
			if bucket, err = readBytes(); err != nil {
				return fmt.Errorf("read bucket name: %w", err)
			}
		case 'K':
			if bucket == nil {
				return errors.New("key before bucket")
			}
			k, err := readBytes()
			if err != nil {
				return fmt.Errorf("read key: %w", err)
			}
			v, err := readBytes()
			if err != nil {
				return fmt.Errorf("read value: %w", err)
			}
			if err := put(bucket, k, v); err != nil {
				return err
			}
		case 'E':
			want := crc.Sum32()
			var sum [4]byte
			if _, err := io.ReadFull(r, sum[:]); err != nil {
				return fmt.Errorf("read checksum: %w", err)
			}
			if got := binary.BigEndian.Uint32(sum[:]); got != want {
				return fmt.Errorf("checksum %08x, computed %08x", got, want)
			}
			return nil
		default:
			return fmt.Errorf("unknown record tag %q", tag)
		}
	}
}

type byteReader struct{ io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var x [1]byte
	_, err := io.ReadFull(b.Reader, x[:])
	return x[0], err
}

// fingerprint returns the applied index and a SHA-256 over every bucket's
// keys and values, in key order. Nodes that applied the same entries have
// the same fingerprint.
func (f *fsm) fingerprint() (uint64, [32]byte, error) {
	var sum [32]byte
	var idx uint64
	err := f.db.View(func(tx *bolt.Tx) error {
		h := sha256.New()
		if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
			idx = binary.BigEndian.Uint64(v)
		}
		if err := writeSnapshot(tx, h); err != nil {
			return err
		}
		copy(sum[:], h.Sum(nil))
		return nil
	})
	return idx, sum, err
}

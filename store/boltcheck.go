package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// checkBolt reads the bbolt file at path with plain reads, never through
// bbolt: bbolt maps the file and trusts its page pointers, so a damaged
// page makes it fault or panic, sometimes on a goroutine of its own where
// nothing can recover (opening with NoFreelistSync walks every page). The
// check validates what bbolt will walk: a valid meta page, and from the
// root bucket every branch and leaf page, nested and inline buckets, and
// the freelist page: in range, referenced once, with the header and
// element bounds bbolt expects and keys in order. A missing or empty file
// is fine (bbolt creates it). A damaged file gives a *damagedError.
func checkBolt(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	c := &boltChecker{f: f, size: fi.Size(), seen: map[uint64]bool{}}
	if err := c.check(); err != nil {
		return &damagedError{path: path, err: err}
	}
	return nil
}

// damagedError says that a database file is damaged: not readable as the
// bbolt file it should be.
type damagedError struct {
	path string
	err  error
}

func (e *damagedError) Error() string { return fmt.Sprintf("%s is damaged: %v", e.path, e.err) }
func (e *damagedError) Unwrap() error { return e.err }

const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltHeaderSize   = 16 // page: id u64, flags u16, count u16, overflow u32
	boltElemSize     = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	boltBucketHeader = 16 // root pgid u64, sequence u64
	boltNoFreelist   = ^uint64(0)

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	leafBucket   = 0x01
)

type boltChecker struct {
	f        *os.File
	size     int64
	pageSize int64
	hwm      uint64 // pages below the high water mark are in use or free
	seen     map[uint64]bool
}

type boltMeta struct {
	pageSize           uint32
	root, freelist, hw uint64
	txid               uint64
}

// readMeta parses and validates the meta page at offset off.
func (c *boltChecker) readMeta(off int64) (boltMeta, error) {
	buf := make([]byte, boltHeaderSize+64)
	if _, err := c.f.ReadAt(buf, off); err != nil {
		return boltMeta{}, fmt.Errorf("meta page at %d: %w", off, err)
	}
	le := binary.LittleEndian
	if le.Uint16(buf[8:]) != flagMeta {
		return boltMeta{}, fmt.Errorf("meta page at %d: flags %#x", off, le.Uint16(buf[8:]))
	}
	m := buf[boltHeaderSize:]
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, fmt.Errorf("meta page at %d: not a bbolt version 2 meta page", off)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, fmt.Errorf("meta page at %d: checksum mismatch", off)
	}
	return boltMeta{
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		hw:       le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}, nil
}

func (c *boltChecker) check() error {
	// bbolt reads the page size from meta 0, or from meta 1 at the OS page
	// size when meta 0 is bad, and uses the valid meta with the higher txid.
	m0, err0 := c.readMeta(0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := c.readMeta(ps)
	m := m0
	switch {
	case err0 != nil && err1 != nil:
		return fmt.Errorf("no valid meta page (%v; %v)", err0, err1)
	case err0 != nil || (err1 == nil && m1.txid > m0.txid):
		m = m1
	}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return fmt.Errorf("meta page: page size %d", m.pageSize)
	}
	c.pageSize = int64(m.pageSize)
	c.hwm = m.hw
	if c.hwm < 2 || c.hwm > uint64(c.size/c.pageSize) {
		return fmt.Errorf("meta page: %d pages in use, the file holds %d", c.hwm, c.size/c.pageSize)
	}
	if m.freelist != boltNoFreelist {
		p, err := c.page(m.freelist)
		if err != nil {
			return err
		}
		if flags := binary.LittleEndian.Uint16(p[8:]); flags != flagFreelist {
			return fmt.Errorf("page %d: flags %#x, want a freelist page", m.freelist, flags)
		}
	}
	return c.tree(m.root, 0, nil, nil)
}

// page reads page id and its overflow pages, checking that it is in use,
// referenced once, and says it is page id.
func (c *boltChecker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, fmt.Errorf("page %d: out of range (%d pages in use)", id, c.hwm)
	}
	if c.seen[id] {
		return nil, fmt.Errorf("page %d: referenced twice", id)
	}
	c.seen[id] = true
	head := make([]byte, boltHeaderSize)
	if _, err := c.f.ReadAt(head, int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(head); got != id {
		return nil, fmt.Errorf("page %d: header says page %d", id, got)
	}
	over := uint64(le.Uint32(head[12:]))
	if id+over >= c.hwm {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the %d pages in use", id, over, c.hwm)
	}
	for i := id + 1; i <= id+over; i++ {
		c.seen[i] = true
	}
	buf := make([]byte, int64(over+1)*c.pageSize)
	if _, err := c.f.ReadAt(buf, int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

// tree checks the B+tree rooted at page id, whose keys must lie in
// [lo, hi) (nil: unbounded).
func (c *boltChecker) tree(id uint64, depth int, lo, hi []byte) error {
	if depth > 64 {
		return fmt.Errorf("page %d: tree deeper than 64 levels", id)
	}
	p, err := c.page(id)
	if err != nil {
		return err
	}
	return c.node(id, p, depth, lo, hi)
}

// node checks one branch or leaf page (or an inline bucket's page), with
// keys in [lo, hi), and what it points to.
func (c *boltChecker) node(id uint64, p []byte, depth int, lo, hi []byte) error {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return fmt.Errorf("page %d: flags %#x, want a branch or leaf page", id, flags)
	}
	if boltHeaderSize+count*boltElemSize > len(p) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	type elem struct {
		key, val []byte
		flags    uint32
		child    uint64
	}
	elems := make([]elem, count)
	for i := range count {
		off := boltHeaderSize + i*boltElemSize
		e := p[off : off+boltElemSize]
		var pos, ksize, vsize uint64
		if flags == flagBranch {
			pos, ksize = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
			elems[i].child = le.Uint64(e[8:])
		} else {
			pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
			elems[i].flags = le.Uint32(e[0:])
		}
		start := uint64(off) + pos
		if start+ksize+vsize > uint64(len(p)) {
			return fmt.Errorf("page %d: element %d runs past the page", id, i)
		}
		key := p[start : start+ksize]
		switch {
		case i > 0 && bytes.Compare(elems[i-1].key, key) >= 0:
			return fmt.Errorf("page %d: keys out of order at element %d", id, i)
		case lo != nil && bytes.Compare(key, lo) < 0, hi != nil && bytes.Compare(key, hi) >= 0:
			return fmt.Errorf("page %d: key of element %d outside the range its parent gives", id, i)
		}
		elems[i].key, elems[i].val = key, p[start+ksize:start+ksize+vsize]
	}
	for i, el := range elems {
		if flags == flagBranch {
			next := hi
			if i+1 < len(elems) {
				next = elems[i+1].key
			}
			if err := c.tree(el.child, depth+1, el.key, next); err != nil {
				return err
			}
			continue
		}
		if el.flags&leafBucket == 0 {
			continue
		}
		key, v := el.key, el.val
		if len(v) < boltBucketHeader {
			return fmt.Errorf("page %d: bucket %q has a %d-byte header", id, key, len(v))
		}
		if root := le.Uint64(v); root != 0 {
			if err := c.tree(root, depth+1, nil, nil); err != nil {
				return err
			}
			continue
		}
		// An inline bucket: its leaf page follows the header.
		if len(v) < boltBucketHeader+boltHeaderSize {
			return fmt.Errorf("page %d: inline bucket %q is truncated", id, key)
		}
		if depth > 64 {
			return fmt.Errorf("page %d: buckets nested deeper than 64 levels", id)
		}
		if err := c.node(id, v[boltBucketHeader:], depth+1, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

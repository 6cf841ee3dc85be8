package zones

import (
	"bytes"
	"encoding/binary"
	"errors"
	"iter"
	"sort"

	"github.com/miekg/dns"
)

// RRs holds the static records of a zone compactly: every record packed in
// DNS wire format (owner name uncompressed and in lower case, type, class,
// TTL, rdata length, rdata) in one byte slice, about 35 bytes for an A
// record where a dns.RR costs three allocations and some 120 bytes. The
// records are grouped by owner name and then by type; within an RRset they
// keep the order of the file. The zero RRs holds no record.
//
// An RRs is immutable: At and All hand out copies or read-only views.
type RRs struct {
	chunks [][]byte // records never straddle two chunks
	off    []uint32 // where each record starts (see at), in the grouped order
	names  int      // distinct owner names
}

// chunkBits sizes the chunks records are packed into: 1 MiB, so a zone
// grows without copying what it holds, and wastes at most a chunk.
const chunkBits = 20

// packedAt returns the record at off (chunk off>>chunkBits).
func packedAt(chunks [][]byte, off uint32) PackedRR {
	b := chunks[off>>chunkBits][off&(1<<chunkBits-1):]
	n := wireNameLen(b)
	rdlen := int(binary.BigEndian.Uint16(b[n+8:]))
	return PackedRR{b: b[: n+10+rdlen : n+10+rdlen], nameLen: n}
}

// Len returns the number of records.
func (s *RRs) Len() int { return len(s.off) }

// Names returns the number of distinct owner names (to size an index).
func (s *RRs) Names() int { return s.names }

// Raw returns the packed bytes from the start of record i (0 <= i < Len)
// to the end of the chunk that holds it: the record's owner name in wire
// form, then the rest of the record, then whatever was packed after it.
// An index that knows the length of a record's owner name reads the
// record from it without walking the name (At does).
func (s *RRs) Raw(i int) []byte {
	off := s.off[i]
	return s.chunks[off>>chunkBits][off&(1<<chunkBits-1):]
}

// At returns record i (0 <= i < Len) as a view of the packed bytes.
func (s *RRs) At(i int) PackedRR { return packedAt(s.chunks, s.off[i]) }

// All yields every record, unpacked into a new dns.RR each (so the caller
// may keep or modify it), in the grouped order.
func (s *RRs) All() iter.Seq[dns.RR] {
	return func(yield func(dns.RR) bool) {
		for i := range s.off {
			if !yield(s.At(i).RR()) {
				return
			}
		}
	}
}

// Packed yields every record as a view of the packed bytes, in the grouped
// order; records of one RRset come one after another.
func (s *RRs) Packed() iter.Seq[PackedRR] {
	return func(yield func(PackedRR) bool) {
		for i := range s.off {
			if !yield(s.At(i)) {
				return
			}
		}
	}
}

// SameShape reports whether s and o hold records of the same owner names
// and types at the same places (their TTLs and rdata may differ): what an
// index of owner names and RRsets over one is valid for the other. It is
// quick when s was parsed from o (ParseFrom): the chunks they share are
// not compared.
func (s *RRs) SameShape(o *RRs) bool {
	if len(s.off) != len(o.off) || len(s.chunks) != len(o.chunks) || s.names != o.names {
		return false
	}
	shared := make([]bool, len(s.chunks))
	for i, c := range s.chunks {
		shared[i] = len(c) > 0 && len(o.chunks[i]) > 0 && &c[0] == &o.chunks[i][0]
	}
	for i, off := range s.off {
		if off != o.off[i] {
			return false
		}
		if shared[off>>chunkBits] {
			continue
		}
		a, b := packedAt(s.chunks, off), packedAt(o.chunks, off)
		if a.Type() != b.Type() || !bytes.Equal(a.NameWire(), b.NameWire()) {
			return false
		}
	}
	return true
}

// Bytes returns the memory the records take, for size reports.
func (s *RRs) Bytes() int {
	n := 4 * cap(s.off)
	for _, c := range s.chunks {
		n += cap(c)
	}
	return n
}

// PackedRR is one record of an RRs in wire format. Its methods read the
// packed bytes; only Name and RR allocate. The bytes must not be modified.
type PackedRR struct {
	b       []byte // the whole record
	nameLen int    // length of the owner name in wire format
}

// wireNameLen returns the length of the uncompressed wire name at the start
// of b.
func wireNameLen(b []byte) int {
	i := 0
	for b[i] != 0 {
		i += int(b[i]) + 1
	}
	return i + 1
}

// Wire returns the record in wire format, owner name uncompressed.
func (r PackedRR) Wire() []byte { return r.b }

// NameWire returns the owner name in wire format, in lower case.
func (r PackedRR) NameWire() []byte { return r.b[:r.nameLen] }

// Name returns the owner name as a lower-case FQDN.
func (r PackedRR) Name() string {
	s, _, err := dns.UnpackDomainName(r.b[:r.nameLen], 0)
	if err != nil {
		return "."
	}
	return s
}

// Type returns the record's type.
func (r PackedRR) Type() uint16 { return binary.BigEndian.Uint16(r.b[r.nameLen:]) }

// TTL returns the record's TTL.
func (r PackedRR) TTL() uint32 { return binary.BigEndian.Uint32(r.b[r.nameLen+4:]) }

// Rdata returns the record's rdata in wire format (names in it
// uncompressed, as written in the file).
func (r PackedRR) Rdata() []byte { return r.b[r.nameLen+10:] }

// RR returns the record unpacked into a new dns.RR.
func (r PackedRR) RR() dns.RR {
	rr, _, err := dns.UnpackRR(r.b, 0)
	if err == nil {
		return rr
	}
	// miekg/dns parses a record without rdata ("x SOA", as in dynamic
	// updates) into one whose packed form does not unpack: give the
	// same empty record back.
	h := dns.RR_Header{Name: r.Name(), Rrtype: r.Type(), Class: dns.ClassINET, Ttl: r.TTL()}
	if f, ok := dns.TypeToRR[h.Rrtype]; ok {
		rr = f()
		*rr.Header() = h
		return rr
	}
	return &dns.RFC3597{Hdr: h}
}

// rrBuilder packs records as they are parsed.
type rrBuilder struct {
	chunks [][]byte
	off    []uint32 // start of each record, in file order
	lines  []uint32 // the line each record was read from
	// runs says which file each record was read from: records runs[i].first
	// to runs[i+1].first-1 from files[runs[i].file] (4 bytes a record for
	// positions, where a file index each would double it).
	runs []fileRun
	// files names the files positions point into (the top file and its
	// $INCLUDEs).
	files []string
	// prev are the chunks of the zone's previous version (ParseFrom): a
	// chunk packed byte for byte as the one at the same place there is
	// replaced by it, and its memory packs the next chunk (spare).
	prev  [][]byte
	spare []byte
}

// fileRun starts a run of records read from one file.
type fileRun struct {
	first uint32 // the first record's number in file order
	file  uint32 // index into rrBuilder.files
}

// add packs rr, whose owner name is already in lower case.
func (b *rrBuilder) add(rr dns.RR, pos Pos) error {
	c, err := b.room(dns.Len(rr) + 16) // Len counts no compression; a margin for rdata packers that check generously
	if err != nil {
		return err
	}
	start := len(c)
	end, err := dns.PackRR(rr, c[:cap(c)], start, nil, false)
	if err != nil {
		return err
	}
	lowerName(c[start:end])
	b.added(c[:end], start, pos)
	return nil
}

// addWire adds a record packed by the caller (owner in lower case).
func (b *rrBuilder) addWire(w []byte, pos Pos) error {
	c, err := b.room(len(w))
	if err != nil {
		return err
	}
	start := len(c)
	b.added(append(c, w...), start, pos)
	return nil
}

// room returns the last chunk with room for n more bytes.
func (b *rrBuilder) room(n int) ([]byte, error) {
	last := len(b.chunks) - 1
	if last >= 0 {
		// The first chunk starts small (a small zone stays small) and
		// doubles up to a full chunk; then full chunks follow.
		if c := b.chunks[last]; cap(c)-len(c) < n && cap(c) < 1<<chunkBits {
			nc := make([]byte, len(c), min(max(2*cap(c), len(c)+n), 1<<chunkBits))
			copy(nc, c)
			b.chunks[last] = nc
		}
	}
	if last < 0 || cap(b.chunks[last])-len(b.chunks[last]) < n {
		if len(b.chunks) >= 1<<(32-chunkBits) {
			return nil, errors.New("zone too large (4 GiB of records)")
		}
		size := 1 << chunkBits
		if last < 0 {
			size = max(4096, n)
		} else {
			b.finish(last)
		}
		c := b.spare
		if size != 1<<chunkBits || c == nil {
			c = make([]byte, 0, size)
		}
		b.spare = nil
		b.chunks = append(b.chunks, c)
	}
	return b.chunks[len(b.chunks)-1], nil
}

// finish is called when chunk i is full (or the last): if it holds the
// same bytes as chunk i of the previous version, that one replaces it.
func (b *rrBuilder) finish(i int) {
	if i >= len(b.prev) || !bytes.Equal(b.chunks[i], b.prev[i]) {
		return
	}
	if cap(b.chunks[i]) == 1<<chunkBits {
		b.spare = b.chunks[i][:0]
	}
	b.chunks[i] = b.prev[i]
}

// own returns record r from a chunk of this version alone, copying the
// chunk first if it is shared with the previous version: the caller may
// modify the record.
func (b *rrBuilder) own(r uint32) PackedRR {
	i := b.off[r] >> chunkBits
	if c := b.chunks[i]; int(i) < len(b.prev) && len(c) > 0 && len(b.prev[i]) > 0 && &c[0] == &b.prev[i][0] {
		b.chunks[i] = bytes.Clone(c)
	}
	return b.at(r)
}

// added records that the last chunk is now c, its new record at start.
func (b *rrBuilder) added(c []byte, start int, pos Pos) {
	last := len(b.chunks) - 1
	b.chunks[last] = c
	b.off = append(b.off, uint32(last)<<chunkBits|uint32(start))
	fi := len(b.files) - 1
	if fi < 0 || b.files[fi] != pos.File {
		fi = -1
		for i, f := range b.files {
			if f == pos.File {
				fi = i
			}
		}
		if fi < 0 {
			fi = len(b.files)
			b.files = append(b.files, pos.File)
		}
	}
	b.lines = append(b.lines, uint32(pos.Line))
	if n := len(b.runs); n == 0 || b.runs[n-1].file != uint32(fi) {
		b.runs = append(b.runs, fileRun{uint32(len(b.lines) - 1), uint32(fi)})
	}
}

// lowerName lowers the ASCII letters of the wire name at the start of b
// (an escaped "\065" in the file packs as 'A'; names compare case-blind).
func lowerName(b []byte) {
	for i := 0; b[i] != 0; i += int(b[i]) + 1 {
		for j := i + 1; j <= i+int(b[i]); j++ {
			if c := b[j]; c >= 'A' && c <= 'Z' {
				b[j] = c + 'a' - 'A'
			}
		}
	}
}

// at returns record r (its number in file order).
func (b *rrBuilder) at(r uint32) PackedRR { return packedAt(b.chunks, b.off[r]) }

// posOf returns where record r was read.
func (b *rrBuilder) posOf(r uint32) Pos {
	return Pos{File: b.files[b.fileOf(r)], Line: int(b.lines[r])}
}

// fileOf returns the index in files of the file record r was read from.
func (b *rrBuilder) fileOf(r uint32) uint32 {
	i := sort.Search(len(b.runs), func(i int) bool { return b.runs[i].first > r })
	return b.runs[i-1].file
}

// inZone reports whether the wire name is origin or below it (both in
// lower case).
func inZone(name, origin []byte) bool {
	for i := 0; len(name)-i >= len(origin); i += int(name[i]) + 1 {
		if bytes.Equal(name[i:], origin) {
			return true
		}
		if name[i] == 0 {
			break
		}
	}
	return false
}

// wireName packs a lower-case FQDN; ok is false for a name that is not one.
func wireName(name string) ([]byte, bool) {
	b, ok := appendWireName(nil, name)
	return b[:len(b):len(b)], ok
}

// appendWireName packs name into dst[len(dst):cap(dst)] when it fits (a
// new slice otherwise), in lower case.
func appendWireName(dst []byte, name string) ([]byte, bool) {
	start := len(dst)
	if cap(dst)-start < 256 {
		dst = append(make([]byte, 0, start+256), dst...)
	}
	n, err := dns.PackDomainName(name, dst[:cap(dst)], start, nil, false)
	if err != nil {
		return dst[:start], false
	}
	lowerName(dst[start:n])
	return dst[:n], true
}

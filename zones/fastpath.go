package zones

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The fast path: most lines of a large zone are plain address records
// ("host 300 IN A 192.0.2.1"), and miekg/dns spends a few allocations and
// a microsecond or two on each. The line filter packs such lines itself and
// hands miekg/dns an empty line in their place (so line numbers stay). It
// keeps the state miekg/dns would have had for them:
//
//   - the owner of a line that starts with a blank is the previous record's:
//     when the previous record was packed here, its owner is written out in
//     front of the next line miekg/dns reads (which has none);
//   - a record without a TTL takes the $TTL; the fast path runs only after a
//     numeric $TTL, when an explicit TTL no longer changes the default;
//   - $ORIGIN is followed; after $INCLUDE or $GENERATE, or any $ORIGIN it
//     cannot follow, the rest of the file goes to miekg/dns.
//
// Everything else (any other type, quotes, escapes, parentheses, TTL units,
// classes other than IN, names that do not pack) goes to miekg/dns, which
// also reports the errors. TestFastPathSame checks both paths agree.

// fastPath turns the fast path on (tests compare it with miekg/dns alone);
// fastPacked counts the records it packed.
var (
	fastPath   = true
	fastPacked atomic.Int64
)

// fastState is what the fast path of one file knows.
type fastState struct {
	on       bool
	origin   []byte // the current $ORIGIN, in wire form (nil: unknown)
	ttl      uint32 // the $TTL
	haveTTL  bool   // a numeric $TTL was seen
	depth    int    // parentheses open at the end of the last line
	owner    []byte // the owner of the last record line in wire form, nil when unknown
	buf      [255]byte
	key      []byte // a GSLB record's fields, for gslbSeen
	lastFast bool   // the last record line was packed here
}

// fastLine handles one line of the top file (without its line end). It
// returns the line to give miekg/dns: empty when the line was packed here.
func (f *lineFilter) fastLine(line []byte) []byte {
	s := &f.fast
	if s.depth > 0 {
		s.depth = parenDepth(line, s.depth)
		return line
	}
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	if i == len(line) || line[i] == ';' {
		return line
	}
	if line[i] == '$' {
		s.directive(line, i > 0)
		return line
	}
	if s.on && f.pack(line, i > 0) {
		s.lastFast = true
		return line[:0]
	}
	s.depth = parenDepth(line, 0)
	if i > 0 {
		if s.lastFast {
			// miekg/dns did not see the owner this line continues.
			text, _, _ := dns.UnpackDomainName(s.owner, 0)
			line = append(append([]byte(text), ' '), line...)
		}
	} else {
		s.owner = nil
		if end := tokenEnd(line); end > 0 {
			s.owner, _ = absoluteWire(s.buf[:0], line[:end], s.origin)
		}
	}
	s.lastFast = false
	return line
}

// directive follows $TTL and $ORIGIN.
func (s *fastState) directive(line []byte, indented bool) {
	fields := splitBlank(line)
	if indented || len(fields) == 0 {
		s.on = false
		return
	}
	switch dir := string(fields[0]); {
	case equalFold(dir, "$TTL") && len(fields) >= 2:
		if t, ok := parseTTL(fields[1]); ok {
			s.ttl, s.haveTTL = t, true
			return
		}
		s.haveTTL = false
		s.on = false
	case equalFold(dir, "$ORIGIN") && len(fields) >= 2:
		o, ok := absoluteWire(nil, fields[1], s.origin)
		if !ok {
			s.on = false
			return
		}
		s.origin = o
	case equalFold(dir, "$REGION"), equalFold(dir, "$POOL"):
	default:
		s.on = false
	}
}

// pack packs a plain A or AAAA record line, reporting whether it did.
func (f *lineFilter) pack(line []byte, blankOwner bool) bool {
	s := &f.fast
	if !s.haveTTL {
		return false
	}
	for j, c := range line {
		switch c {
		case '"', '\\', '(', ')', '\r':
			return false
		case ';':
			line = line[:j]
		}
		if c == ';' {
			break
		}
	}
	var tok [16][]byte
	n := 0
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > i {
			if n == len(tok) {
				return false
			}
			tok[n] = line[i:j]
			n++
		}
		i = j
	}
	toks := tok[:n]
	var nameBuf [255]byte
	owner := s.owner
	if !blankOwner {
		if len(toks) == 0 {
			return false
		}
		o, ok := absoluteWire(nameBuf[:0], toks[0], s.origin)
		if !ok {
			return false
		}
		owner, toks = o, toks[1:]
	}
	if owner == nil || len(toks) < 2 {
		return false
	}
	ttl := s.ttl
	var sawTTL, sawClass bool
	for len(toks) > 2 {
		switch {
		case !sawClass && equalFold(string(toks[0]), "IN"):
			sawClass = true
		case !sawTTL && isDigits(toks[0]) && len(toks[0]) <= 9:
			ttl, sawTTL = atou(toks[0]), true
		default:
			if equalFold(string(toks[0]), "GSLB") {
				return f.packGSLB(owner, ttl, toks[1:])
			}
			return false
		}
		toks = toks[1:]
	}
	var t uint16
	var rdata []byte
	switch typ, val := string(toks[0]), toks[1]; {
	case equalFold(typ, "GSLB"):
		return f.packGSLB(owner, ttl, toks[1:])
	case equalFold(typ, "A"):
		if !only(val, ipv4Chars) {
			return false
		}
		b, ok := parseIPv4(val)
		if !ok {
			return false
		}
		t, rdata = dns.TypeA, b[:]
	case equalFold(typ, "AAAA"):
		if !only(val, ipv6Chars) {
			return false
		}
		a, err := netip.ParseAddr(string(val))
		if err != nil || !a.Is6() {
			return false
		}
		b := a.As16()
		t, rdata = dns.TypeAAAA, b[:]
	default:
		return false
	}
	if err := f.p.rrs.addRaw(owner, t, ttl, rdata, Pos{f.file, f.line}); err != nil {
		return false
	}
	s.owner = append(s.buf[:0], owner...)
	return true
}

// packGSLB takes a GSLB record line (owner, TTL, the fields after the
// type), as the parser's record does for miekg/dns's. Its fields are
// looked up by their text first: records written alike share one parse,
// and this one allocates only the record and its name.
func (f *lineFilter) packGSLB(owner []byte, ttl uint32, fields [][]byte) bool {
	var err error
	key := f.fast.key[:0]
	for i, fl := range fields {
		if i > 0 {
			key = append(key, ' ')
		}
		key = append(key, fl...)
	}
	f.fast.key = key
	p := f.p
	t := p.gslbSeen[string(key)]
	if t == nil {
		strs := make([]string, len(fields))
		for i, fl := range fields {
			strs[i] = string(fl)
		}
		t, err = parseRecord(strs)
		if err != nil {
			return false // miekg/dns's path reports it
		}
		if p.gslbSeen == nil {
			p.gslbSeen = map[string]*Record{}
		}
		p.gslbSeen[string(key)] = t
	}
	pos := Pos{f.file, f.line}
	r := p.prevRecord(len(p.z.Records))
	if r == nil || ttl == 0 || r.TTL != ttl || r.Pos != pos || !sameParsed(r, t) || !isName(owner, r.Name) {
		// Not the previous version's record at this place (shareRecords
		// would replace it by that one: it is not made at all).
		name, _, err := dns.UnpackDomainName(owner, 0)
		if err != nil {
			return false
		}
		r = &Record{Name: name, TTL: ttl, Policy: t.Policy, Pools: t.Pools, Options: t.Options, Pos: pos}
	}
	fastPacked.Add(1)
	p.z.Records = append(p.z.Records, r)
	f.fast.owner = append(f.fast.buf[:0], owner...)
	return true
}

// isName reports whether wire name w (lower case) is name.
func isName(w []byte, name string) bool {
	var buf [256]byte
	n, ok := appendWireName(buf[:0], name)
	return ok && bytes.Equal(n, w)
}

// parseIPv4 parses a dotted-quad IPv4 address as netip.ParseAddr does
// (four decimal octets, no leading zeros), without making a string of it.
func parseIPv4(b []byte) (a [4]byte, ok bool) {
	k, start := 0, 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && b[i] != '.' {
			if b[i] < '0' || b[i] > '9' {
				return a, false
			}
			continue
		}
		d := b[start:i]
		if k == 4 || len(d) == 0 || len(d) > 3 || len(d) > 1 && d[0] == '0' {
			return a, false
		}
		v := atou(d)
		if v > 255 {
			return a, false
		}
		a[k] = byte(v)
		k++
		start = i + 1
	}
	return a, k == 4
}

// atou returns the value of a string of at most nine digits.
func atou(b []byte) uint32 {
	n := uint32(0)
	for _, c := range b {
		n = n*10 + uint32(c-'0')
	}
	return n
}

// addRaw packs a record from its parts; owner is a wire name in lower case.
func (b *rrBuilder) addRaw(owner []byte, t uint16, ttl uint32, rdata []byte, pos Pos) error {
	var buf [255 + 10 + 16]byte
	w := append(buf[:0], owner...)
	w = binary.BigEndian.AppendUint16(w, t)
	w = binary.BigEndian.AppendUint16(w, dns.ClassINET)
	w = binary.BigEndian.AppendUint32(w, ttl)
	w = binary.BigEndian.AppendUint16(w, uint16(len(rdata)))
	w = append(w, rdata...)
	fastPacked.Add(1)
	return b.addWire(w, pos)
}

// absoluteWire makes a plain owner token absolute, as miekg/dns does, in
// wire form and lower case, appended to dst; ok is false for a token the
// fast path leaves to miekg/dns. origin is the current origin in wire form.
func absoluteWire(dst, tok, origin []byte) ([]byte, bool) {
	if len(tok) == 1 && tok[0] == '@' {
		return append(dst, origin...), origin != nil
	}
	if len(tok) == 0 || tok[0] == '.' || !only(tok, nameChars) {
		return nil, false
	}
	abs := tok[len(tok)-1] == '.'
	if abs {
		tok = tok[:len(tok)-1]
	} else if origin == nil {
		return nil, false
	}
	for len(tok) > 0 {
		label := tok
		if i := bytes.IndexByte(tok, '.'); i >= 0 {
			label, tok = tok[:i], tok[i+1:]
			if len(tok) == 0 {
				return nil, false // "a..": an empty label
			}
		} else {
			tok = nil
		}
		if len(label) == 0 || len(label) > 63 {
			return nil, false
		}
		dst = append(dst, byte(len(label)))
		for _, c := range label {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
	}
	if abs {
		dst = append(dst, 0)
	} else {
		dst = append(dst, origin...)
	}
	if len(dst) > 255 {
		return nil, false
	}
	return dst, true
}

// parenDepth returns the parentheses open after line, starting at depth,
// skipping quoted text, escapes and comments as miekg/dns's lexer does.
func parenDepth(line []byte, depth int) int {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ';':
			return depth
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		}
	}
	return depth
}

// tokenEnd returns the length of the first token of a line that starts
// with one (0 if it holds quotes or escapes: unknown).
func tokenEnd(line []byte) int {
	for i, c := range line {
		switch c {
		case ' ', '\t', ';', '(', ')':
			return i
		case '"', '\\':
			return 0
		}
	}
	return len(line)
}

func splitBlank(line []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > i {
			out = append(out, line[i:j])
		}
		i = j
	}
	return out
}

// parseTTL reads a numeric $TTL (units are left to miekg/dns).
func parseTTL(b []byte) (uint32, bool) {
	if !isDigits(b) || len(b) > 9 {
		return 0, false
	}
	t, err := strconv.ParseUint(string(b), 10, 32)
	return uint32(t), err == nil
}

func isDigits(b []byte) bool { return len(b) > 0 && only(b, digits) }

// byteSet is a set of bytes.
type byteSet [256]bool

func newByteSet(s string) *byteSet {
	var b byteSet
	for i := 0; i < len(s); i++ {
		b[s[i]] = true
	}
	return &b
}

var (
	digits    = newByteSet("0123456789")
	ipv4Chars = newByteSet("0123456789.")
	ipv6Chars = newByteSet("0123456789abcdefABCDEF:")
	nameChars = newByteSet("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*.")
)

// only reports whether every byte of b is in set.
func only(b []byte, set *byteSet) bool {
	for _, c := range b {
		if !set[c] {
			return false
		}
	}
	return true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'a' && x <= 'z' {
			x -= 'a' - 'A'
		}
		if y >= 'a' && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

package zones

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Errors is every error found in one load, in file order.
type Errors []error

func (e Errors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "\n")
}

// errorList turns a list into an error (nil when empty).
func errorList(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return Errors(errs)
}

// Load reads one zone file (following $INCLUDE) and validates it on its own.
// origin is the zone's name; "" derives it from the file name with a
// trailing ".zone" or ".db" removed, and a $ORIGIN in the file overrides it.
// References between zones (pools naming regions, records naming pools) are
// checked by Link. The file is read as a stream: its content is never held
// in memory as a whole.
func Load(file, origin string) (*Zone, error) {
	return LoadFrom(nil, file, origin)
}

// LoadFrom is Load for a new version of the zone prev (nil: none), which
// it shares memory with where the new version is the same (see ParseFrom).
func LoadFrom(prev *Zone, file, origin string) (*Zone, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("load zone: %w", err)
	}
	defer f.Close()
	hint := 0
	if st, err := f.Stat(); err == nil && st.Size() < 1<<34 {
		hint = int(st.Size() / 20) // a plain address line is 20-30 bytes
	}
	if prev != nil {
		hint = prevHint(prev)
	}
	return parse(prev, f, file, origin, true, hint)
}

// OriginFromFile returns the zone name a file name implies ("example.com.zone"
// gives "example.com.").
func OriginFromFile(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".zone", ".db"} {
		base = strings.TrimSuffix(base, ext)
	}
	base = strings.TrimPrefix(base, "db.")
	return dns.CanonicalName(base)
}

// Parse parses zone file content. file names it in errors and anchors
// relative $INCLUDE paths; includes are read from disk only when
// allowInclude is set.
func Parse(data []byte, file, origin string, allowInclude bool) (*Zone, error) {
	return ParseReader(bytes.NewReader(data), file, origin, allowInclude)
}

// ParseReader is Parse reading the content from r as it goes: a zone of
// millions of records is parsed without a copy of its text, and each record
// is packed (see RRs) as soon as it is read.
func ParseReader(r io.Reader, file, origin string, allowInclude bool) (*Zone, error) {
	return parse(nil, r, file, origin, allowInclude, 0)
}

// ParseFrom is Parse for a new version of the zone prev (nil: none): the
// new version shares with prev every chunk of packed records (1 MiB) that
// it packs byte for byte the same, their order if that is the same, and
// every GSLB record written the same at the same place, so a reload that
// changes a few records holds a second copy of little more than those.
// prev is not modified.
func ParseFrom(prev *Zone, data []byte, file, origin string, allowInclude bool) (*Zone, error) {
	hint := len(data) / 20
	if prev != nil {
		hint = prevHint(prev)
	}
	return parse(prev, bytes.NewReader(data), file, origin, allowInclude, hint)
}

// ParseReaderFrom is ParseFrom reading the content from r as it goes (see
// ParseReader).
func ParseReaderFrom(prev *Zone, r io.Reader, file, origin string, allowInclude bool) (*Zone, error) {
	return parse(prev, r, file, origin, allowInclude, prevHint(prev))
}

// prevHint is how many records a new version of prev (nil: 0) may hold.
func prevHint(prev *Zone) int {
	if prev == nil {
		return 0
	}
	return prev.RRs.Len() + prev.RRs.Len()/64 + 16
}

// parse parses a zone from r; hint is about how many records it holds (0:
// unknown), to size the record index once.
func parse(prev *Zone, r io.Reader, file, origin string, allowInclude bool, hint int) (*Zone, error) {
	explicit := origin != ""
	if !explicit {
		origin = OriginFromFile(file)
	}
	if _, ok := dns.IsDomainName(origin); !ok {
		return nil, newError(Pos{file, 0}, fmt.Sprintf("zone name %q is not a domain name", origin))
	}
	origin = dns.CanonicalName(origin)
	p := &parser{z: &Zone{Origin: origin, File: file}, explicit: explicit}
	if prev != nil {
		p.prev, p.rrs.prev = prev, prev.RRs.chunks
	}
	if hint > 0 {
		p.rrs.off = make([]uint32, 0, hint)
		p.rrs.lines = make([]uint32, 0, hint)
	}
	abs := file
	if a, err := filepath.Abs(file); err == nil && allowInclude {
		abs = a
	}
	p.root = filepath.Dir(abs)
	if r, err := filepath.EvalSymlinks(p.root); err == nil {
		p.root = r
	}
	p.display = map[string]string{strings.TrimLeft(filepath.ToSlash(abs), "/"): file}
	top := p.filter(file, r)
	top.top = true
	o, ok := wireName(origin)
	top.fast.on, top.fast.origin = fastPath && ok, o

	zp := dns.NewZoneParser(top, origin, abs)
	zp.SetDefaultTTL(3600)
	if allowInclude {
		zp.SetIncludeAllowed(true)
		zp.SetIncludeFS(includeFS{p})
	}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		p.record(rr, p.pos(zp))
	}
	if err := zp.Err(); err != nil {
		p.errs = append(p.errs, p.parseError(err))
		return nil, errorList(p.errs)
	}
	p.setOrigin()
	for _, d := range p.directives {
		p.directive(d)
	}
	p.validate()
	if len(p.errs) > 0 {
		return nil, errorList(p.errs)
	}
	p.shareRecords()
	return p.z, nil
}

// shareRecords replaces each GSLB record that is the same as the one at the
// same place of the previous version by that one.
func (p *parser) shareRecords() {
	if p.prev == nil {
		return
	}
	for i, r := range p.z.Records {
		if old := p.prevRecord(i); old != nil && sameRecord(r, old) {
			p.z.Records[i] = old
		}
	}
}

// sameRecord reports whether two GSLB records are written the same, at the
// same place.
func sameRecord(a, b *Record) bool {
	return a.Name == b.Name && a.TTL == b.TTL && a.Pos == b.Pos && sameParsed(a, b)
}

// sameParsed reports whether two GSLB records have the same policy, pools
// and options.
func sameParsed(a, b *Record) bool {
	return a.Policy == b.Policy && slices.Equal(a.Pools, b.Pools) && maps.Equal(a.Options, b.Options)
}

// prevRecord returns GSLB record i of the previous version, or nil.
func (p *parser) prevRecord(i int) *Record {
	if p.prev == nil || i >= len(p.prev.Records) {
		return nil
	}
	return p.prev.Records[i]
}

// parser holds the state of one Parse.
type parser struct {
	z          *Zone
	errs       []error
	directives []directive
	// display maps the slash-trimmed absolute paths miekg/dns uses for
	// included files back to the names shown in messages.
	display map[string]string
	// rrs packs the static records as they are read; validate turns it
	// into Zone.RRs.
	rrs rrBuilder
	// lex caches where miekg/dns keeps a parser's position (see pos).
	lex lexFields
	// root is the directory of the zone file (symbolic links resolved):
	// $INCLUDE reaches files below it only.
	root string
	// firstSOA is the owner of the first SOA record read.
	firstSOA string
	// gslbSeen holds the GSLB records parsed so far by their text.
	gslbSeen map[string]*Record
	// prev is the zone's previous version (ParseFrom), nil for none.
	prev *Zone
	// explicit is set when the caller named the zone; otherwise the zone
	// is named by its SOA record, and the file name is only the origin
	// for relative names before the first $ORIGIN.
	explicit bool
}

type directive struct {
	pos  Pos
	name string // "$REGION" or "$POOL"
	args []string
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, newError(pos, fmt.Sprintf(format, args...)))
}

func (p *parser) warnf(pos Pos, format string, args ...any) {
	p.z.Warnings = append(p.z.Warnings, newError(pos, fmt.Sprintf(format, args...)))
}

// filter returns the text of a zone file as miekg/dns reads it: $REGION and
// $POOL lines blanked (keeping the line count, so miekg/dns reports the same
// line numbers) and remembered, and $GENERATE lines given the file's $TTL.
// It reads r as miekg/dns asks for more.
func (p *parser) filter(file string, r io.Reader) *lineFilter {
	return &lineFilter{p: p, file: file, r: bufio.NewReaderSize(r, 64*1024)}
}

// maxLine is the longest line a zone file may have.
const maxLine = 1 << 20

// lineFilter is the reader filter returns.
type lineFilter struct {
	p       *parser
	file    string
	r       *bufio.Reader
	line    int
	ttl     string
	out     []byte // the current line as filtered
	pending []byte // what of out is still to be read
	long    []byte // a line longer than r's buffer, as it is gathered
	done    bool
	top     bool      // the zone file itself (not an $INCLUDE)
	fast    fastState // see fastpath.go
}

func (f *lineFilter) Read(b []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.done {
			return 0, io.EOF
		}
		f.next()
	}
	n := copy(b, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// next reads and filters one line.
func (f *lineFilter) next() {
	line, err := f.r.ReadSlice('\n')
	for err == bufio.ErrBufferFull {
		f.long = append(f.long[:0:0], line...)
		for err == bufio.ErrBufferFull && len(f.long) <= maxLine {
			line, err = f.r.ReadSlice('\n')
			f.long = append(f.long, line...)
		}
		line = f.long
		if len(line) > maxLine {
			f.p.errorf(Pos{f.file, f.line + 1}, "line longer than %d bytes", maxLine)
			f.done = true
			return
		}
	}
	if err != nil {
		f.done = true
		if err != io.EOF {
			f.p.errorf(Pos{f.file, f.line + 1}, "%v", err)
			return
		}
		if len(line) == 0 {
			return
		}
	}
	f.line++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if f.top {
		line = f.fastLine(line)
	}
	f.out = append(f.out[:0], line...)
	if t := bytes.TrimLeft(line, " \t"); len(t) > 0 && t[0] == '$' {
		f.out = f.directive(f.out)
	}
	f.out = append(f.out, '\n')
	f.pending = f.out
}

// directive filters a line that starts with '$'.
func (f *lineFilter) directive(line []byte) []byte {
	text := string(line)
	upper := strings.ToUpper(text)
	if fs := strings.Fields(text); len(fs) >= 2 && strings.ToUpper(fs[0]) == "$TTL" {
		f.ttl = fs[1]
	}
	if strings.HasPrefix(upper, "$GENERATE") && f.ttl != "" {
		return append(line[:0], generateTTL(text, f.ttl)...)
	}
	if strings.HasPrefix(upper, "$REGION") || strings.HasPrefix(upper, "$POOL") {
		fields, err := splitDirective(text)
		pos := Pos{f.file, f.line}
		if err != nil {
			f.p.errorf(pos, "%v", err)
		} else {
			f.p.directives = append(f.p.directives, directive{pos, strings.ToUpper(fields[0]), fields[1:]})
		}
		return line[:0]
	}
	return line
}

// generateTTL gives a $GENERATE line without a TTL the file's $TTL:
// miekg/dns v1 would use 3600 where BIND uses $TTL.
func generateTTL(line, ttl string) string {
	f := strings.Fields(line)
	if len(f) < 5 {
		return line // miekg reports the syntax error
	}
	if c := f[3][0]; c >= '0' && c <= '9' {
		return line // a TTL is given (types and classes never start with a digit)
	}
	return strings.Join(append(f[:3:3], append([]string{ttl}, f[3:]...)...), " ")
}

// splitDirective splits a directive line into fields: blanks separate, a
// ';' outside quotes starts a comment, double quotes group (key="a b").
func splitDirective(s string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			have = true
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case inQuote:
			cur.WriteByte(c)
		case c == ';':
			i = len(s)
		case c == ' ' || c == '\t' || c == '\r':
			if have {
				fields = append(fields, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if have {
		fields = append(fields, cur.String())
	}
	return fields, nil
}

// includeFS serves $INCLUDE targets from disk, preprocessed like the top
// file. miekg/dns hands it absolute paths with the leading '/' removed.
type includeFS struct{ p *parser }

func (f includeFS) Open(name string) (fs.File, error) {
	path := "/" + name
	// Only files below the zone file's directory, symbolic links
	// resolved: a zone must not read /etc/shadow into an error message.
	real := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	if rel, err := filepath.Rel(f.p.root, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("outside %s, the zone file's directory", filepath.Dir(f.p.z.File))}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	shown := path
	if rel, err := filepath.Rel(".", path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	f.p.display[name] = shown
	return &memFile{Reader: f.p.filter(shown, bytes.NewReader(data)), name: name}, nil
}

type memFile struct {
	io.Reader
	name string
}

func (m *memFile) Stat() (fs.FileInfo, error) { return nil, errors.New("stat not supported") }
func (m *memFile) Close() error               { return nil }

func (p *parser) shown(file string) string {
	if s, ok := p.display[strings.TrimLeft(filepath.ToSlash(file), "/")]; ok {
		return s
	}
	return file
}

// pos tells where the record zp just returned ends. miekg/dns v1 (frozen)
// does not export positions, so they are read from its lexer; if that ever
// stops working, positions degrade to the file name alone.
func (p *parser) pos(zp *dns.ZoneParser) (pos Pos) {
	defer func() {
		if recover() != nil {
			pos = Pos{}
		}
	}()
	v := reflect.ValueOf(zp).Elem()
	if p.lex.sub == nil {
		p.lex = newLexFields(v.Type())
	}
	for {
		sub := v.FieldByIndex(p.lex.sub)
		if sub.IsNil() {
			break
		}
		v = sub.Elem()
	}
	file := v.FieldByIndex(p.lex.file).String()
	if file != p.lex.lastFile {
		p.lex.lastFile, p.lex.lastShown = file, p.shown(file)
	}
	c := v.FieldByIndex(p.lex.c).Elem()
	// The lexer's line is the record's last line (a multi-line record is
	// reported at its end).
	return Pos{p.lex.lastShown, int(c.FieldByIndex(p.lex.line).Int())}
}

// lexFields are the indices of the unexported fields pos reads, looked up
// by name once per parse (by name on every record, they cost more than the
// parsing).
type lexFields struct {
	sub, file, c, line  []int
	lastFile, lastShown string
}

func newLexFields(zp reflect.Type) lexFields {
	field := func(t reflect.Type, name string) []int {
		f, ok := t.FieldByName(name)
		if !ok {
			panic("zones: miekg/dns changed: no field " + name)
		}
		return f.Index
	}
	c, ok := zp.FieldByName("c")
	if !ok || c.Type.Kind() != reflect.Pointer {
		panic("zones: miekg/dns changed: no lexer")
	}
	return lexFields{sub: field(zp, "sub"), file: field(zp, "file"), c: c.Index, line: field(c.Type.Elem(), "line")}
}

var parseErrRE = regexp.MustCompile(`^(?:(.*): )?dns: (.*) at line: (\d+):(\d+)$`)

// parseError rewrites miekg/dns's "file: dns: msg: "tok" at line: N:C" as
// "file:N: msg".
func (p *parser) parseError(err error) error {
	m := parseErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return newError(Pos{p.z.File, 0}, err.Error())
	}
	line, _ := strconv.Atoi(m[3])
	file := p.z.File
	if m[1] != "" {
		file = p.shown(m[1])
	}
	msg := m[2]
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// An $INCLUDE target that cannot be read: say which, without the
		// absolute path miekg/dns built.
		tok := msg[strings.LastIndexByte(msg, ':')+1:]
		msg = fmt.Sprintf("$INCLUDE %s: %v", strings.TrimSpace(tok), pe.Err)
	}
	return newError(Pos{file, line}, msg)
}

// record files one parsed RR.
func (p *parser) record(rr dns.RR, pos Pos) {
	h := rr.Header()
	h.Name = dns.CanonicalName(h.Name)
	if h.Class != dns.ClassINET {
		p.errorf(pos, "%s: class %s not supported (only IN)", h.Name, dns.ClassToString[h.Class])
		return
	}
	if h.Rrtype == TypeGSLB {
		fields := rr.(*dns.PrivateRR).Data.(*gslbRdata).fields
		// Records written alike share their parsed pools and options (a
		// zone may hold a hundred thousand records over a few policies).
		key := strings.Join(fields, " ")
		t := p.gslbSeen[key]
		if t == nil {
			var err error
			if t, err = parseRecord(fields); err != nil {
				p.errorf(pos, "%s GSLB: %v", h.Name, err)
				return
			}
			if p.gslbSeen == nil {
				p.gslbSeen = map[string]*Record{}
			}
			p.gslbSeen[key] = t
		}
		r := &Record{Name: h.Name, TTL: h.Ttl, Policy: t.Policy, Pools: t.Pools, Options: t.Options, Pos: pos}
		p.z.Records = append(p.z.Records, r)
		return
	}
	if p.firstSOA == "" && h.Rrtype == dns.TypeSOA {
		p.firstSOA = h.Name
	}
	if err := p.rrs.add(rr, pos); err != nil {
		p.errorf(pos, "%s %s: %v", h.Name, dns.TypeToString[h.Rrtype], err)
	}
}

// setOrigin names the zone after its first SOA record (unless the caller
// named it) and drops, with an error each, records outside it.
func (p *parser) setOrigin() {
	z := p.z
	if !p.explicit && p.firstSOA != "" {
		z.Origin = p.firstSOA
	}
	if ow, ok := wireName(z.Origin); ok {
		b := &p.rrs
		kept := b.off[:0]
		keptLines := b.lines[:0]
		var keptRuns []fileRun
		run := 0 // the file run of record r
		for r := range b.off {
			for run+1 < len(b.runs) && b.runs[run+1].first <= uint32(r) {
				run++
			}
			rr := b.at(uint32(r))
			if !inZone(rr.NameWire(), ow) {
				p.errorf(b.posOf(uint32(r)), "%s: out of zone data (zone is %s)", rr.Name(), z.Origin)
				continue
			}
			if f := b.runs[run].file; len(keptRuns) == 0 || keptRuns[len(keptRuns)-1].file != f {
				keptRuns = append(keptRuns, fileRun{uint32(len(kept)), f})
			}
			kept = append(kept, b.off[r])
			keptLines = append(keptLines, b.lines[r])
		}
		b.off, b.lines, b.runs = kept, keptLines, keptRuns
	}
	recs := z.Records[:0]
	for _, r := range z.Records {
		if !dns.IsSubDomain(z.Origin, r.Name) {
			p.errorf(r.Pos, "%s: out of zone data (zone is %s)", r.Name, z.Origin)
			continue
		}
		recs = append(recs, r)
	}
	z.Records = recs
}

// parseRecord reads the rdata of a GSLB record: a policy and key=value options.
func parseRecord(fields []string) (*Record, error) {
	r := &Record{Policy: strings.ToLower(fields[0]), Options: map[string]string{}}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		k = strings.ToLower(k)
		if !ok {
			v = "true"
		}
		if _, dup := r.Options[k]; dup || k == "pools" && r.Pools != nil {
			return nil, fmt.Errorf("option %s given twice", k)
		}
		if k != "pools" {
			r.Options[k] = v
			continue
		}
		for _, ref := range strings.Split(v, ",") {
			name, w, err := nameWeight(ref)
			if err != nil {
				return nil, fmt.Errorf("pools=: %w", err)
			}
			r.Pools = append(r.Pools, PoolRef{Name: name, Weight: w})
		}
	}
	if len(r.Pools) == 0 {
		return nil, errors.New("pools= is required")
	}
	return r, nil
}

// nameWeight splits "name@3" into its parts (weight 1 when absent).
func nameWeight(s string) (string, int, error) {
	name, ws, ok := strings.Cut(s, "@")
	if name == "" {
		return "", 0, fmt.Errorf("empty name in %q", s)
	}
	if !ok {
		return name, 1, nil
	}
	w, err := strconv.Atoi(ws)
	if err != nil || w < 0 || w > 1000000 {
		return "", 0, fmt.Errorf("bad weight %q in %q (want 0 to 1000000)", ws, s)
	}
	return name, w, nil
}

func (p *parser) directive(d directive) {
	if len(d.args) == 0 {
		p.errorf(d.pos, "%s needs a name", d.name)
		return
	}
	name := d.args[0]
	if !validName(name) {
		p.errorf(d.pos, "%s %q: names are letters, digits, '-', '_' and '.'", d.name, name)
		return
	}
	opts := map[string]string{}
	var order []string
	for _, a := range d.args[1:] {
		k, v, ok := strings.Cut(a, "=")
		k = strings.ToLower(k)
		if !ok {
			v = "true"
		}
		if _, dup := opts[k]; dup {
			p.errorf(d.pos, "%s %s: option %s given twice", d.name, name, k)
			return
		}
		opts[k] = v
		order = append(order, k)
	}
	var err error
	switch d.name {
	case "$REGION":
		err = p.region(d.pos, name, opts, order)
	case "$POOL":
		err = p.pool(d.pos, name, opts, order)
	default:
		err = errors.New("unknown directive")
	}
	if err != nil {
		p.errorf(d.pos, "%s %s: %v", d.name, name, err)
	}
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (p *parser) region(pos Pos, name string, opts map[string]string, order []string) error {
	r := &Region{Name: name, Pos: pos}
	_, hasLat := opts["lat"]
	_, hasLon := opts["lon"]
	if hasLat != hasLon {
		return errors.New("lat= and lon= go together")
	}
	for _, k := range order {
		v := opts[k]
		switch k {
		case "lat", "lon":
			f, err := strconv.ParseFloat(v, 64)
			limit := 90.0
			if k == "lon" {
				limit = 180
			}
			if err != nil || f < -limit || f > limit {
				return fmt.Errorf("%s=%q: want a number from %v to %v", k, v, -limit, limit)
			}
			if k == "lat" {
				r.Lat = f
			} else {
				r.Lon = f
			}
			r.HasCoords = true
		case "serves":
			if err := parseServes(r, v); err != nil {
				return fmt.Errorf("serves=: %w", err)
			}
		default:
			return fmt.Errorf("unknown option %q (want lat, lon, serves)", k)
		}
	}
	for _, o := range p.z.Regions {
		if o.Name == name {
			return fmt.Errorf("defined twice (first at %s)", o.Pos)
		}
	}
	p.z.Regions = append(p.z.Regions, r)
	return nil
}

// Continents are the continent codes GeoIP databases use.
var Continents = map[string]bool{"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true}

func parseServes(r *Region, v string) error {
	for _, s := range strings.Split(v, ",") {
		switch {
		case strings.Contains(s, "/"):
			pfx, err := parsePrefix(s)
			if err != nil {
				return err
			}
			r.Prefixes = append(r.Prefixes, pfx)
		case Continents[strings.ToUpper(s)] && s == strings.ToUpper(s):
			r.Continents = append(r.Continents, s)
		case len(s) == 2 && isAlpha(s):
			r.Countries = append(r.Countries, strings.ToUpper(s))
		default:
			return fmt.Errorf("%q is not a country code, continent code or CIDR prefix", s)
		}
	}
	return nil
}

func isAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func (p *parser) pool(pos Pos, name string, opts map[string]string, order []string) error {
	pl := &Pool{Name: name, Pos: pos}
	for _, o := range p.z.Pools {
		if o.Name == name {
			return fmt.Errorf("defined twice (first at %s)", o.Pos)
		}
	}
	pl.Region = opts["region"]
	if pl.Region == "" {
		return errors.New("region= is required")
	}
	if m, ok := opts["members"]; ok {
		seen := map[string]bool{}
		for _, s := range strings.Split(m, ",") {
			addrText, w, err := nameWeight(s)
			if err != nil {
				return fmt.Errorf("members=: %w", err)
			}
			a, err := parseAddr(addrText)
			if err != nil {
				return fmt.Errorf("members=: %w", err)
			}
			if seen[a.String()] {
				return fmt.Errorf("members=: %s listed twice", a)
			}
			seen[a.String()] = true
			pl.Members = append(pl.Members, Member{Addr: a, Weight: w})
		}
	}
	if c, ok := opts["cname"]; ok {
		if _, ok := dns.IsDomainName(c); !ok || !strings.HasSuffix(c, ".") {
			return fmt.Errorf("cname=%q: want a fully qualified name ending in '.'", c)
		}
		pl.CNAME = dns.CanonicalName(c)
	}
	if len(pl.Members) == 0 && pl.CNAME == "" {
		return errors.New("members= (or cname=) is required")
	}
	ck, err := parseCheck(opts, order)
	if err != nil {
		return err
	}
	if ck.Scheme == "dns" && ck.QName == "" {
		ck.QName = p.z.Origin // a dns check asks for the zone's own name by default
	}
	pl.Check = ck
	p.z.Pools = append(p.z.Pools, pl)
	return nil
}

// parseCheck reads check= and its options, filling in defaults.
func parseCheck(opts map[string]string, order []string) (Check, error) {
	var c Check
	for _, k := range order {
		switch k {
		case "region", "members", "cname", "check", "interval", "timeout", "fails", "passes",
			"expect", "body", "host", "sni", "insecure", "method", "qname", "quorum":
		default:
			return c, fmt.Errorf("unknown option %q", k)
		}
	}
	url, ok := opts["check"]
	if !ok || url == "none" {
		for _, k := range []string{"interval", "timeout", "fails", "passes", "expect", "body", "host", "sni", "insecure", "method", "qname"} {
			if _, set := opts[k]; set {
				return c, fmt.Errorf("%s= needs check=", k)
			}
		}
		return c, nil
	}
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return c, fmt.Errorf("check=%q: want tcp://, http://, https:// or dns:// URL", url)
	}
	c.Scheme = strings.ToLower(scheme)
	hostport, path, _ := strings.Cut(rest, "/")
	c.Path = "/" + path
	defPort := map[string]uint16{"tcp": 0, "http": 80, "https": 443, "dns": 53}
	dp, known := defPort[c.Scheme]
	if !known {
		return c, fmt.Errorf("check=%q: unknown scheme %q (want tcp, http, https, dns)", url, scheme)
	}
	host, portText := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host, portText = hostport[:i], hostport[i+1:]
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	c.Host = host
	c.Port = dp
	if portText != "" {
		n, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || n == 0 {
			return c, fmt.Errorf("check=%q: bad port %q", url, portText)
		}
		c.Port = uint16(n)
	}
	if c.Port == 0 {
		return c, fmt.Errorf("check=%q: a port is required", url)
	}
	if (c.Scheme == "tcp" || c.Scheme == "dns") && path != "" {
		return c, fmt.Errorf("check=%q: %s checks take no path", url, c.Scheme)
	}
	c.Interval, c.Fails, c.Passes = DefaultInterval, DefaultFails, DefaultPasses
	var err error
	if v, ok := opts["interval"]; ok {
		if c.Interval, err = time.ParseDuration(v); err != nil || c.Interval < MinInterval {
			return c, fmt.Errorf("interval=%q: want a duration of at least %v", v, MinInterval)
		}
	}
	c.Timeout = min(c.Interval/2, 2*time.Second)
	if v, ok := opts["timeout"]; ok {
		if c.Timeout, err = time.ParseDuration(v); err != nil || c.Timeout <= 0 || c.Timeout >= c.Interval {
			return c, fmt.Errorf("timeout=%q: want a duration above 0 and below interval (%v)", v, c.Interval)
		}
	}
	for _, k := range []string{"fails", "passes"} {
		v, ok := opts[k]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return c, fmt.Errorf("%s=%q: want 1 to 100", k, v)
		}
		if k == "fails" {
			c.Fails = n
		} else {
			c.Passes = n
		}
	}
	httpOnly := func(k string) error {
		if c.Scheme != "http" && c.Scheme != "https" {
			return fmt.Errorf("%s= applies to http and https checks only", k)
		}
		return nil
	}
	switch c.Scheme {
	case "http", "https":
		c.ExpectMin, c.ExpectMax, c.Method = 200, 399, "GET"
	}
	if v, ok := opts["expect"]; ok {
		switch c.Scheme {
		case "http", "https":
			lo, hi, ok := strings.Cut(v, "-")
			if !ok {
				hi = lo
			}
			a, e1 := strconv.Atoi(lo)
			b, e2 := strconv.Atoi(hi)
			if e1 != nil || e2 != nil || a < 100 || b > 599 || a > b {
				return c, fmt.Errorf("expect=%q: want a status or range such as 200-299", v)
			}
			c.ExpectMin, c.ExpectMax = a, b
		case "dns":
			rc, ok := dns.StringToRcode[strings.ToUpper(v)]
			if !ok {
				return c, fmt.Errorf("expect=%q: want an rcode such as NOERROR or NXDOMAIN", v)
			}
			c.ExpectMin, c.ExpectMax = rc, rc
		default:
			return c, errors.New("expect= applies to http, https and dns checks")
		}
	}
	for _, k := range []string{"body", "host", "method"} {
		v, ok := opts[k]
		if !ok {
			continue
		}
		if err := httpOnly(k); err != nil {
			return c, err
		}
		switch k {
		case "body":
			if len(v) == 0 || len(v) > 5120 {
				return c, fmt.Errorf("body=: want 1 to 5120 bytes")
			}
			c.Body = v
		case "host":
			c.HostHeader = v
		case "method":
			c.Method = strings.ToUpper(v)
			if c.Method != "GET" && c.Method != "HEAD" {
				return c, fmt.Errorf("method=%q: want GET or HEAD", v)
			}
		}
	}
	for _, k := range []string{"sni", "insecure"} {
		v, ok := opts[k]
		if !ok {
			continue
		}
		if c.Scheme != "https" {
			return c, fmt.Errorf("%s= applies to https checks only", k)
		}
		if k == "sni" {
			c.SNI = v
		} else if c.Insecure, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("insecure=%q: want true or false", v)
		}
	}
	if v, ok := opts["qname"]; ok {
		if c.Scheme != "dns" {
			return c, errors.New("qname= applies to dns checks only")
		}
		if _, ok := dns.IsDomainName(v); !ok {
			return c, fmt.Errorf("qname=%q: not a domain name", v)
		}
		c.QName = dns.Fqdn(v)
	}
	if v, ok := opts["quorum"]; ok {
		switch v {
		case "majority":
			c.Quorum = QuorumMajority
		case "any":
			c.Quorum = QuorumAny
		case "all":
			c.Quorum = QuorumAll
		default:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return c, fmt.Errorf("quorum=%q: want majority, any, all or a count", v)
			}
			c.Quorum = Quorum(n)
		}
	}
	return c, nil
}

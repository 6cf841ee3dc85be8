package dnsserver

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// DefaultMaxZoneSize is the largest zone file a Loader reads unless told
// otherwise: 256 MiB, room for several million records.
const DefaultMaxZoneSize = 256 << 20

// Loader keeps a set of zones loaded, from a directory (Load: every file
// named *.zone is one zone, named by its file name, "example.com.zone",
// unless the file sets $ORIGIN) or from memory (LoadSources: the zones a
// cluster committed). Each version of a zone is parsed once: an input whose
// size and modification time, or content hash, did not change is not read
// or parsed again, and neither is one that failed, until it changes. A zone
// that fails to load, link or compile keeps its previous version; a zone
// that never loaded is answered with SERVFAIL. Every failure is logged once,
// with FILE:LINE, and reported by Errors and the gslb_zones_failed metric.
// Loader's methods are safe for concurrent use.
type Loader struct {
	Dir string
	// MaxSize is the largest zone file read, in bytes (0:
	// DefaultMaxZoneSize).
	MaxSize int64
	// Env is what GSLB records are compiled against (health, geo
	// database, RTTs); its GeoCache is set on first use if nil.
	Env gslb.Env
	Log *slog.Logger

	mu      sync.Mutex
	current map[string]*loaded  // by input name (a file path, or a source name)
	failed  map[string]*failure // by input name: the version that failed
	set     *gslb.Set
	parses  uint64    // zone versions parsed
	last    *Snapshot // the last snapshot built: the next reuses its unchanged zones
}

type loaded struct {
	zone  *zones.Zone
	hash  [32]byte
	stamp stamp
}

// failure is an input version that did not load; it is not parsed again
// while its stamp or hash stays the same.
type failure struct {
	hash   [32]byte
	stamp  stamp
	err    error
	origin string
}

type stamp struct {
	mod  time.Time
	size int64
}

// Source is a zone handed to LoadSources: a name for messages ("the
// committed zone example.com."), the zone's origin, and its content: Data,
// or, when Open is set, what Open reads (a file, a stream from a store),
// so that a large zone need not be held in memory as a whole. Open is
// called once to hash the content and once more if it must be parsed; the
// loader closes each reader it opens.
type Source struct {
	Name   string
	Origin string
	Data   []byte
	Open   func() (io.ReadCloser, error)
}

// input is one zone to load: a file or a Source.
type input struct {
	name   string
	origin string // "" for files: from $ORIGIN or the file name
	stamp  stamp  // files only
	// hash reads the content's hash; parse parses it. A file is read
	// twice, as a stream both times, rather than held in memory whole.
	hash func() ([32]byte, error)
	// parse parses a new version of the zone prev (nil: none), sharing
	// with it what is the same (zones.ParseFrom).
	parse func(prev *zones.Zone) (*zones.Zone, error)
	file  bool
}

// ZoneFiles lists the zone files of dir in name order.
func ZoneFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".zone") && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// Load (re)reads the zone files of Dir that changed and returns the
// snapshot to serve and every new problem found. It never returns a nil
// snapshot.
func (l *Loader) Load() (*Snapshot, []error) {
	files, err := ZoneFiles(l.Dir)
	if err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.snapshotLocked(l.failedOrigins()), []error{fmt.Errorf("zones dir: %w", err)}
	}
	ins := make([]input, 0, len(files))
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue
		}
		f := f
		ins = append(ins, input{name: f, stamp: stampOf(st), file: true,
			hash:  func() ([32]byte, error) { return l.hashFile(f) },
			parse: func(prev *zones.Zone) (*zones.Zone, error) { return zones.LoadFrom(prev, f, "") }})
	}
	return l.load(ins)
}

// LoadSources loads exactly these zones (replacing whatever was loaded) and
// returns the snapshot to serve and every new problem found. Zones whose
// content did not change are neither parsed nor copied.
func (l *Loader) LoadSources(srcs []Source) (*Snapshot, []error) {
	ins := make([]input, 0, len(srcs))
	for _, s := range srcs {
		in := input{name: s.Name, origin: s.Origin,
			hash: func() ([32]byte, error) { return sha256.Sum256(s.Data), nil },
			parse: func(prev *zones.Zone) (*zones.Zone, error) {
				return zones.ParseFrom(prev, s.Data, s.Name, s.Origin, false)
			}}
		if s.Open != nil {
			in.hash = func() ([32]byte, error) {
				r, err := s.Open()
				if err != nil {
					return [32]byte{}, err
				}
				defer r.Close()
				return l.hashReader(r, s.Name)
			}
			in.parse = func(prev *zones.Zone) (*zones.Zone, error) {
				r, err := s.Open()
				if err != nil {
					return nil, err
				}
				defer r.Close()
				return zones.ParseReaderFrom(prev, r, s.Name, s.Origin, false)
			}
		}
		ins = append(ins, in)
	}
	return l.load(ins)
}

// hashFile returns the SHA-256 of a zone file of at most MaxSize bytes,
// reading it as a stream.
func (l *Loader) hashFile(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	return l.hashReader(f, path)
}

// hashReader returns the SHA-256 of what r reads, at most MaxSize bytes;
// name names the content in the error for more.
func (l *Loader) hashReader(r io.Reader, name string) ([32]byte, error) {
	var sum [32]byte
	max := l.MaxSize
	if max <= 0 {
		max = DefaultMaxZoneSize
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, max+1))
	if err != nil {
		return sum, err
	}
	if n > max {
		return sum, &zones.Error{Pos: zones.Pos{File: name}, Msg: fmt.Sprintf("larger than the zone size limit of %d bytes (zones_max_size); not loaded", max)}
	}
	h.Sum(sum[:0])
	return sum, nil
}

func (l *Loader) load(ins []input) (*Snapshot, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Log == nil {
		l.Log = slog.Default()
	}
	if l.failed == nil {
		l.failed = map[string]*failure{}
	}
	if len(l.current) > 0 {
		defer boundHeap()()
	}
	var errs []error
	next := map[string]*loaded{}
	nextFailed := map[string]*failure{}
	for _, in := range ins {
		prev := l.current[in.name]
		if in.file && prev != nil && prev.stamp == in.stamp {
			next[in.name] = prev
			continue
		}
		if f := l.failed[in.name]; in.file && f != nil && f.stamp == in.stamp {
			nextFailed[in.name] = f
			l.keepPrevious(in.name, prev, next)
			continue
		}
		h, err := in.hash()
		if err == nil {
			if prev != nil && prev.hash == h {
				next[in.name] = &loaded{zone: prev.zone, hash: h, stamp: in.stamp}
				continue
			}
			if f := l.failed[in.name]; f != nil && f.hash == h {
				f.stamp = in.stamp
				nextFailed[in.name] = f
				l.keepPrevious(in.name, prev, next)
				continue
			}
		}
		var z *zones.Zone
		if err == nil {
			l.parses++
			var pz *zones.Zone
			if prev != nil {
				pz = prev.zone
			}
			z, err = in.parse(pz)
		}
		if err != nil {
			errs = append(errs, err)
			origin := in.origin
			if origin == "" {
				origin = zones.OriginFromFile(in.name)
			}
			nextFailed[in.name] = &failure{hash: h, stamp: in.stamp, err: err, origin: origin}
			if prev != nil {
				l.Log.Error("zone failed to load; keeping the previous version", "zone", prev.zone.Origin, "serial", prev.zone.Serial(), "err", firstLines(err))
			} else {
				l.Log.Error("zone failed to load", "zone", origin, "err", firstLines(err))
			}
			l.keepPrevious(in.name, prev, next)
			continue
		}
		for _, w := range z.Warnings {
			l.Log.Warn("zone warning", "warning", w.Error())
		}
		if prev != nil && prev.zone.Serial() == z.Serial() {
			l.Log.Warn("zone content changed but its SOA serial did not (secondaries will not see the change)", "zone", z.Origin, "serial", z.Serial())
		}
		next[in.name] = &loaded{zone: z, hash: h, stamp: in.stamp}
	}
	// Link and compile; a zone whose references fail falls back to its
	// previous version (or out), until the set is consistent.
	for round := 0; ; round++ {
		zs, byName := collect(next)
		err := zones.Link(zs)
		var set *gslb.Set
		if err == nil {
			set, err = gslb.CompileFrom(l.set, zs, l.env())
		}
		if err == nil {
			err = duplicateOrigins(zs)
		}
		if err == nil {
			l.current, l.failed, l.set = next, nextFailed, set
			return l.snapshotFrom(zs, set, l.failedOrigins()), errs
		}
		errs = append(errs, err)
		bad := filesIn(err, byName)
		if len(bad) == 0 || round > len(ins) {
			// Cannot attribute the problem: keep serving what we had.
			l.Log.Error("zone set inconsistent; keeping the previous zones", "err", firstLines(err))
			return l.snapshotLocked(l.failedOrigins()), errs
		}
		for _, name := range bad {
			l.Log.Error("zone does not fit with the others; keeping its previous version", "file", name, "err", firstLines(err))
			if prev := l.current[name]; prev != nil && prev != next[name] {
				next[name] = prev
			} else {
				nextFailed[name] = &failure{hash: next[name].hash, stamp: next[name].stamp, err: err, origin: next[name].zone.Origin}
				delete(next, name)
			}
		}
	}
}

// boundHeap makes the garbage collector keep the memory of a reload near
// what the node holds before it, plus a quarter (at least 32 MiB): the
// Go runtime's default (GOGC=100) lets the heap grow to twice the live
// heap before collecting, and the parse of a changed zone makes more
// garbage than the zone it leaves. It returns the function that restores
// the limit. The limit is soft: a reload that needs more memory gets it,
// at the cost of collections (at most half the CPU while over it).
//
// The limit is the process's: while loads of several Loaders overlap (an
// in-process cluster), the first sets it and the last restores it.
func boundHeap() (restore func()) {
	heapBound.Lock()
	defer heapBound.Unlock()
	heapBound.active++
	if heapBound.active > 1 {
		return releaseHeap
	}
	heapBound.prev = debug.SetMemoryLimit(-1)
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
		inUse := int64(s[0].Value.Uint64() - s[1].Value.Uint64())
		if limit := inUse + max(inUse/4, 32<<20); limit < heapBound.prev {
			debug.SetMemoryLimit(limit)
		}
	}
	return releaseHeap
}

// heapBound counts the loads running under boundHeap, and keeps the limit
// to restore when the last ends.
var heapBound struct {
	sync.Mutex
	active int
	prev   int64
}

// releaseHeap ends one boundHeap.
func releaseHeap() {
	heapBound.Lock()
	defer heapBound.Unlock()
	if heapBound.active--; heapBound.active == 0 {
		debug.SetMemoryLimit(heapBound.prev)
	}
}

// keepPrevious serves the previous version of a failed input, if any.
func (l *Loader) keepPrevious(name string, prev *loaded, next map[string]*loaded) {
	if prev != nil {
		next[name] = prev
	}
}

// failedOrigins are the zones that failed and have no version to serve.
// l.mu is held.
func (l *Loader) failedOrigins() []string {
	var out []string
	for name, f := range l.failed {
		if l.current[name] == nil {
			out = append(out, f.origin)
		}
	}
	return out
}

// firstLines shortens an error of many lines for a log line.
func firstLines(err error) string {
	s := err.Error()
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		return strings.Join(lines[:5], "\n") + fmt.Sprintf("\n(and %d more)", len(lines)-5)
	}
	return s
}

func stampOf(st os.FileInfo) stamp {
	if st == nil {
		return stamp{}
	}
	return stamp{st.ModTime(), st.Size()}
}

// Changed reports whether any zone file was added, removed or modified
// since the last Load.
func (l *Loader) Changed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	files, err := ZoneFiles(l.Dir)
	if err != nil {
		return false
	}
	seen := 0
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return true
		}
		if cur, ok := l.current[f]; ok && stampOf(st) == cur.stamp {
			seen++
			continue
		}
		if fl, ok := l.failed[f]; ok && stampOf(st) == fl.stamp {
			seen++
			continue
		}
		return true
	}
	return seen != len(l.inputsLocked())
}

// inputsLocked is every input name known, loaded or failed.
func (l *Loader) inputsLocked() map[string]bool {
	m := make(map[string]bool, len(l.current)+len(l.failed))
	for n := range l.current {
		m[n] = true
	}
	for n := range l.failed {
		m[n] = true
	}
	return m
}

// Errors returns the inputs that failed to load in their current version
// (a file path or source name) and why ("FILE:LINE: problem").
func (l *Loader) Errors() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) == 0 {
		return nil
	}
	m := make(map[string]string, len(l.failed))
	for n, f := range l.failed {
		m[n] = f.err.Error()
	}
	return m
}

// Parses returns how many zone versions have been parsed.
func (l *Loader) Parses() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parses
}

var (
	failedDesc = prometheus.NewDesc("gslb_zones_failed", "Zone inputs whose current version failed to load (the previous version, if any, is served).", nil, nil)
	parsesDesc = prometheus.NewDesc("gslb_zone_parses_total", "Zone versions parsed (an unchanged zone is not parsed again).", nil, nil)
	loadedDesc = prometheus.NewDesc("gslb_zones_loaded", "Zones being served.", nil, nil)
)

// Describe implements prometheus.Collector.
func (l *Loader) Describe(ch chan<- *prometheus.Desc) {
	ch <- failedDesc
	ch <- parsesDesc
	ch <- loadedDesc
}

// Collect implements prometheus.Collector.
func (l *Loader) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	failed, parses, cur := len(l.failed), l.parses, len(l.current)
	l.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.GaugeValue, float64(failed))
	ch <- prometheus.MustNewConstMetric(parsesDesc, prometheus.CounterValue, float64(parses))
	ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, float64(cur))
}

// env returns l.Env with a GeoCache. l.mu is held.
func (l *Loader) env() gslb.Env {
	if l.Env.GeoCache == nil {
		l.Env.GeoCache = new(gslb.GeoCache)
	}
	return l.Env
}

// Zones returns the zones currently loaded.
func (l *Loader) Zones() []*zones.Zone {
	l.mu.Lock()
	defer l.mu.Unlock()
	zs, _ := collect(l.current)
	return zs
}

func (l *Loader) snapshotLocked(failed []string) *Snapshot {
	zs, _ := collect(l.current)
	return l.snapshotFrom(zs, l.set, failed)
}

// snapshotFrom builds the snapshot to serve, reusing the built form of
// every zone the last one had in the same version (the same *zones.Zone).
// l.mu is held.
func (l *Loader) snapshotFrom(zs []*zones.Zone, set *gslb.Set, failed []string) *Snapshot {
	if set == nil {
		set, _ = gslb.Compile(nil, gslb.Env{})
	}
	l.last = NewSnapshotFrom(l.last, zs, set, failed...)
	return l.last
}

func collect(m map[string]*loaded) ([]*zones.Zone, map[string]bool) {
	names := make([]string, 0, len(m))
	for f := range m {
		names = append(names, f)
	}
	sort.Strings(names)
	zs := make([]*zones.Zone, 0, len(names))
	byName := map[string]bool{}
	for _, f := range names {
		zs = append(zs, m[f].zone)
		byName[f] = true
	}
	return zs, byName
}

func duplicateOrigins(zs []*zones.Zone) error {
	seen := map[string]string{}
	var errs []error
	for _, z := range zs {
		if f, ok := seen[z.Origin]; ok {
			errs = append(errs, &zones.Error{Pos: zones.Pos{File: z.File}, Msg: fmt.Sprintf("zone %s is also loaded from %s", z.Origin, f)})
			continue
		}
		seen[z.Origin] = z.File
	}
	return errors.Join(errs...)
}

// filesIn returns the inputs that positioned errors in err point at.
func filesIn(err error, files map[string]bool) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(error)
	walk = func(e error) {
		switch v := e.(type) {
		case zones.Errors:
			for _, x := range v {
				walk(x)
			}
		case *zones.Error:
			if files[v.Pos.File] && !seen[v.Pos.File] {
				seen[v.Pos.File] = true
				out = append(out, v.Pos.File)
			}
		case interface{ Unwrap() []error }:
			for _, x := range v.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	sort.Strings(out)
	return out
}

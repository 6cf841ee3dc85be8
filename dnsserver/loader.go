package dnsserver

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// Loader keeps the zones of a directory loaded: every file named *.zone is
// one zone, named by its file name ("example.com.zone") unless the file sets
// $ORIGIN. A zone that fails to load, link or compile keeps its previous
// version; a zone that never loaded is answered with SERVFAIL.
// Loader's methods are safe for concurrent use.
type Loader struct {
	Dir string
	// Env is what GSLB records are compiled against (health, geo
	// database, RTTs); its GeoCache is set on first use if nil.
	Env gslb.Env
	Log *slog.Logger

	mu      sync.Mutex
	current map[string]*loaded // by file path
	set     *gslb.Set
}

type loaded struct {
	zone  *zones.Zone
	data  []byte
	stamp stamp
}

type stamp struct {
	mod  time.Time
	size int64
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

// Load (re)reads every zone file and returns the snapshot to serve and every
// problem found. It never returns a nil snapshot.
func (l *Loader) Load() (*Snapshot, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Log == nil {
		l.Log = slog.Default()
	}
	files, err := ZoneFiles(l.Dir)
	if err != nil {
		return l.snapshotLocked(nil), []error{fmt.Errorf("zones dir: %w", err)}
	}
	var errs []error
	next := map[string]*loaded{}
	var failed []string
	for _, f := range files {
		st, _ := os.Stat(f)
		data, err := os.ReadFile(f)
		var z *zones.Zone
		if err == nil {
			z, err = zones.Parse(data, f, "", true)
		}
		prev := l.current[f]
		if err != nil {
			errs = append(errs, err)
			if prev != nil {
				next[f] = prev
				l.Log.Error("zone failed to load; keeping the previous version", "file", f, "serial", prev.zone.Serial(), "err", err)
			} else {
				failed = append(failed, zones.OriginFromFile(f))
				l.Log.Error("zone failed to load", "file", f, "err", err)
			}
			continue
		}
		for _, w := range z.Warnings {
			l.Log.Warn("zone warning", "warning", w.Error())
		}
		if prev != nil && prev.zone.Serial() == z.Serial() && !bytes.Equal(prev.data, data) {
			l.Log.Warn("zone changed but its SOA serial did not; reloaded anyway", "file", f, "serial", z.Serial())
		}
		next[f] = &loaded{zone: z, data: data, stamp: stampOf(st)}
	}
	// Link and compile; a zone whose references fail falls back to its
	// previous version (or out), until the set is consistent.
	for round := 0; ; round++ {
		zs, byFile := collect(next)
		err := zones.Link(zs)
		var set *gslb.Set
		if err == nil {
			set, err = gslb.Compile(zs, l.env())
		}
		if err == nil {
			if dup := duplicateOrigins(zs); dup != nil {
				err = dup
			}
		}
		if err == nil {
			l.current, l.set = next, set
			return l.snapshotFrom(zs, set, failed), errs
		}
		errs = append(errs, err)
		bad := filesIn(err, byFile)
		if len(bad) == 0 || round > len(files) {
			// Cannot attribute the problem: keep serving what we had.
			l.Log.Error("zone set inconsistent; keeping the previous zones", "err", err)
			return l.snapshotLocked(failed), errs
		}
		for _, f := range bad {
			if prev := l.current[f]; prev != nil && prev != next[f] {
				next[f] = prev
			} else {
				delete(next, f)
				failed = append(failed, zones.OriginFromFile(f))
			}
		}
	}
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
		cur, ok := l.current[f]
		if !ok || err != nil || stampOf(st) != cur.stamp {
			return true
		}
		seen++
	}
	return seen != len(l.current)
}

// env returns l.Env with a GeoCache. l.mu is held.
func (l *Loader) env() gslb.Env {
	if l.Env.GeoCache == nil {
		l.Env.GeoCache = new(gslb.GeoCache)
	}
	return l.Env
}

// Rebuild makes a snapshot of the loaded zones anew, without reading
// files: for a new health view or new RTTs (h nil keeps the health view).
func (l *Loader) Rebuild(h gslb.Health) (*Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h != nil {
		l.Env.Health = h
	}
	zs, _ := collect(l.current)
	set, err := gslb.Compile(zs, l.env())
	if err != nil {
		return nil, err
	}
	l.set = set
	return l.snapshotFrom(zs, set, nil), nil
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

func (l *Loader) snapshotFrom(zs []*zones.Zone, set *gslb.Set, failed []string) *Snapshot {
	if set == nil {
		set, _ = gslb.Compile(nil, gslb.Env{})
	}
	return NewSnapshot(zs, set, failed...)
}

func collect(m map[string]*loaded) ([]*zones.Zone, map[string]bool) {
	files := make([]string, 0, len(m))
	for f := range m {
		files = append(files, f)
	}
	sort.Strings(files)
	zs := make([]*zones.Zone, 0, len(files))
	byFile := map[string]bool{}
	for _, f := range files {
		zs = append(zs, m[f].zone)
		byFile[f] = true
	}
	return zs, byFile
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

// filesIn returns the files that positioned errors in err point at.
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

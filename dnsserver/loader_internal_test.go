package dnsserver

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestReloadTouchesOnlyTheChangedZone: with several zones loaded, a reload
// after one file changed parses that file only and builds that zone only;
// the others are served from the same built form (ZL-02: the swap is still
// of a whole snapshot). The same holds for zones handed over in memory.
func TestReloadTouchesOnlyTheChangedZone(t *testing.T) {
	const tmpl = "$TTL 300\n@ IN SOA ns1 h %d 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A %s\n"
	dir := t.TempDir()
	names := []string{"a.example", "b.example", "c.example"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n+".zone"), []byte(fmt.Sprintf(tmpl, 1, "192.0.2.1")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := &Loader{Dir: dir}
	s1, errs := l.Load()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.example.zone"), []byte(fmt.Sprintf(tmpl, 2, "192.0.2.2")), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, errs := l.Load()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if p := l.Parses(); p != 4 {
		t.Errorf("%d zone versions parsed, want 4 (three, then the changed one)", p)
	}
	checkShared(t, s1, s2, map[string]bool{"a.example.": true, "b.example.": false, "c.example.": true})

	srcs := func(bAddr string) []Source {
		var out []Source
		for _, n := range names {
			addr := "192.0.2.1"
			if n == "b.example" {
				addr = bAddr
			}
			out = append(out, Source{Name: "committed zone " + n, Origin: n + ".", Data: []byte(fmt.Sprintf(tmpl, 1, addr))})
		}
		return out
	}
	m := &Loader{}
	s1, _ = m.LoadSources(srcs("192.0.2.1"))
	s2, _ = m.LoadSources(srcs("192.0.2.3"))
	if p := m.Parses(); p != 4 {
		t.Errorf("sources: %d zone versions parsed, want 4", p)
	}
	checkShared(t, s1, s2, map[string]bool{"a.example.": true, "b.example.": false, "c.example.": true})
}

// checkShared checks which zones s2 serves from the built form of s1.
func checkShared(t *testing.T, s1, s2 *Snapshot, want map[string]bool) {
	t.Helper()
	for o, shared := range want {
		z1, z2 := s1.zones[o], s2.zones[o]
		if z1 == nil || z2 == nil {
			t.Fatalf("%s not served", o)
		}
		if got := z1.zone == z2.zone; got != shared {
			t.Errorf("%s: built form shared = %v, want %v", o, got, shared)
		}
		if got := z1.src == z2.src; got != shared {
			t.Errorf("%s: *zones.Zone shared = %v, want %v", o, got, shared)
		}
	}
}

// TestZoneSizeLimit: a zone file larger than MaxSize is refused without
// being parsed, reported with its name, and answered SERVFAIL (ZL-03);
// once it fits, it loads.
func TestZoneSizeLimit(t *testing.T) {
	dir := t.TempDir()
	zone := "$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n"
	file := filepath.Join(dir, "big.example.zone")
	if err := os.WriteFile(file, []byte(zone+"; padding past the limit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Dir: dir, MaxSize: int64(len(zone))}
	s, errs := l.Load()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "larger than the zone size limit") {
		t.Fatalf("errors %v, want one about the size limit", errs)
	}
	if l.Parses() != 0 || l.Errors()[file] == "" || !s.broken("big.example.") {
		t.Errorf("parses %d, errors %v, broken %v: want the file refused unread and its zone failed", l.Parses(), l.Errors(), s.broken("big.example."))
	}
	if err := os.WriteFile(file, []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, errs = l.Load(); len(errs) != 0 || s.zones["big.example."] == nil {
		t.Errorf("after trimming the file: errors %v, zone served %v", errs, s.zones["big.example."] != nil)
	}
}

// TestReloadBoundsHeap (ZL-02): while a reload runs, the Go memory limit
// is a quarter (at least 32 MiB) above what the node holds, and after it
// the limit is what it was before, also when the reload fails and when
// two reloads overlap.
func TestReloadBoundsHeap(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	restore := boundHeap()
	during := debug.SetMemoryLimit(-1)
	// A second load overlapping the first (another Loader of the same
	// process) neither changes the limit nor restores it early.
	inner := boundHeap()
	if got := debug.SetMemoryLimit(-1); got != during {
		t.Errorf("limit during an overlapping reload %d, want %d", got, during)
	}
	inner()
	if got := debug.SetMemoryLimit(-1); got != during {
		t.Errorf("limit after the overlapping reload ended %d, want %d until the first ends", got, during)
	}
	restore()
	if during >= before || during < 32<<20 {
		t.Errorf("limit during a reload %d, want below the previous %d and at least 32 MiB", during, before)
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after a reload %d, want %d", got, before)
	}

	dir := t.TempDir()
	zf := filepath.Join(dir, "m.example.zone")
	if err := os.WriteFile(zf, []byte("$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Dir: dir}
	if _, errs := l.Load(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := os.WriteFile(zf, []byte("$TTL 300\n@ IN SOA ns1 h 2 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 300.1.1.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs := l.Load(); len(errs) == 0 {
		t.Fatal("a broken zone loaded")
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after a failed reload %d, want %d", got, before)
	}
}

// TestLoadSourcesOpen (ZL-01, ZL-02): a source given as a reader loads as
// the same content given as bytes; unchanged content is hashed, not parsed
// again; every reader opened is closed; content above MaxSize is refused
// unparsed, naming the source.
func TestLoadSourcesOpen(t *testing.T) {
	const text = "$TTL 300\n@ IN SOA ns1 h %d 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A 192.0.2.%d\n"
	opened, closed := 0, 0
	src := func(serial, last int) []Source {
		data := fmt.Sprintf(text, serial, last)
		return []Source{{Name: "stream o.example.", Origin: "o.example.", Open: func() (io.ReadCloser, error) {
			opened++
			return closeCounter{strings.NewReader(data), &closed}, nil
		}}}
	}
	l := &Loader{}
	s, errs := l.LoadSources(src(1, 1))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := s.Zones()["o.example."]; got != 1 {
		t.Errorf("serial %d, want 1", got)
	}
	if _, errs := l.LoadSources(src(1, 1)); len(errs) > 0 || l.Parses() != 1 {
		t.Errorf("unchanged content: %v, %d parses, want 1", errs, l.Parses())
	}
	s, errs = l.LoadSources(src(2, 9))
	if len(errs) > 0 || l.Parses() != 2 {
		t.Fatalf("changed content: %v, %d parses", errs, l.Parses())
	}
	rrs := s.zones["o.example."].get(s.zones["o.example."].lookup("www.o.example."), dns.TypeA)
	if len(rrs) != 1 || rrs[0].(*dns.A).A.String() != "192.0.2.9" {
		t.Errorf("www after the change: %v", rrs)
	}
	if opened != 5 || closed != opened {
		t.Errorf("%d readers opened, %d closed; want 5 (hash, parse, hash, hash, parse), all closed", opened, closed)
	}
	big := &Loader{MaxSize: 64}
	if _, errs := big.LoadSources(src(1, 1)); len(errs) == 0 || !strings.Contains(errs[0].Error(), "stream o.example.: larger than the zone size limit") || big.Parses() != 0 {
		t.Errorf("content above MaxSize: %v, %d parses", errs, big.Parses())
	}
}

type closeCounter struct {
	io.Reader
	n *int
}

func (c closeCounter) Close() error { *c.n++; return nil }

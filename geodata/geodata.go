// Package geodata tells what is known about a client address: its country,
// continent, subdivision, location and the database network that matched
// (whose length is the honest ECS scope of a geo decision). It reads any
// GeoIP2, GeoLite2 or DB-IP City or Country database in MaxMind DB format,
// and embeds a country-level database so that geo works with no download.
package geodata

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/gslbd/gslb/geodata/internal/countries"
)

// Info is what a database knows about one address or network.
type Info struct {
	Country     string // ISO 3166-1 alpha-2, "" when unknown
	Continent   string // AF AN AS EU NA OC SA, "" when unknown
	Subdivision string // the database's first (largest) subdivision code, e.g. "CA"; "" when unknown
	Lat, Lon    float64
	HasLocation bool
	// Network is the database network that matched. For an address that is
	// not in the database it is the enclosing empty network of the search
	// tree, so its Bits() is still the honest ECS scope.
	Network netip.Prefix
}

// DB is an open geo database with a per-record lookup cache. Lookup, Walk and
// Describe are safe for concurrent use; Close must not run concurrently with
// them.
type DB struct {
	r      *maxminddb.Reader
	label  string // what Describe says before the build date
	shared bool   // the embedded default: Close is a no-op
	cache  recordCache

	countOnce sync.Once
	count     int
	countErr  error
}

// Open opens a GeoIP2, GeoLite2 or DB-IP City or Country database (or any
// MaxMind DB whose records use the GeoIP2 layout and whose type says City or
// Country). The file is memory-mapped; call Close to release it.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // it would name the path a second time
		}
		return nil, fmt.Errorf("geodata: open %s: %w", path, err)
	}
	db, err := newDB(r, fmt.Sprintf("%s database %s", r.Metadata.DatabaseType, path))
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("geodata: open %s: %w", path, err)
	}
	return db, nil
}

// OpenBytes opens a database held in memory; b must not change afterwards.
// label names the database in Describe.
func OpenBytes(b []byte, label string) (*DB, error) {
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("geodata: open %s: %w", label, err)
	}
	db, err := newDB(r, label)
	if err != nil {
		return nil, fmt.Errorf("geodata: open %s: %w", label, err)
	}
	return db, nil
}

// ErrNotGeo is returned by Open for a database whose type is not a City or
// Country database (an ASN, ISP or anonymous-IP database, say).
var ErrNotGeo = errors.New("not a City or Country database")

func newDB(r *maxminddb.Reader, label string) (*DB, error) {
	t := strings.ToLower(r.Metadata.DatabaseType)
	switch {
	case strings.Contains(t, "city"), strings.Contains(t, "country"),
		strings.Contains(t, "enterprise"), strings.Contains(t, "location"):
	default:
		return nil, fmt.Errorf("database type %q: %w", r.Metadata.DatabaseType, ErrNotGeo)
	}
	db := &DB{r: r, label: label}
	return db, nil
}

// Close releases the database. Closing the embedded default does nothing.
func (db *DB) Close() error {
	if db.shared {
		return nil
	}
	return db.r.Close()
}

// Lookup returns what the database knows about a. IPv4-mapped IPv6
// addresses are looked up as IPv4 and any zone is ignored. An address that is
// not in the database gives an Info with empty Country and Continent, Network
// set to the enclosing empty network, and no error. Decoded records are
// cached per database record, so a hit costs one walk of the search tree,
// takes no lock and allocates nothing.
//
// Where a record has no country but a registered country, that is used; where
// it lacks a continent or a location but has a country, the continent and the
// country's approximate centre come from a built-in table.
func (db *DB) Lookup(a netip.Addr) (Info, error) {
	return db.lookup(a, true)
}

// lookup is Lookup; with cached false it decodes the record every time (for
// benchmarks).
func (db *DB) lookup(a netip.Addr, cached bool) (Info, error) {
	if !a.IsValid() {
		return Info{}, errors.New("geodata: lookup of an invalid address")
	}
	a = a.Unmap().WithZone("")
	if a.Is6() && db.r.Metadata.IPVersion == 4 {
		// An IPv4-only database knows nothing of IPv6.
		return Info{Network: netip.PrefixFrom(netip.IPv6Unspecified(), 0)}, nil
	}
	res := db.r.Lookup(a)
	if err := res.Err(); err != nil {
		return Info{}, fmt.Errorf("geodata: lookup %s: %w", a, err)
	}
	network := db.network(a, res)
	if !res.Found() {
		return Info{Network: network}, nil
	}
	var rec record
	var err error
	if cached {
		rec, err = db.cache.get(res)
	} else {
		rec, err = decode(res)
	}
	if err != nil {
		return Info{}, fmt.Errorf("geodata: lookup %s: %w", a, err)
	}
	info := rec.info()
	info.Network = network
	return info, nil
}

// network returns the prefix of the search-tree node where the lookup of a
// ended. The reader reports an IPv6 prefix for an IPv4 address whose walk
// ended above the IPv4 subtree (no IPv4 data at all) and, for an empty leaf
// of an IPv4-only database, the IPv4 depth as an IPv6 prefix; both are
// mapped back to the address family of a.
func (db *DB) network(a netip.Addr, res maxminddb.Result) netip.Prefix {
	p := res.Prefix()
	if p.Addr().Is4() == a.Is4() {
		return p
	}
	if db.r.Metadata.IPVersion == 4 && p.Bits() <= 32 {
		q, err := a.Prefix(p.Bits())
		if err == nil {
			return q
		}
	}
	// The walk stopped above ::/96: no IPv4 address is in the database.
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// Walk calls fn for every network of the database that holds a record, with
// Info.Network set, until fn returns false. IPv4 networks are reported once,
// as IPv4 prefixes, not again under their IPv6 aliases. It is meant for
// building a precomputed tree per snapshot; it does not fill the lookup cache.
func (db *DB) Walk(fn func(Info) bool) error {
	seen := make(map[uintptr]record)
	lastOff, last := ^uintptr(0), Info{} // networks in a row often share a record
	for res := range db.r.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("geodata: walk: %w", err)
		}
		if off := res.Offset(); off != lastOff {
			rec, ok := seen[off]
			if !ok {
				var err error
				rec, err = decode(res)
				if err != nil {
					return fmt.Errorf("geodata: walk: network %s: %w", res.Prefix(), err)
				}
				seen[off] = rec
			}
			lastOff, last = off, rec.info()
		}
		info := last
		info.Network = res.Prefix()
		if !fn(info) {
			return nil
		}
	}
	return nil
}

// Describe says which database this is, when it was built and how many
// networks it holds, e.g. "embedded country database (built 2026-06-17,
// 1010885 networks)". The first call counts the networks.
func (db *DB) Describe() string {
	db.countOnce.Do(func() {
		for res := range db.r.Networks() {
			if err := res.Err(); err != nil {
				db.countErr = err
				return
			}
			db.count++
		}
	})
	built := db.r.Metadata.BuildTime().UTC().Format("2006-01-02")
	if db.countErr != nil {
		return fmt.Sprintf("%s (built %s, unreadable: %v)", db.label, built, db.countErr)
	}
	return fmt.Sprintf("%s (built %s, %d networks)", db.label, built, db.count)
}

// record is the decoded part of one database record that Info carries.
type record struct {
	country, continent, subdivision string
	lat, lon                        float64
	hasLocation                     bool
}

func (r *record) info() Info {
	return Info{
		Country:     r.country,
		Continent:   r.continent,
		Subdivision: r.subdivision,
		Lat:         r.lat,
		Lon:         r.lon,
		HasLocation: r.hasLocation,
	}
}

// decode reads one record in the GeoIP2 City/Country layout.
func decode(res maxminddb.Result) (record, error) {
	var c geoip2.City
	if err := res.Decode(&c); err != nil {
		return record{}, err
	}
	rec := record{
		country:   strings.ToUpper(c.Country.ISOCode),
		continent: strings.ToUpper(c.Continent.Code),
	}
	if rec.country == "" {
		rec.country = strings.ToUpper(c.RegisteredCountry.ISOCode)
	}
	if len(c.Subdivisions) > 0 {
		rec.subdivision = c.Subdivisions[0].ISOCode
	}
	if c.Location.HasCoordinates() {
		rec.lat, rec.lon, rec.hasLocation = *c.Location.Latitude, *c.Location.Longitude, true
	}
	if t, ok := countries.Lookup(rec.country); ok {
		if rec.continent == "" {
			rec.continent = t.Continent
		}
		if !rec.hasLocation {
			rec.lat, rec.lon, rec.hasLocation = t.Lat, t.Lon, true
		}
	}
	return rec, nil
}

// recordCache maps a record's offset in the data section (which identifies
// the record: networks with equal data share one) to its decoded form. It is
// a fixed, two-way set-associative table of immutable entries behind atomic
// pointers: a hit takes no lock and writes no shared memory, so concurrent
// readers scale, and memory stays bounded (cacheSlots entries) even for a
// City database with hundreds of thousands of records. A miss decodes the
// record and may evict another, which is then decoded again when needed.
type recordCache struct {
	slots [cacheSlots]atomic.Pointer[cacheEntry]
}

const (
	cacheBits  = 14
	cacheSlots = 1 << cacheBits
)

type cacheEntry struct {
	off uintptr
	rec record
}

func (c *recordCache) get(res maxminddb.Result) (record, error) {
	off := res.Offset()
	i := int(mix(uint64(off))>>(64-cacheBits)) &^ 1 // the pair of slots i, i+1
	if e := c.slots[i].Load(); e != nil && e.off == off {
		return e.rec, nil
	}
	if e := c.slots[i+1].Load(); e != nil && e.off == off {
		return e.rec, nil
	}
	rec, err := decode(res)
	if err != nil {
		return record{}, err
	}
	e := &cacheEntry{off: off, rec: rec}
	switch {
	case c.slots[i].Load() == nil:
		c.slots[i].Store(e)
	case c.slots[i+1].Load() == nil:
		c.slots[i+1].Store(e)
	default:
		c.slots[i+int(off&1)].Store(e) // evict one of the two
	}
	return rec, nil
}

// mix is the 64-bit finaliser of MurmurHash3: offsets come in near-regular
// strides, which a plain multiplicative hash spreads over too few slots.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// len returns how many records the cache holds.
func (c *recordCache) len() int {
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

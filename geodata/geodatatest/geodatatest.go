// Package geodatatest writes small geo databases for tests, in the layout of
// GeoIP2 City databases, so that geo decisions can be tested against known
// data (documentation prefixes mapped to chosen countries, say).
package geodatatest

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/gslbd/gslb/geodata"
)

// Write writes a database of type "GeoIP2-City" to t.TempDir() and returns
// its path. Each key of nets is a network in CIDR form ("192.0.2.0/24",
// "2001:db8::/32") or a single address; its Info gives the record (Network is
// ignored; empty fields are left out of the record, and the location only
// goes in when HasLocation is set). Networks are inserted from the shortest
// prefix to the longest, so a more specific network overrides a wider one.
// Reserved and documentation networks are allowed.
func Write(t testing.TB, nets map[string]geodata.Info) string {
	t.Helper()
	return WriteType(t, "GeoIP2-City", nets)
}

// WriteType is Write with another database type ("GeoIP2-Country",
// "GeoIP2-ASN", ...), for tests of what a reader accepts.
func WriteType(t testing.TB, databaseType string, nets map[string]geodata.Info) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            databaseType,
		Description:             map[string]string{"en": "geodatatest database"},
		Languages:               []string{"en"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
		BuildEpoch:              1_700_000_000, // 2023-11-14: fixed, so files are reproducible
	})
	if err != nil {
		t.Fatalf("geodatatest: %v", err)
	}

	type entry struct {
		p    netip.Prefix
		info geodata.Info
	}
	entries := make([]entry, 0, len(nets))
	for s, info := range nets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				t.Fatalf("geodatatest: network %q: %v", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		entries = append(entries, entry{p.Masked(), info})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].p.Bits() != entries[j].p.Bits() {
			return entries[i].p.Bits() < entries[j].p.Bits()
		}
		return entries[i].p.Addr().Less(entries[j].p.Addr())
	})

	for _, e := range entries {
		ipnet := &net.IPNet{IP: e.p.Addr().AsSlice(), Mask: net.CIDRMask(e.p.Bits(), e.p.Addr().BitLen())}
		if err := tree.Insert(ipnet, Record(e.info)); err != nil {
			t.Fatalf("geodatatest: insert %s: %v", e.p, err)
		}
	}

	path := filepath.Join(t.TempDir(), "geo.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("geodatatest: %v", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatalf("geodatatest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("geodatatest: write %s: %v", path, err)
	}
	return path
}

// Record returns info as a record in the GeoIP2 City layout.
func Record(info geodata.Info) mmdbtype.Map {
	m := mmdbtype.Map{}
	if info.Country != "" {
		m["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(info.Country)}
	}
	if info.Continent != "" {
		m["continent"] = mmdbtype.Map{"code": mmdbtype.String(info.Continent)}
	}
	if info.Subdivision != "" {
		m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(info.Subdivision)}}
	}
	if info.HasLocation {
		m["location"] = mmdbtype.Map{
			"latitude":  mmdbtype.Float64(info.Lat),
			"longitude": mmdbtype.Float64(info.Lon),
		}
	}
	return m
}

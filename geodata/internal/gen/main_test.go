package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/gslbd/gslb/geodata"
)

// writeSource writes a database in the source's layout, {"country_code": CC}.
func writeSource(t *testing.T, nets map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "country ipvAll", RecordSize: 24, IncludeReservedNetworks: true, BuildEpoch: 1_781_700_000})
	if err != nil {
		t.Fatal(err)
	}
	for s, cc := range nets {
		_, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, mmdbtype.Map{"country_code": mmdbtype.String(cc)}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), srcFile)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

// The generator turns {"country_code"} records into the GeoIP2
// Country layout with continent and centre, merging equal neighbours.
func TestBuild(t *testing.T) {
	src := writeSource(t, map[string]string{
		"1.0.0.0/24":    "AU",
		"8.8.8.0/25":    "US",
		"8.8.8.128/25":  "US", // merged with its neighbour into 8.8.8.0/24
		"2.16.0.0/13":   "FR",
		"2001:200::/23": "JP",
	})
	out := filepath.Join(t.TempDir(), "default.mmdb")
	if err := build(src, out, Package); err != nil {
		t.Fatal(err)
	}
	db, err := geodata.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		addr string
		want geodata.Info
	}{
		{"1.0.0.1", geodata.Info{Country: "AU", Continent: "OC", Lat: -27, Lon: 133, HasLocation: true, Network: netip.MustParsePrefix("1.0.0.0/24")}},
		{"8.8.8.8", geodata.Info{Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true, Network: netip.MustParsePrefix("8.8.8.0/24")}},
		{"::ffff:2.17.0.1", geodata.Info{Country: "FR", Continent: "EU", Lat: 46, Lon: 2, HasLocation: true, Network: netip.MustParsePrefix("2.16.0.0/13")}},
		{"2001:200::1", geodata.Info{Country: "JP", Continent: "AS", Lat: 36, Lon: 138, HasLocation: true, Network: netip.MustParsePrefix("2001:200::/23")}},
	}
	for _, tc := range tests {
		got, err := db.Lookup(netip.MustParseAddr(tc.addr))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
		}
	}
	if d := db.Describe(); !strings.HasPrefix(d, "gslb-Country database ") || !strings.HasSuffix(d, "4 networks)") {
		t.Errorf("Describe() = %q, want a gslb-Country database of 4 networks", d)
	}
}

func TestBuildUnknownCountry(t *testing.T) {
	src := writeSource(t, map[string]string{"1.0.0.0/24": "AU", "1.0.1.0/24": "ZZ"})
	err := build(src, filepath.Join(t.TempDir(), "out.mmdb"), Package)
	if err == nil || !strings.Contains(err.Error(), `"ZZ" (1 networks)`) {
		t.Fatalf("build with an unknown country code: error %v, want one naming \"ZZ\"", err)
	}
}

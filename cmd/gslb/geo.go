package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"

	"github.com/gslbd/gslb/geodata"
)

func runGeo(args []string) int {
	return geo(args, os.Stdout, os.Stderr)
}

// geo prints, for every address, what the geo database knows about it: the
// database network that matched, country, continent, subdivision, location
// and which database answered.
func geo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("geo", "[--geoip FILE] IP...", "Prints what the geo database knows about each address.", stderr)
	path := fs.String("geoip", "", "GeoIP2/GeoLite2/DB-IP City or Country `FILE` (default: the embedded country database)")
	ips, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(ips) == 0 {
		fs.Usage()
		return 2
	}
	addrs := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			fmt.Fprintf(stderr, "gslb geo: bad address %q: want an IPv4 or IPv6 address\n", s)
			return 2
		}
		addrs = append(addrs, a)
	}

	var db *geodata.DB
	var err error
	if *path == "" {
		db, err = geodata.Default()
	} else {
		db, err = geodata.Open(*path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gslb geo: %v\n", err)
		return 1
	}
	defer db.Close()
	desc := db.Describe()

	for i, a := range addrs {
		in, err := db.Lookup(a)
		if err != nil {
			fmt.Fprintf(stderr, "gslb geo: %v\n", err)
			return 1
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintln(stdout, a)
		row := func(k, v string) { fmt.Fprintf(stdout, "  %-12s %s\n", k, v) }
		row("network", in.Network.String())
		if in.Country == "" && in.Continent == "" {
			row("country", "- (not in the database)")
		} else {
			row("country", orDash(in.Country))
		}
		row("continent", orDash(in.Continent))
		row("subdivision", orDash(in.Subdivision))
		if in.HasLocation {
			row("location", strconv.FormatFloat(in.Lat, 'f', 4, 64)+" "+strconv.FormatFloat(in.Lon, 'f', 4, 64))
		} else {
			row("location", "-")
		}
		row("database", desc)
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

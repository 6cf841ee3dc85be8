package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/dnssec"
)

// runDNSSEC is `gslb dnssec ds ZONE` and `gslb dnssec rollover ZONE STEP`.
func runDNSSEC(args []string) int {
	fs := newFlagSet("dnssec", "ds ZONE [--server ADDR]\nrollover ZONE prepublish|switch|remove [--role csk|ksk|zsk] [--admin ADDR] [--token TOKEN]",
		"ds prints the DS records (SHA-256) of a signed zone's KSK or CSK, read from the\nDNSKEY RRset a nameserver serves: what to give the parent zone's registrar.\n"+
			"rollover runs one step of a key rollover on a node (see docs/dnssec.md): prepublish\na new key, switch signing to it, remove the old one. Wait at least the DNSKEY TTL\n(3600 s) and the zone's largest TTL between steps, and update the DS at the\nparent between prepublish and remove.", os.Stderr)
	server := fs.String("server", "127.0.0.1:53", "DNS `ADDR` of a nameserver of the zone (ds)")
	admin := fs.String("admin", defaultServer(), "admin `ADDR` of a node (rollover; env GSLB_ADMIN)")
	token := tokenFlag(fs)
	role := fs.String("role", "", "the keys to roll: csk (default), or ksk or zsk for a zone with a split (rollover)")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case len(pos) == 2 && pos[0] == "ds":
		ds, err := dnssec.FetchDS(ctx, *server, pos[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "gslb dnssec ds:", err)
			return 1
		}
		for _, l := range ds {
			fmt.Println(l)
		}
		return 0
	case len(pos) == 3 && pos[0] == "rollover":
		keys, err := client(*admin, *token).Rollover(ctx, api.RolloverRequest{Zone: pos[1], Step: pos[2], Role: *role})
		if err != nil {
			fmt.Fprintln(os.Stderr, "gslb dnssec rollover:", err)
			return 1
		}
		for _, k := range keys {
			fmt.Printf("%s key %d alg %d %s\n  %s\n", k.Role, k.Tag, k.Algorithm, k.State, k.DS)
		}
		return 0
	}
	fs.Usage()
	return 2
}

// explainSigning is gslb explain's dnssec line: how the record's zone is
// signed.
func explainSigning(d *api.ExplainDNSSEC) string {
	if !d.Signed {
		return d.Zone + " not signed (DO=1 answers carry no RRSIG)"
	}
	var keys []string
	for _, k := range d.Keys {
		keys = append(keys, fmt.Sprintf("%s %d (%s)", k.Role, k.Tag, k.State))
	}
	s := fmt.Sprintf("%s signed online, keys %s", d.Zone, strings.Join(keys, ", "))
	for _, ds := range d.DS {
		s += "; DS " + strings.Join(strings.Fields(ds)[4:], " ")
	}
	return s
}

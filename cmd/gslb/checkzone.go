package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

func runCheckZone(args []string) int {
	return checkZone(args, os.Stdout, os.Stderr)
}

// checkZone loads every file, links them as one zone set and compiles their
// GSLB records, printing "FILE: OK (zone ORIGIN, serial N)" or every error.
func checkZone(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check-zone", "[--origin NAME] FILE...",
		"Checks zone files, together as one zone set, and prints OK or every error\nas FILE:LINE: problem.", stderr)
	origin := fs.String("origin", "", "zone `NAME`, when only one file is given and its name does not say it")
	files, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	if *origin != "" && len(files) > 1 {
		fmt.Fprintln(stderr, "gslb check-zone: -origin takes a single file")
		return 2
	}
	var zs []*zones.Zone
	bad := false
	for _, f := range files {
		z, err := zones.Load(f, *origin)
		if err != nil {
			printErrors(stderr, err)
			bad = true
			continue
		}
		for _, w := range z.Warnings {
			fmt.Fprintf(stderr, "warning: %v\n", w)
		}
		zs = append(zs, z)
	}
	if err := zones.Link(zs); err != nil {
		printErrors(stderr, err)
		bad = true
	} else if _, err := gslb.Compile(zs, gslb.Env{}); err != nil {
		printErrors(stderr, err)
		bad = true
	}
	if bad {
		return 1
	}
	for _, z := range zs {
		fmt.Fprintf(stdout, "%s: OK (zone %s, serial %d, %d records, %d GSLB records)\n",
			z.File, z.Origin, z.Serial(), z.RRs.Len(), len(z.Records))
	}
	return 0
}

func printErrors(w io.Writer, err error) {
	var list zones.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

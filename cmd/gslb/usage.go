package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet returns the flag set of `gslb NAME` with the usage every
// command prints for -h and --help (exit 0) and after a usage error (exit
// 2): the synopsis, what the command does, then its flags.
func newFlagSet(name, synopsis, about string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() { printUsage(fs, name, synopsis, about) }
	return fs
}

// printUsage prints "usage: gslb NAME SYNOPSIS" (a synopsis of several
// lines gets one "gslb NAME" per line), the about text and the flags.
func printUsage(fs *flag.FlagSet, name, synopsis, about string) {
	w := fs.Output()
	for i, line := range strings.Split(synopsis, "\n") {
		prefix := "usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintln(w, strings.TrimRight(prefix+"gslb "+name+" "+line, " "))
	}
	if about != "" {
		fmt.Fprintf(w, "\n%s\n", about)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
}

// parseFlags parses args that take no positional arguments. ok is false
// after -h (code 0) or a usage error (code 2).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	pos, code, ok := parseArgs(fs, args)
	if ok && len(pos) > 0 {
		fmt.Fprintf(fs.Output(), "gslb %s: unexpected argument %q\n", fs.Name(), pos[0])
		fs.Usage()
		return 2, false
	}
	return code, ok
}

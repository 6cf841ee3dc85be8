package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Set by the Makefile with -ldflags "-X main.version=... -X main.commit=...
// -X main.date=...". Left empty, they come from the module's build info:
// `go install ...@v1.2.3` records the version, a build in a git checkout
// records the commit and its time.
var (
	version string
	commit  string
	date    string
)

// buildInfo is what `gslb version` prints.
type buildInfo struct {
	Version, Commit, Date, Go string
	Modified                  bool
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fillBuild(&b, bi)
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// fillBuild completes b from the module build info where the linker flags
// left a field empty.
func fillBuild(b *buildInfo, bi *debug.BuildInfo) {
	if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.time":
			if b.Date == "" {
				b.Date = s.Value
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
}

func (b buildInfo) String() string {
	c := b.Commit
	if c == "" {
		c = "unknown"
	} else if len(c) > 12 {
		c = c[:12]
	}
	if b.Modified {
		c += "-dirty"
	}
	d := b.Date
	if d == "" {
		d = "unknown"
	}
	return fmt.Sprintf("gslb %s (commit %s, built %s, %s %s/%s)", b.Version, c, d, b.Go, runtime.GOOS, runtime.GOARCH)
}

func runVersion(args []string) int { return printVersion(args, os.Stdout, os.Stderr) }

func printVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", "Prints the version, commit, build date and Go version.", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(stdout, currentBuild())
	return 0
}

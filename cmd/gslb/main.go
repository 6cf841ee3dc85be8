// Command gslb is the global server load balancer: an authoritative DNS
// server that answers by geography, latency, failover and weight, with
// probers, a replicated store and a region proxy. See README.md and the
// manual in docs/.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/gslbd/gslb/demo"
)

// command is one subcommand: it gets its own arguments and returns the
// process exit code.
type command struct {
	run     func(args []string) int
	summary string
}

// commands is the explicit table of subcommands.
var commands map[string]command

func init() {
	// Assigned in init because completion reads the table (an
	// initialization cycle otherwise).
	commands = map[string]command{
		"serve":      {runServe, "run a node: DNS server (and the rest of the stack)"},
		"check-zone": {runCheckZone, "check zone files and print OK or every error"},
		"demo":       {demo.Run, "run a three-region cluster on loopback; demo kill|start REGION"},
		"geo":        {runGeo, "print what the geo database knows about an address"},
		"proxy":      {runProxy, "run only the region proxy (L7 HTTP / L4 TCP balancer)"},
		"status":     {runStatus, "show a node's view: cluster, zones, members with every prober's vote, RTTs"},
		"events":     {runEvents, "show recent health transitions"},
		"leave":      {runLeave, "make a node leave its cluster"},
		"drain":      {runOverride("drain"), "take a region, pool or member out of answers"},
		"undrain":    {runOverride("undrain"), "undo drain, force-up or force-down"},
		"force-up":   {runOverride("force-up"), "treat a region, pool or member as healthy whatever the probes say"},
		"force-down": {runOverride("force-down"), "treat a region, pool or member as down"},
		"explain":    {runExplain, "explain why a GSLB name answers what it answers for a client, step by step"},
		"secret":     {runSecret, "print a new random cluster secret"},
		"dnssec":     {runDNSSEC, "print a signed zone's DS records; run a key rollover step"},
		"version":    {runVersion, "print the version, commit, build date and Go version"},
		"completion": {runCompletion, "print a bash or zsh completion script"},
	}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage()
		return 0
	case "help": // gslb help [COMMAND]
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run([]string{"-h"})
			}
		}
		usage()
		return 0
	case "-v", "-version", "--version":
		return runVersion(nil)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "gslb: unknown command %q\n", args[0])
		usage()
		return 2
	}
	return c.run(args[1:])
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gslb COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'gslb COMMAND -h' for a command's flags; 'gslb --version' for the version.")
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gslbd/gslb/api"
)

// The operator commands talk to a node's admin listener.

func defaultServer() string {
	if s := os.Getenv("GSLB_ADMIN"); s != "" {
		return s
	}
	return "127.0.0.1:9153"
}

// ctlFlags is the flag set every operator command shares.
func ctlFlags(name, synopsis, about string) (fs *flag.FlagSet, server, token *string, asJSON *bool) {
	fs = newFlagSet(name, synopsis, about, os.Stderr)
	server = fs.String("server", defaultServer(), "admin `ADDR` of a node (env GSLB_ADMIN)")
	token = tokenFlag(fs)
	asJSON = fs.Bool("json", false, "print the raw JSON")
	return fs, server, token, asJSON
}

// tokenFlag is --token: the admin token (needed beyond loopback, and for
// writes when the node has one).
func tokenFlag(fs *flag.FlagSet) *string {
	return fs.String("token", os.Getenv("GSLB_ADMIN_TOKEN"), "admin `TOKEN` (env GSLB_ADMIN_TOKEN)")
}

func client(server, token string) *api.Client { return &api.Client{Server: server, Token: token} }

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns. ok is false after a usage error
// (code is the exit code: 0 for -h, 2 otherwise).
func parseArgs(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

// runStatus is `gslb status`: the node, the cluster, every member's
// verdict with each prober's vote, and the RTT matrix.
func runStatus(args []string) int {
	fs, server, token, asJSON := ctlFlags("status", "[--server ADDR] [--token TOKEN] [--json]",
		"Shows a node's view: Raft role, leader and quorum, zones and serials, regions,\nevery pool member with its verdict and each prober's vote, overrides, RTTs.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	st, raw, err := client(*server, *token).Status(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb status:", err)
		return 1
	}
	if *asJSON {
		os.Stdout.Write(raw)
		return 0
	}
	printStatus(os.Stdout, st)
	return 0
}

func printStatus(w io.Writer, st *api.Status) {
	fmt.Fprintf(w, "node %s, region %s, state index %d\n", st.Node, orDash(st.Region), st.StateIndex)
	if c := st.Cluster; c != nil {
		q := "yes"
		switch {
		case !c.CanApply:
			q = "NO: this node cannot write its state (" + c.ApplyError + "); answering from its last applied state"
		case !c.Quorum:
			q = "NO: answering from the last committed state and this node's own probes"
		}
		fmt.Fprintf(w, "cluster: %s, leader %s, term %d, commit index %d, quorum %s\n", c.Role, orDash(c.Leader), c.Term, c.CommitIndex, q)
		if c.Restoring {
			fmt.Fprintln(w, "state: RESTORING from this node's snapshot and log")
		}
		if c.Behind > 0 || !c.CanApply {
			fmt.Fprintf(w, "state: applied %d, leader committed %d: %d BEHIND (%d write errors)\n", c.AppliedIndex, c.LeaderCommitIndex, c.Behind, c.ApplyErrors)
		}
		var m []string
		for _, p := range c.Members {
			kind := "voter"
			if !p.Voter {
				kind = "non-voter"
			}
			if p.Leader {
				kind += ", leader"
			}
			seen := ""
			switch {
			case p.Self:
				seen = ", this node"
			case p.LastContact.IsZero():
				seen = ", last contact unknown here"
			default:
				ago := st.Time.Sub(p.LastContact)
				seen = fmt.Sprintf(", heard %s ago", ago.Round(time.Millisecond))
				if ago > notHeard {
					seen = fmt.Sprintf(", NOT HEARD FROM for %s", ago.Round(time.Second))
				}
			}
			m = append(m, fmt.Sprintf("%s (%s, %s%s)", p.ID, p.Addr, kind, seen))
		}
		fmt.Fprintf(w, "members:\n  %s\n", strings.Join(m, "\n  "))
	} else {
		fmt.Fprintln(w, "cluster: none (single node)")
	}
	var zs []string
	for z, s := range st.Zones {
		zs = append(zs, fmt.Sprintf("%s %d", z, s))
	}
	sort.Strings(zs)
	fmt.Fprintf(w, "zones: %s\n\n", strings.Join(zs, ", "))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tSTATE\tPROXY LOAD")
	for _, r := range st.Regions {
		state := "up"
		if r.Drained {
			state = "drained"
		} else if !r.Up {
			state = "DOWN"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, state, loadText(r.Load))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tMEMBER\tVERDICT\tPROBERS (vote, reason)")
	for _, p := range st.Pools {
		for _, m := range p.Members {
			verdict := "up"
			switch {
			case !m.Up:
				verdict = "DOWN"
			case !m.Known && m.Check != "":
				verdict = "up (not checked yet)"
			case m.Check == "":
				verdict = "up (no check)"
			}
			var votes []string
			for _, v := range m.Probers {
				s := fmt.Sprintf("%s:%s", v.Prober, upDownWord(v.Up))
				var notes []string
				if !v.Fresh {
					notes = append(notes, "stale")
				}
				if v.Suspect {
					notes = append(notes, "suspect")
				}
				if v.Reason != "" && !v.Up {
					notes = append(notes, v.Reason)
				}
				if len(notes) > 0 {
					s += "(" + strings.Join(notes, "; ") + ")"
				}
				votes = append(votes, s)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, m.Addr, verdict, strings.Join(votes, " "))
		}
	}
	tw.Flush()
	if len(st.Overrides) > 0 {
		fmt.Fprintln(w, "\noverrides:")
		for _, o := range st.Overrides {
			until := ""
			if !o.Until.IsZero() {
				until = " until " + o.Until.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "  %s %s %s%s\n", o.Action, o.Kind, o.Name, until)
		}
	}
	if len(st.RTT) > 0 {
		fmt.Fprintln(w, "\nRTT between regions (ms, smoothed / min):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FROM\tTO\tRTT")
		for _, r := range st.RTT {
			fmt.Fprintf(tw, "%s\t%s\t%.2f / %.2f\n", r.From, r.To, ms(r.EWMA), ms(r.Min))
		}
		tw.Flush()
	}
	if st.Proxy != nil {
		fmt.Fprintf(w, "\nregion proxy: healthy=%v\n", st.Proxy.Healthy)
		printSpill(w, st.Proxy.Spill)
	}
}

// notHeard is how long a member may be silent before status flags it
// (Raft heartbeats go several times a second).
const notHeard = 5 * time.Second

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func upDownWord(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// runEvents is `gslb events`: recent health transitions, oldest first.
func runEvents(args []string) int {
	fs, server, token, asJSON := ctlFlags("events", "[--server ADDR] [--token TOKEN] [--json]",
		"Shows recent health transitions, oldest first.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	evs, raw, err := client(*server, *token).Events(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "gslb events:", err)
		return 1
	}
	if *asJSON {
		os.Stdout.Write(raw)
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPROBER\tREGION\tTARGET\tCHANGE\tREASON")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s -> %s\t%s\n", e.Time.Format("15:04:05.000"), e.Prober, orDash(e.Region), e.Target, e.From, e.To, e.Reason)
	}
	tw.Flush()
	return 0
}

// overrideAbout says what each override command does, in its usage.
var overrideAbout = map[string]string{
	"drain":      "Takes a region, pool or member out of the answers of every node.",
	"undrain":    "Undoes drain, force-up or force-down.",
	"force-up":   "Treats a region, pool or member as healthy whatever the probes say.",
	"force-down": "Treats a region, pool or member as down whatever the probes say.",
}

// runOverride is `gslb drain|undrain|force-up|force-down region|pool|member NAME`.
func runOverride(action string) func([]string) int {
	return func(args []string) int {
		fs, server, token, _ := ctlFlags(action, "region|pool|member NAME [--for DURATION] [--server ADDR] [--token TOKEN]",
			overrideAbout[action]+"\nA member is an address (every pool that has it) or POOL/ADDRESS.")
		dur := fs.Duration("for", 0, "expire the override after `DURATION` (default: until undone)")
		pos, code, ok := parseArgs(fs, args)
		if !ok {
			return code
		}
		if len(pos) != 2 {
			fs.Usage()
			return 2
		}
		req := api.OverrideRequest{Kind: pos[0], Name: pos[1]}
		if *dur > 0 {
			req.For = dur.String()
		}
		if err := client(*server, *token).Override(context.Background(), action, req); err != nil {
			fmt.Fprintf(os.Stderr, "gslb %s: %v\n", action, err)
			return 1
		}
		fmt.Printf("%s %s %s: done\n", action, pos[0], pos[1])
		return 0
	}
}

// runLeave is `gslb leave`: the node at --server leaves its cluster.
func runLeave(args []string) int {
	fs, server, token, _ := ctlFlags("leave", "[--server ADDR] [--token TOKEN]",
		"Makes the node at --server leave its cluster. To rejoin, start it again with\na fresh data directory.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := client(*server, *token).Leave(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "gslb leave: %v\n", err)
		return 1
	}
	fmt.Println("left the cluster; start it again with a fresh data directory to rejoin")
	return 0
}

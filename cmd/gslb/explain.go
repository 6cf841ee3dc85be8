package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/node"
)

func runExplain(args []string) int {
	return explain(args, os.Stdout, os.Stderr)
}

// explain is `gslb explain NAME [TYPE] --client IP | --subnet PREFIX
// [--server ADDR] [--json]`: it asks a node's admin API why NAME answers
// what it answers, and prints the steps.
func explain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("explain", "NAME [A|AAAA] --client IP | --subnet PREFIX [--server ADDR] [--token TOKEN] [--json]",
		"Explains, step by step, why a node answers NAME as it does for the client.", stderr)
	server := fs.String("server", defaultServer(), "admin `ADDR` of a node (env GSLB_ADMIN)")
	clientIP := fs.String("client", "", "the client's `IP` address, as the source of a query")
	subnet := fs.String("subnet", "", "the client's `PREFIX`, as an EDNS client subnet (e.g. 192.0.2.0/24)")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	token := tokenFlag(fs)
	// Flags may come before, between or after NAME and TYPE.
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 || (*clientIP == "") == (*subnet == "") {
		fs.Usage()
		return 2
	}
	typ := "A"
	if len(pos) == 2 {
		typ = strings.ToUpper(pos[1])
	}
	if _, err := node.ParseFamily(typ); err != nil {
		fmt.Fprintf(stderr, "gslb explain: %v\n", err)
		return 2
	}
	if _, err := node.ParseClient(*clientIP, *subnet); err != nil {
		fmt.Fprintf(stderr, "gslb explain: %v\n", err)
		return 2
	}
	v := url.Values{"name": {pos[0]}, "type": {typ}}
	if *clientIP != "" {
		v.Set("client", *clientIP)
	} else {
		v.Set("subnet", *subnet)
	}
	var resp api.ExplainResponse
	raw, err := client(*server, *token).Do(context.Background(), "GET", "/api/v1/explain?"+v.Encode(), nil, &resp)
	if err != nil {
		fmt.Fprintf(stderr, "gslb explain: %v\n", err)
		return 1
	}
	if *asJSON {
		stdout.Write(raw)
		return 0
	}
	if resp.Explanation == nil {
		fmt.Fprintf(stderr, "gslb explain: node %s: empty explanation\n", *server)
		return 1
	}
	printExplain(stdout, &resp)
	return 0
}

// printExplain prints an explanation as numbered steps.
func printExplain(w io.Writer, r *api.ExplainResponse) {
	e := r.Explanation
	step := 0
	head := func(title string) {
		step++
		fmt.Fprintf(w, "\n%d. %s\n", step, title)
	}
	tab := func() *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

	fmt.Fprintf(w, "%s %s for %s/%d (state index %d)\n", r.Query, e.Type, e.Client.Addr, e.Client.Bits, r.StateIndex)

	head("Client")
	tw := tab()
	kind := "query source address"
	if int(e.Client.Bits) < e.Client.Addr.BitLen() {
		kind = "EDNS client subnet"
	}
	fmt.Fprintf(tw, "   address\t%s/%d (%s)\n", e.Client.Addr, e.Client.Bits, kind)
	if e.Client.GeoError != "" {
		fmt.Fprintf(tw, "   geo\t%s\n", e.Client.GeoError)
	} else {
		fmt.Fprintf(tw, "   network\t%s\n", orDash(e.Client.Network))
		fmt.Fprintf(tw, "   country\t%s\n", orDash(e.Client.Country))
		fmt.Fprintf(tw, "   continent\t%s\n", orDash(e.Client.Continent))
		if e.Client.Subdivision != "" {
			fmt.Fprintf(tw, "   subdivision\t%s\n", e.Client.Subdivision)
		}
		loc := "- (not located)"
		if e.Client.Located {
			loc = strconv.FormatFloat(e.Client.Lat, 'f', 4, 64) + " " + strconv.FormatFloat(e.Client.Lon, 'f', 4, 64)
		}
		fmt.Fprintf(tw, "   location\t%s\n", loc)
	}
	tw.Flush()

	head("Record")
	tw = tab()
	if len(r.Chain) > 1 {
		fmt.Fprintf(tw, "   followed\t%s\n", strings.Join(r.Chain, " -> "))
	}
	fmt.Fprintf(tw, "   record\t%s GSLB %s\n", e.Record, e.Policy)
	if d := r.DNSSEC; d != nil {
		fmt.Fprintf(tw, "   dnssec\t%s\n", explainSigning(d)) // dnssec.go
	}
	if len(e.Options) > 0 {
		var opts []string
		for _, k := range sortedKeys(e.Options) {
			opts = append(opts, k+"="+e.Options[k])
		}
		fmt.Fprintf(tw, "   options\t%s\n", strings.Join(opts, " "))
	}
	fmt.Fprintf(tw, "   defined at\t%s\n", orDash(e.Source))
	tw.Flush()

	if l := e.Latency; l != nil {
		head("Latency to the client network " + l.Network)
		if !l.Measured {
			fmt.Fprintf(w, "   %s\n", orDash(l.Note))
		}
		if len(l.RTTs) > 0 {
			tw = tab()
			fmt.Fprintln(tw, "   REGION\tRTT\t")
			for _, x := range l.RTTs {
				mark := ""
				if x.Region == l.Best {
					mark = "best"
				}
				fmt.Fprintf(tw, "   %s\t%s\t%s\n", x.Region, x.RTT.Round(10*time.Microsecond), mark)
			}
			tw.Flush()
			if !l.At.IsZero() {
				fmt.Fprintf(w, "   measured %s; the best changes only for a gain of %.0f%% and %s\n", l.At.UTC().Format(time.RFC3339), 100*l.Margin, l.MinGain)
			}
		}
	}

	if o := e.Order; o != nil {
		head(fmt.Sprintf("Region order (%s, for %s)", o.Source, o.Network))
		fmt.Fprintf(w, "   %s\n", o.Rule)
		if len(o.Regions) > 0 {
			tw = tab()
			fmt.Fprintln(tw, "   #\tREGION\tDISTANCE\tRTT\tWHY")
			for i, rs := range o.Regions {
				dist, rtt := "-", "-"
				if rs.DistanceKm > 0 {
					dist = fmt.Sprintf("%.0f km", rs.DistanceKm)
				}
				if rs.RTT > 0 {
					rtt = rs.RTT.Round(10 * time.Microsecond).String()
				}
				fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\t%s\n", i+1, rs.Region, dist, rtt, rs.Why)
			}
			tw.Flush()
		} else {
			fmt.Fprintln(w, "   (no region for this client)")
		}
		if o.RecordOrder {
			fmt.Fprintln(w, "   then the record's other pools, in record order")
		}
	}

	head("Pools in preference order")
	tw = tab()
	fmt.Fprintln(tw, "   POOL\tREGION\tWEIGHT\tSTATE\tMEMBER\tHEALTH\tVOTES")
	for _, p := range e.Pools {
		state := "up"
		switch {
		case !p.Candidate:
			state = "not a candidate"
		case !p.Up:
			state = "DOWN"
		}
		weight := strconv.Itoa(p.Weight)
		if p.Probability > 0 {
			weight += fmt.Sprintf(" (%.1f%%)", 100*p.Probability)
		}
		first := true
		row := func(member, health, votes string) {
			if first {
				fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Pool, p.Region, weight, state, member, health, votes)
				first = false
				return
			}
			fmt.Fprintf(tw, "   \t\t\t\t%s\t%s\t%s\n", member, health, votes)
		}
		for _, m := range p.Members {
			health := "up"
			if !m.Up {
				health = "DOWN"
			}
			if m.Weight != 1 {
				health += fmt.Sprintf(" w%d", m.Weight)
			}
			switch {
			case strings.HasPrefix(m.Verdict, "up") || strings.HasPrefix(m.Verdict, "down"):
				health += " (verdict " + m.Verdict + ")"
			case m.Verdict != "":
				health += " (" + m.Verdict + ")"
			}
			if m.Note != "" {
				health += "; " + m.Note
			}
			row(m.Addr.String(), health, formatVotes(m.Votes))
		}
		if len(p.Members) == 0 {
			row("-", "", "")
		}
	}
	tw.Flush()
	for _, p := range e.Pools {
		var extra []string
		if p.Why != "" {
			extra = append(extra, p.Why)
		}
		if p.Check != "" {
			extra = append(extra, "check "+p.Check)
		}
		if p.CNAME != "" {
			extra = append(extra, "cname "+p.CNAME)
		}
		if len(extra) > 0 {
			fmt.Fprintf(w, "   %s: %s\n", p.Pool, strings.Join(extra, "; "))
		}
	}

	head("Choice")
	tw = tab()
	if e.Choice.Pool != "" {
		fmt.Fprintf(tw, "   pool\t%s (region %s)\n", e.Choice.Pool, e.Choice.Region)
	}
	fmt.Fprintf(tw, "   rule\t%s\n", e.Choice.Rule)
	fmt.Fprintf(tw, "   why\t%s\n", e.Choice.Why)
	tw.Flush()

	head("Answer")
	tw = tab()
	a := e.Answer
	switch {
	case a.ServFail:
		fmt.Fprintf(tw, "   answer\tSERVFAIL\n")
	case a.CNAME != "":
		fmt.Fprintf(tw, "   answer\tCNAME %s\n", a.CNAME)
	case a.Random && len(a.Addrs) == 0:
		fmt.Fprintf(tw, "   answer\t(drawn per query)\n")
	case len(a.Addrs) == 0:
		fmt.Fprintf(tw, "   answer\tNOERROR, no %s records (NODATA)\n", e.Type)
	default:
		var s []string
		for _, x := range a.Addrs {
			s = append(s, x.String())
		}
		fmt.Fprintf(tw, "   answer\t%s %s\n", e.Type, strings.Join(s, ", "))
	}
	if a.Note != "" {
		fmt.Fprintf(tw, "   note\t%s\n", a.Note)
	}
	if !a.ServFail {
		fmt.Fprintf(tw, "   TTL\t%d: %s\n", a.TTL, a.TTLWhy)
		fmt.Fprintf(tw, "   ECS scope\t%s\n", a.ScopeWhy)
	}
	tw.Flush()
	for _, n := range e.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
}

func formatVotes(vs []api.Vote) string {
	var out []string
	for _, v := range vs {
		s := v.Prober + ":" + upDownWord(v.Up)
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
		if v.RTT > 0 && v.Up {
			notes = append(notes, v.RTT.Round(10*time.Microsecond).String())
		}
		if len(notes) > 0 {
			s += "(" + strings.Join(notes, "; ") + ")"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

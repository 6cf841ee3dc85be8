package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/probes"
)

// explainResponse is GET /api/v1/explain: the explanation of one GSLB
// answer, with the query name, the in-zone CNAMEs and wildcards followed to
// the record, and the state index the snapshot was built from.
type explainResponse struct {
	Query      string   `json:"query"`
	Chain      []string `json:"chain"` // the query name first, then each CNAME target
	StateIndex uint64   `json:"state_index"`
	*gslb.Explanation
}

// votes returns every prober's view of every target this node knows of,
// or nil with probes disabled.
func (n *node) votes() []probes.KeyView {
	if n.health == nil {
		return nil
	}
	return n.health.agg.Snapshot()
}

// explainHandler serves GET /api/v1/explain?name=NAME&type=A|AAAA and
// client=IP (a query's source address) or subnet=PREFIX (an ECS client
// subnet): why the GSLB record that answers NAME gives what it gives, from
// the snapshot being served, with each member's per-prober votes from votes
// (nil: none).
func explainHandler(snap func() *dnsserver.Snapshot, geo *geodata.DB, votes func() []probes.KeyView) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		name := strings.TrimSpace(q.Get("name"))
		if name == "" {
			httpError(w, http.StatusBadRequest, "name: required")
			return
		}
		fam, err := explainFamily(q.Get("type"))
		if err != nil {
			httpError(w, http.StatusBadRequest, "%v", err)
			return
		}
		c, err := explainClient(q.Get("client"), q.Get("subnet"))
		if err != nil {
			httpError(w, http.StatusBadRequest, "%v", err)
			return
		}
		s := snap()
		if s == nil || s.Set() == nil {
			httpError(w, http.StatusServiceUnavailable, "no snapshot is being served yet")
			return
		}
		rec, chain := s.GSLBRecord(name)
		if rec == nil {
			httpError(w, http.StatusNotFound, "name %q: no GSLB record answers it (names followed: %s)", name, strings.Join(chain, " -> "))
			return
		}
		e := rec.Explain(fam, c, geo)
		if votes != nil {
			addVotes(e, votes())
		}
		writeJSON(w, explainResponse{Query: name, Chain: chain, StateIndex: s.Index, Explanation: e})
	}
}

// explainFamily parses type=: A (the default) or AAAA.
func explainFamily(t string) (gslb.Family, error) {
	switch strings.ToUpper(strings.TrimSpace(t)) {
	case "", "A":
		return gslb.IPv4, nil
	case "AAAA":
		return gslb.IPv6, nil
	}
	return 0, fmt.Errorf("type: %q is not A or AAAA (GSLB records answer addresses)", t)
}

// explainClient parses client= (an address, as a query's source) or
// subnet= (a prefix, as an EDNS client subnet, RFC 7871): exactly one.
func explainClient(client, subnet string) (gslb.Client, error) {
	switch {
	case client != "" && subnet != "":
		return gslb.Client{}, fmt.Errorf("client=%q and subnet=%q: give one of them", client, subnet)
	case client != "":
		a, err := netip.ParseAddr(strings.TrimSpace(client))
		if err != nil || a.Zone() != "" {
			return gslb.Client{}, fmt.Errorf("client: %q is not an IP address", client)
		}
		a = a.Unmap()
		return gslb.Client{Addr: a, Bits: uint8(a.BitLen())}, nil
	case subnet != "":
		p, err := netip.ParsePrefix(strings.TrimSpace(subnet))
		if err != nil {
			return gslb.Client{}, fmt.Errorf("subnet: %q is not a prefix such as 192.0.2.0/24", subnet)
		}
		bits := p.Bits()
		if p.Addr().Is4In6() {
			if bits < 96 {
				return gslb.Client{}, fmt.Errorf("subnet: %q: an IPv4-mapped prefix needs /96 or longer", subnet)
			}
			bits -= 96
		}
		a := p.Addr().Unmap()
		p, _ = a.Prefix(bits)
		return gslb.Client{Addr: p.Addr(), Bits: uint8(bits)}, nil
	}
	return gslb.Client{}, fmt.Errorf("client or subnet: one is required")
}

// addVotes fills in each checked member's cluster verdict and every
// prober's vote, and says when the snapshot disagrees with the verdict.
func addVotes(e *gslb.Explanation, kvs []probes.KeyView) {
	byKey := make(map[string]probes.KeyView, len(kvs))
	for _, kv := range kvs {
		byKey[kv.Key] = kv
	}
	for i := range e.Pools {
		p := &e.Pools[i]
		for j := range p.Members {
			m := &p.Members[j]
			if p.Src == nil || p.Src.Check.Scheme == "" {
				m.Verdict = "not checked: always up"
				continue
			}
			kv, ok := byKey[probes.Target{Check: p.Src.Check, Addr: m.Addr}.Key()]
			if !ok || !kv.Known {
				m.Verdict = "unknown: no verdict yet, counts as up"
			} else {
				m.Verdict = "down"
				if kv.Up {
					m.Verdict = "up"
				}
				if !kv.Since.IsZero() {
					m.Verdict += " since " + kv.Since.UTC().Format(time.RFC3339)
				}
				switch {
				case kv.Up && !m.Up && m.Weight > 0:
					m.Note = joinNote(m.Note, "down in the snapshot although the verdict is up: an operator override (drain, force-down)")
				case !kv.Up && m.Up:
					m.Note = joinNote(m.Note, "up in the snapshot although the verdict is down: an operator override (force-up), or the snapshot predates the verdict")
				}
			}
			for _, pv := range kv.Probers {
				m.Votes = append(m.Votes, gslb.Vote{Prober: pv.Prober, Region: pv.Region, Up: pv.Up,
					Fresh: pv.Fresh, Suspect: pv.Suspect, Reason: pv.Reason, RTT: pv.RTT})
			}
		}
	}
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func runExplain(args []string) int {
	return explain(args, os.Stdout, os.Stderr)
}

// explain is `gslb explain NAME [TYPE] --client IP | --subnet PREFIX
// [--server ADDR] [--json]`: it asks a node's admin API why NAME answers
// what it answers, and prints the steps.
func explain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", defaultServer(), "admin `ADDR` of a node (env GSLB_ADMIN)")
	clientIP := fs.String("client", "", "the client's `IP` address, as the source of a query")
	subnet := fs.String("subnet", "", "the client's `PREFIX`, as an EDNS client subnet (e.g. 192.0.2.0/24)")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gslb explain NAME [A|AAAA] --client IP | --subnet PREFIX [--server ADDR] [--json]\n\nExplains, step by step, why a node answers NAME as it does for the client.")
		fs.PrintDefaults()
	}
	// Flags may come before, between or after NAME and TYPE.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) < 1 || len(pos) > 2 || (*clientIP == "") == (*subnet == "") {
		fs.Usage()
		return 2
	}
	typ := "A"
	if len(pos) == 2 {
		typ = strings.ToUpper(pos[1])
	}
	if _, err := explainFamily(typ); err != nil {
		fmt.Fprintf(stderr, "gslb explain: %v\n", err)
		return 2
	}
	if _, err := explainClient(*clientIP, *subnet); err != nil {
		fmt.Fprintf(stderr, "gslb explain: %v\n", err)
		return 2
	}
	v := url.Values{"name": {pos[0]}, "type": {typ}}
	if *clientIP != "" {
		v.Set("client", *clientIP)
	} else {
		v.Set("subnet", *subnet)
	}
	var resp explainResponse
	raw, err := adminGet(*server, "/api/v1/explain?"+v.Encode(), &resp)
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

// adminGet GETs path from a node's admin listener into v; an error reply's
// {"error": ...} message becomes the error.
func adminGet(server, path string, v any) ([]byte, error) {
	return adminDo(server, "GET", path, "", nil, v)
}

// adminDo sends one request to a node's admin listener (with the bearer
// token, if any) and decodes the JSON reply into v (if not nil).
func adminDo(server, method, path, token string, body []byte, v any) ([]byte, error) {
	c := &http.Client{Timeout: 20 * time.Second}
	req, err := http.NewRequest(method, "http://"+server+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", server, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(reply, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("node %s: %s", server, e.Error)
		}
		return nil, fmt.Errorf("node %s: %s: %s", server, resp.Status, strings.TrimSpace(string(reply)))
	}
	if v != nil {
		if err := json.Unmarshal(reply, v); err != nil {
			return nil, fmt.Errorf("node %s: %w", server, err)
		}
	}
	return reply, nil
}

// printExplain prints an explanation as numbered steps.
func printExplain(w io.Writer, r *explainResponse) {
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

func formatVotes(vs []gslb.Vote) string {
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

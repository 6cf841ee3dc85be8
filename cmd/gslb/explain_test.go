package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/node"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/zones"
)

const explainZone = `$ORIGIN example.com.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east  lat=39.04 lon=-77.49 serves=NA,SA
$REGION eu-west  lat=53.35 lon=-6.26  serves=EU,AF
$REGION ap-south lat=1.35  lon=103.82 serves=AS,OC
$POOL web-us  region=us-east  members=10.1.0.1,10.1.0.2,2001:db8:1::1 check=http://:80/healthz
$POOL web-eu  region=eu-west  members=10.2.0.1,2001:db8:2::1 check=http://:80/healthz
$POOL web-ap  region=ap-south members=10.3.0.1
www    30 IN GSLB geo pools=web-eu,web-us,web-ap
alias     IN CNAME www
*.svc  30 IN GSLB failover pools=web-us,web-eu
static    IN A 192.0.2.80
`

// downMembers is a Health with the listed members down.
type downMembers map[string]bool

func (d downMembers) Up(_ *zones.Pool, a netip.Addr) (bool, bool) { return !d[a.String()], true }

// explainFixture builds a snapshot of explainZone with 10.2.0.1 down, a
// geo database, and two probers' votes on the checked members.
func explainFixture(t *testing.T) (*dnsserver.Snapshot, *geodata.DB, func() []probes.KeyView) {
	t.Helper()
	path := geodatatest.Write(t, map[string]geodata.Info{
		"192.0.2.0/24":    {Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true},
		"198.51.100.0/24": {Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true},
		"2001:db8::/32":   {Country: "BR", Continent: "SA", Lat: -10, Lon: -55, HasLocation: true},
	})
	db, err := geodata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	z, err := zones.Parse([]byte(explainZone), "example.com.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	zs := []*zones.Zone{z}
	if err := zones.Link(zs); err != nil {
		t.Fatal(err)
	}
	set, err := gslb.Compile(zs, gslb.Env{Geo: db, Health: downMembers{"10.2.0.1": true}})
	if err != nil {
		t.Fatal(err)
	}
	snap := dnsserver.NewSnapshot(zs, set)
	snap.Index = 42
	since := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	var kvs []probes.KeyView
	for _, p := range z.Pools {
		if p.Check.Scheme == "" {
			continue
		}
		for _, m := range p.Members {
			up := m.Addr.String() != "10.2.0.1"
			reason := "HTTP 200"
			if !up {
				reason = "HTTP 503"
			}
			kv := probes.KeyView{Key: probes.Target{Check: p.Check, Addr: m.Addr}.Key(), Up: up, Known: true, Since: since}
			for _, pr := range []string{"n-eu", "n-us"} {
				kv.Probers = append(kv.Probers, probes.ProberView{Status: probes.Status{Up: up, Reason: reason, RTT: 1500 * time.Microsecond},
					Prober: pr, Region: strings.TrimPrefix(pr, "n-"), Fresh: true})
			}
			kvs = append(kvs, kv)
		}
	}
	return snap, db, func() []probes.KeyView { return kvs }
}

// TestExplainHandler: GET /api/v1/explain finds the GSLB record (directly,
// through an in-zone CNAME, by a wildcard), explains it from the served
// snapshot with each member's per-prober votes, and its answer is the
// record's Answer; bad requests are 400 naming the parameter, a name
// without a GSLB record 404.
func TestExplainHandler(t *testing.T) {
	snap, db, votes := explainFixture(t)
	srv := httptest.NewServer(node.ExplainHandler(func() *dnsserver.Snapshot { return snap }, db, votes))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		query  string
		code   int
		pool   string
		addrs  string
		chain  string
		scope  uint8
		errSub string
	}{
		{"DE client, eu-west down", "name=www.example.com&client=198.51.100.7", 200, "web-us", "10.1.0.1,10.1.0.2", "www.example.com.", 24, ""},
		{"US subnet", "name=www.example.com.&subnet=192.0.2.0/24", 200, "web-us", "10.1.0.1,10.1.0.2", "www.example.com.", 24, ""},
		{"AAAA, DE client", "name=www.example.com&type=aaaa&client=198.51.100.7", 200, "web-eu", "2001:db8:2::1", "www.example.com.", 24, ""},
		{"through a CNAME", "name=alias.example.com&client=192.0.2.1", 200, "web-us", "10.1.0.1,10.1.0.2", "alias.example.com.,www.example.com.", 24, ""},
		{"wildcard", "name=x.svc.example.com&client=192.0.2.1", 200, "web-us", "10.1.0.1,10.1.0.2", "x.svc.example.com.", 0, ""},
		{"static name", "name=static.example.com&client=192.0.2.1", 404, "", "", "", 0, "no GSLB record answers it"},
		{"outside the zones", "name=www.example.org&client=192.0.2.1", 404, "", "", "", 0, "no GSLB record"},
		{"no name", "client=192.0.2.1", 400, "", "", "", 0, "name: required"},
		{"no client", "name=www.example.com", 400, "", "", "", 0, "client or subnet: one is required"},
		{"both", "name=www.example.com&client=192.0.2.1&subnet=192.0.2.0/24", 400, "", "", "", 0, "give one of them"},
		{"bad client", "name=www.example.com&client=192.0.2", 400, "", "", "", 0, `client: "192.0.2" is not an IP address`},
		{"bad subnet", "name=www.example.com&subnet=192.0.2.0", 400, "", "", "", 0, `subnet: "192.0.2.0" is not a prefix`},
		{"bad type", "name=www.example.com&type=MX&client=192.0.2.1", 400, "", "", "", 0, `type: "MX" is not A or AAAA`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/api/v1/explain?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("GET ?%s: %d, want %d: %s", tc.query, resp.StatusCode, tc.code, body)
			}
			if tc.code != 200 {
				var eb struct{ Error string }
				if err := json.Unmarshal(body, &eb); err != nil || !strings.Contains(eb.Error, tc.errSub) {
					t.Errorf("GET ?%s: %s, want an error containing %q", tc.query, body, tc.errSub)
				}
				return
			}
			var er api.ExplainResponse
			if err := json.Unmarshal(body, &er); err != nil {
				t.Fatalf("GET ?%s: %v: %s", tc.query, err, body)
			}
			if er.Explanation == nil || er.StateIndex != 42 || strings.Join(er.Chain, ",") != tc.chain {
				t.Fatalf("GET ?%s: index %d chain %v, want 42 and %s: %s", tc.query, er.StateIndex, er.Chain, tc.chain, body)
			}
			e := er.Explanation
			if e.Choice.Pool != tc.pool || join(e.Answer.Addrs) != tc.addrs || e.Answer.Scope != tc.scope {
				t.Errorf("GET ?%s: pool %s answer %s scope %d, want %s %s %d", tc.query, e.Choice.Pool, join(e.Answer.Addrs), e.Answer.Scope, tc.pool, tc.addrs, tc.scope)
			}
			// The same as the record's own Answer.
			q, _ := url.ParseQuery(tc.query)
			rec, _ := snap.GSLBRecord(q.Get("name"))
			fam, _ := node.ParseFamily(q.Get("type"))
			c, _ := node.ParseClient(q.Get("client"), q.Get("subnet"))
			if a := rec.Answer(nil, fam, &c, nil); join(a.Addrs) != join(e.Answer.Addrs) || a.Scope != e.Answer.Scope || a.TTL != e.Answer.TTL {
				t.Errorf("GET ?%s: explained %s/%d/%d, Answer %s/%d/%d", tc.query, join(e.Answer.Addrs), e.Answer.Scope, e.Answer.TTL, join(a.Addrs), a.Scope, a.TTL)
			}
			// Votes: checked members have two, the unchecked pool none.
			for _, p := range e.Pools {
				for _, m := range p.Members {
					switch {
					case p.Pool == "web-ap":
						if m.Verdict != "not checked: always up" || len(m.Votes) != 0 {
							t.Errorf("%s %s: verdict %q votes %v", p.Pool, m.Addr, m.Verdict, m.Votes)
						}
					case m.Addr.String() == "10.2.0.1":
						if !strings.HasPrefix(m.Verdict, "down since 2026-11-24T01:00:00Z") || len(m.Votes) != 2 || m.Votes[0].Up || m.Votes[0].Reason != "HTTP 503" {
							t.Errorf("%s %s: verdict %q votes %+v", p.Pool, m.Addr, m.Verdict, m.Votes)
						}
					default:
						if !strings.HasPrefix(m.Verdict, "up since") || len(m.Votes) != 2 || !m.Votes[1].Up || m.Votes[1].Prober != "n-us" {
							t.Errorf("%s %s: verdict %q votes %+v", p.Pool, m.Addr, m.Verdict, m.Votes)
						}
					}
				}
			}
		})
	}
	// No snapshot yet: 503.
	empty := httptest.NewServer(node.ExplainHandler(func() *dnsserver.Snapshot { return nil }, db, nil))
	defer empty.Close()
	resp, err := http.Get(empty.URL + "/api/v1/explain?name=www.example.com&client=192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("no snapshot: %d, want 503", resp.StatusCode)
	}
}

// TestExplainCommand: `gslb explain` asks the admin API and prints the
// steps in order, --json the raw JSON; usage errors exit 2, an unknown
// name 1 with the node's error.
func TestExplainCommand(t *testing.T) {
	snap, db, votes := explainFixture(t)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/explain", node.ExplainHandler(func() *dnsserver.Snapshot { return snap }, db, votes))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings, in order
		stderr string
	}{
		{"geo, eu-west down", []string{"www.example.com", "--client", "198.51.100.7", "--server", addr}, 0, []string{
			"www.example.com A for 198.51.100.7/32 (state index 42)\n",
			"\n1. Client\n   address    198.51.100.7/32 (query source address)\n   network    198.51.100.0/24\n   country    DE\n   continent  EU\n   location   51.0000 9.0000\n",
			"\n2. Record\n   record      www.example.com. GSLB geo\n   defined at  example.com.zone:12\n",
			"\n3. Region order (geo, for 198.51.100.0/24)\n   regions that serve the client's continent EU, nearest first",
			"   #  REGION    DISTANCE  RTT  WHY\n   1  eu-west   1071 km   -    first: serves=EU (continent)\n   2  us-east   6528 km   -    by distance\n",
			"\n4. Pools in preference order\n   POOL    REGION    WEIGHT  STATE  MEMBER         HEALTH",
			"   web-eu  eu-west   1       DOWN   10.2.0.1       DOWN (verdict down since 2026-11-24T01:00:00Z)",
			"n-eu:down(HTTP 503) n-us:down(HTTP 503)\n",
			"   web-us  us-east   1       up     10.1.0.1       up (verdict up since 2026-11-24T01:00:00Z)",
			"n-eu:up(1.5ms) n-us:up(1.5ms)\n",
			"   web-ap  ap-south  1       up     10.3.0.1       up (not checked: always up)",
			"   web-eu: region eu-west is #1 in the order; check http://:80/healthz\n",
			"\n5. Choice\n   pool  web-us (region us-east)\n   rule  first healthy in region order\n   why   web-us (region us-east) is the first pool in the client's region order with a healthy A member; skipped (down): web-eu\n",
			"\n6. Answer\n   answer     A 10.1.0.1, 10.1.0.2\n   TTL        15: half the record's TTL 30: a member of the record's pools is down\n   ECS scope  /24: the geo map network 198.51.100.0/24",
		}, ""},
		{"flags first, AAAA, subnet, CNAME", []string{"--server", addr, "--subnet", "2001:db8::/48", "alias.example.com", "AAAA"}, 0, []string{
			"alias.example.com AAAA for 2001:db8::/48 (state index 42)\n",
			"   address    2001:db8::/48 (EDNS client subnet)\n",
			"   followed    alias.example.com. -> www.example.com.\n",
			"first: serves=SA (continent)",
			"   answer     AAAA 2001:db8:1::1\n",
			"   ECS scope  /32: the geo map network 2001:db8::/32",
		}, ""},
		{"json", []string{"x.svc.example.com", "--client", "192.0.2.1", "--server", addr, "--json"}, 0, []string{
			`"query": "x.svc.example.com"`, `"state_index": 42`, `"policy": "failover"`, `"rule": "first healthy in record order"`, `"addrs": [`,
		}, ""},
		{"unknown name", []string{"static.example.com", "--client", "192.0.2.1", "--server", addr}, 1, nil, `: name "static.example.com": no GSLB record answers it (names followed: static.example.com.)`},
		{"no client", []string{"www.example.com", "--server", addr}, 2, nil, "usage: gslb explain NAME"},
		{"bad type", []string{"www.example.com", "MX", "--client", "192.0.2.1", "--server", addr}, 2, nil, `type: "MX" is not A or AAAA`},
		{"bad client", []string{"www.example.com", "--client", "nope", "--server", addr}, 2, nil, `client: "nope" is not an IP address`},
		{"too many arguments", []string{"www.example.com", "A", "extra", "--client", "192.0.2.1"}, 2, nil, "usage:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := explain(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("gslb explain %s: exit %d, want %d; stderr: %s", strings.Join(tc.args, " "), code, tc.code, stderr.String())
			}
			out := stdout.String()
			rest := out
			for _, want := range tc.stdout {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("gslb explain %s: stdout lacks %q (in order); got:\n%s", strings.Join(tc.args, " "), want, out)
					break
				}
				rest = rest[i+len(want):]
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("gslb explain %s: stderr %q, want it to contain %q", strings.Join(tc.args, " "), stderr.String(), tc.stderr)
			}
			if testing.Verbose() && tc.name == "geo, eu-west down" {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func join(a []netip.Addr) string {
	var s []string
	for _, x := range a {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

// TestExplainMatchesDNS: for clients given as EDNS client subnets, the
// explanation served over HTTP says exactly what the DNS server answers
// over UDP on loopback: the same addresses, TTL and ECS scope.
func TestExplainMatchesDNS(t *testing.T) {
	_, db, votes := explainFixture(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(explainZone), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{Geo: db, Health: downMembers{"10.2.0.1": true}}, true)
	web := httptest.NewServer(node.ExplainHandler(dnsSrv.Snapshot, db, votes))
	defer web.Close()
	for _, tc := range []struct{ name, typ, subnet string }{
		{"www.example.com.", "A", "198.51.100.0/24"},
		{"www.example.com.", "A", "192.0.2.0/24"},
		{"www.example.com.", "A", "192.0.0.0/16"},
		{"www.example.com.", "AAAA", "2001:db8::/48"},
		{"www.example.com.", "AAAA", "198.51.100.0/24"},
		{"alias.example.com.", "A", "198.51.100.0/24"},
		{"x.svc.example.com.", "A", "203.0.113.0/24"},
		{"x.svc.example.com.", "AAAA", "2001:db8::/56"},
	} {
		t.Run(tc.name+"/"+tc.typ+"/"+tc.subnet, func(t *testing.T) {
			p := netip.MustParsePrefix(tc.subnet)
			m := new(dns.Msg)
			m.SetQuestion(tc.name, dns.StringToType[tc.typ])
			m.RecursionDesired = false
			m.SetEdns0(1232, false)
			ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
			if p.Addr().Is6() {
				ecs.Family = 2
			}
			m.IsEdns0().Option = append(m.IsEdns0().Option, ecs)
			r := dnstest.Exchange(t, dnsSrv.Addr, "udp", m)
			var got []string
			var ttl uint32
			for _, rr := range r.Answer {
				switch v := rr.(type) {
				case *dns.A:
					got, ttl = append(got, v.A.String()), v.Hdr.Ttl
				case *dns.AAAA:
					got, ttl = append(got, v.AAAA.String()), v.Hdr.Ttl
				}
			}
			var scope uint8
			if o := r.IsEdns0(); o != nil {
				for _, opt := range o.Option {
					if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
						scope = e.SourceScope
					}
				}
			}

			resp, err := http.Get(web.URL + "/api/v1/explain?" + url.Values{"name": {tc.name}, "type": {tc.typ}, "subnet": {tc.subnet}}.Encode())
			if err != nil {
				t.Fatal(err)
			}
			var er api.ExplainResponse
			err = json.NewDecoder(resp.Body).Decode(&er)
			resp.Body.Close()
			if err != nil || er.Explanation == nil {
				t.Fatalf("explain: %v", err)
			}
			a := er.Answer
			if join(a.Addrs) != strings.Join(got, ",") || a.Scope != scope || len(got) > 0 && a.TTL != ttl {
				t.Errorf("%s/%s ECS %s: DNS answers %v TTL %d scope %d; explain says %s TTL %d scope %d",
					tc.name, tc.typ, tc.subnet, got, ttl, scope, join(a.Addrs), a.TTL, a.Scope)
			}
			t.Logf("%s/%s ECS %s: %v TTL %d scope /%d (%s)", tc.name, tc.typ, tc.subnet, got, ttl, scope, er.Choice.Why)
		})
	}
}

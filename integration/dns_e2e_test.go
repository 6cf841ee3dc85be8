//go:build e2e

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

const exampleZone = "../examples/zones/example.com.zone"

// startExample serves the README's example zone with the real binary.
func startExample(t *testing.T) (*proc, string, string) {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, exampleZone, dir)
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--nsid", "e2e-node", "--zones-poll", "0", "--probes=false")
	return p, p.ready["dns"], dir
}

// TestDig queries the binary with dig and kdig, over UDP and TCP, and checks
// what an operator sees (DNS-01..06, 11, 26, 39, NSID).
func TestDig(t *testing.T) {
	need(t, "dig", "kdig")
	_, addr, _ := startExample(t)
	type tc struct {
		name   string
		args   []string
		status string
		flags  []string // must be set
		unset  []string // must not be set
		answer []string
		auth   []string
	}
	negSOA := "example.com. 60 IN SOA ns1.example.com. hostmaster.example.com. 2026112301 3600 600 1209600 60"
	cases := []tc{
		{"DNS-01 SOA +norec +noedns", []string{"example.com", "SOA", "+norec", "+noedns"}, "NOERROR", []string{"qr", "aa"}, []string{"rd", "ra"},
			[]string{"example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 2026112301 3600 600 1209600 60"}, nil},
		{"DNS-02 RD copied, RA never", []string{"mail.example.com", "A"}, "NOERROR", []string{"qr", "aa", "rd"}, []string{"ra"},
			[]string{"mail.example.com. 300 IN A 192.0.2.25"}, nil},
		{"DNS-03 NODATA", []string{"mail.example.com", "AAAA", "+norec"}, "NOERROR", []string{"aa"}, nil, nil, []string{negSOA}},
		{"DNS-04 NXDOMAIN", []string{"nope.example.com", "A", "+norec"}, "NXDOMAIN", []string{"aa"}, nil, nil, []string{negSOA}},
		{"DNS-06 REFUSED outside the zones", []string{"example.org", "A", "+norec"}, "REFUSED", nil, []string{"aa"}, nil, nil},
		{"DNS-11 CNAME into a GSLB record", []string{"docs.example.com", "A", "+norec"}, "NOERROR", []string{"aa"}, nil,
			[]string{"docs.example.com. 300 IN CNAME www.example.com.", "www.example.com. 30 IN A 192.0.2.10", "www.example.com. 30 IN A 192.0.2.11",
				"www.example.com. 30 IN A 198.51.100.10", "www.example.com. 30 IN A 203.0.113.10", "www.example.com. 30 IN A 203.0.113.11"}, nil},
		{"GSLB all, AAAA", []string{"www.example.com", "AAAA", "+norec"}, "NOERROR", []string{"aa"}, nil,
			[]string{"www.example.com. 30 IN AAAA 2001:db8:1::10", "www.example.com. 30 IN AAAA 2001:db8:2::10"}, nil},
		{"GSLB answers=1", []string{"static.example.com", "A", "+norec"}, "NOERROR", []string{"aa"}, nil,
			[]string{"static.example.com. 30 IN A 198.51.100.10"}, nil},
	}
	for _, tool := range []string{"dig", "kdig"} {
		for _, transport := range []string{"+notcp", "+tcp"} {
			for _, c := range cases {
				t.Run(tool+" "+transport+" "+c.name, func(t *testing.T) {
					r := runDig(t, tool, addr, append(c.args, transport)...)
					if r.Status != c.status {
						t.Fatalf("status %q, want %s\n%s", r.Status, c.status, r.Raw)
					}
					for _, f := range c.flags {
						if !r.flag(f) {
							t.Errorf("flag %s not set (flags %v)", f, r.Flags)
						}
					}
					for _, f := range c.unset {
						if r.flag(f) {
							t.Errorf("flag %s set (flags %v)", f, r.Flags)
						}
					}
					check := func(name string, got, want []string) {
						if want == nil {
							return
						}
						g, w := slices.Clone(got), slices.Clone(want)
						slices.Sort(g)
						slices.Sort(w)
						if !slices.Equal(g, w) {
							t.Errorf("%s section\n got %q\nwant %q\n%s", name, g, w, r.Raw)
						}
					}
					check("ANSWER", r.Sections["ANSWER"], c.answer)
					check("AUTHORITY", r.Sections["AUTHORITY"], c.auth)
				})
			}
		}
	}
	t.Run("DNS-01 no OPT without EDNS", func(t *testing.T) {
		r := runDig(t, "dig", addr, "example.com", "SOA", "+norec", "+noedns")
		if strings.Contains(r.Raw, "OPT PSEUDOSECTION") {
			t.Errorf("OPT in reply to a query without EDNS:\n%s", r.Raw)
		}
	})
	t.Run("NSID and DNS-26 EDNS", func(t *testing.T) {
		r := runDig(t, "dig", addr, "example.com", "SOA", "+nsid")
		if r.NSID != "e2e-node" || !strings.Contains(r.Raw, "udp: 1232") {
			t.Errorf("NSID %q; want e2e-node and udp 1232:\n%s", r.NSID, r.Raw)
		}
	})
	t.Run("DNS-39 ECS echoed with scope 0 for static data", func(t *testing.T) {
		r := runDig(t, "dig", addr, "mail.example.com", "A", "+subnet=198.51.100.0/24")
		if r.Subnet != "198.51.100.0/24/0" {
			t.Errorf("subnet %q, want 198.51.100.0/24/0:\n%s", r.Subnet, r.Raw)
		}
	})
	t.Run("DNS-27 BADVERS", func(t *testing.T) {
		r := runDig(t, "dig", addr, "example.com", "SOA", "+edns=1", "+noednsneg")
		if r.Status != "BADVERS" || !strings.Contains(r.Raw, "version: 0") || len(r.Sections["AUTHORITY"]) != 0 {
			t.Errorf("want BADVERS, EDNS version 0, no SOA:\n%s", r.Raw)
		}
	})
	t.Run("DNS-14 ANY is minimal", func(t *testing.T) {
		// RFC 8482 §4.2: any one RRset of the name (which one is the
		// server's choice); every answer record has the same owner and type.
		r := runDig(t, "dig", addr, "example.com", "ANY", "+norec")
		rrsets := map[string]bool{}
		for _, rr := range r.Sections["ANSWER"] {
			if f := strings.Fields(rr); len(f) >= 4 {
				rrsets[f[0]+" "+f[3]] = true
			}
		}
		if r.Status != "NOERROR" || len(r.Sections["ANSWER"]) == 0 || len(rrsets) != 1 {
			t.Errorf("want one RRset:\n%s", r.Raw)
		}
	})
	t.Run("DNS-25 0x20 echoed", func(t *testing.T) {
		r := runDig(t, "dig", addr, "MaIl.ExAmPlE.CoM", "A", "+norec")
		if !strings.Contains(r.Raw, ";MaIl.ExAmPlE.CoM.") || r.Status != "NOERROR" {
			t.Errorf("question case not echoed:\n%s", r.Raw)
		}
	})
}

// TestReloadSIGHUP edits the zone, sends SIGHUP, and sees the new data;
// a broken edit keeps the old zone serving (ZL-01). SIGTERM exits 0.
func TestReloadSIGHUP(t *testing.T) {
	need(t, "dig")
	p, addr, dir := startExample(t)
	file := filepath.Join(dir, "example.com.zone")
	orig, _ := os.ReadFile(file)
	mail := func() string {
		r := runDig(t, "dig", addr, "mail.example.com", "A", "+short")
		return strings.TrimSpace(r.Raw)
	}
	if got := mail(); got != "192.0.2.25" {
		t.Fatalf("mail = %q", got)
	}
	edited := strings.Replace(string(orig), "192.0.2.25", "192.0.2.26", 1)
	edited = strings.Replace(edited, "2026112301", "2026112302", 1)
	os.WriteFile(file, []byte(edited), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reloaded zone", 10e9, func() bool { return mail() == "192.0.2.26" })

	os.WriteFile(file, []byte(edited+"bad IN A 1.2.3\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	badLine := fmt.Sprintf("example.com.zone:%d: bad A A", strings.Count(edited, "\n")+1)
	waitFor(t, "the reload error in the log", 10e9, func() bool {
		return strings.Contains(p.stderr.String(), badLine)
	})
	if got := mail(); got != "192.0.2.26" {
		t.Fatalf("after a broken reload mail = %q, want the previous 192.0.2.26", got)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestCheckZone runs `gslb check-zone` on good and bad files, and BIND's
// named-checkzone on the static part of the README example (ZL-11).
func TestCheckZone(t *testing.T) {
	need(t, "named-checkzone")
	out, err := exec.Command(binary(t), "check-zone", exampleZone).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK (zone example.com., serial 2026112301") {
		t.Fatalf("check-zone on the example: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.example.zone", "$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n$POOL web region=nowhere members=192.0.2.10\n")
	cmd := exec.Command(binary(t), "check-zone", bad)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `bad.example.zone:5: $POOL web: unknown region "nowhere"`) {
		t.Fatalf("check-zone on a bad file: %v\n%s", err, out)
	}

	data, _ := os.ReadFile(exampleZone)
	var static []string
	for _, l := range strings.Split(string(data), "\n") {
		if regexp.MustCompile(`^\$(REGION|POOL)|\sGSLB\s`).MatchString(l) {
			continue
		}
		static = append(static, l)
	}
	f := writeFile(t, dir, "static.zone", strings.Join(static, "\n"))
	out, err = exec.Command("named-checkzone", "example.com", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("named-checkzone rejects the static part of the example: %v\n%s", err, out)
	}
}

// TestReadmeExample keeps the manual's example zone (docs/zones.md) and the
// tested file the same.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../docs/zones.md")
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := os.ReadFile(exampleZone)
	if !strings.Contains(string(readme), string(zone)) {
		t.Fatal("docs/zones.md does not contain examples/zones/example.com.zone verbatim")
	}
}

// TestGeoDig asks the example's GSLB records with dig +subnet, as a user
// would, against the embedded geo database: each client network gets its
// region, and the reply's ECS scope is honest (DNS-40).
func TestGeoDig(t *testing.T) {
	need(t, "dig")
	_, addr, _ := startExample(t)
	for _, tc := range []struct {
		name, qtype, subnet string
		want                []string
	}{
		{"geo.example.com", "A", "81.2.69.0/24", []string{"198.51.100.10"}},                 // GB: EU
		{"geo.example.com", "A", "8.8.8.0/24", []string{"192.0.2.10", "192.0.2.11"}},        // US: NA
		{"geo.example.com", "A", "133.11.0.0/24", []string{"203.0.113.10", "203.0.113.11"}}, // JP: AS
		{"geo.example.com", "A", "200.160.2.0/24", []string{"192.0.2.10", "192.0.2.11"}},    // BR: SA
		{"geo.example.com", "AAAA", "81.2.69.0/24", []string{"2001:db8:2::10"}},
		{"api.example.com", "A", "81.2.69.0/24", []string{"198.51.100.10"}}, // latency: geo until measured
		{"admin.example.com", "A", "8.8.8.0/24", []string{"198.51.100.10"}}, // failover: first pool
	} {
		t.Run(tc.name+"/"+tc.qtype+"/"+tc.subnet, func(t *testing.T) {
			for i := 0; i < 2; i++ { // the second answer comes from the reply cache
				r := runDig(t, "dig", addr, tc.name, tc.qtype, "+norec", "+subnet="+tc.subnet)
				var got []string
				for _, rr := range r.Sections["ANSWER"] {
					f := strings.Fields(rr)
					got = append(got, f[len(f)-1])
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("answers %v, want %v\n%s", got, tc.want, r.Raw)
				}
				src, scope, ok := parseSubnet(r.Subnet)
				if !ok || src != tc.subnet || tc.name != "admin.example.com" && (scope == 0 || scope > 24) || tc.name == "admin.example.com" && scope != 0 {
					t.Fatalf("CLIENT-SUBNET %q: want %s echoed with a scope in 1..24 (0 for failover)\n%s", r.Subnet, tc.subnet, r.Raw)
				}
			}
		})
	}
	t.Run("weighted sticky=prefix is stable per network", func(t *testing.T) {
		first := runDig(t, "dig", addr, "cdn.example.com", "A", "+short", "+subnet=81.2.69.0/24").Raw
		for i := 0; i < 5; i++ {
			if again := runDig(t, "dig", addr, "cdn.example.com", "A", "+short", "+subnet=81.2.69.0/24").Raw; again != first {
				t.Fatalf("answer changed: %q then %q", first, again)
			}
		}
	})
}

// parseSubnet splits dig's "81.2.69.0/24/18" into source and scope.
func parseSubnet(s string) (string, int, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", 0, false
	}
	var scope int
	if _, err := fmt.Sscan(s[i+1:], &scope); err != nil {
		return "", 0, false
	}
	return s[:i], scope, true
}

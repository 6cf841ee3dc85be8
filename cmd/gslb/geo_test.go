package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
)

// `gslb geo` prints network, country, continent, subdivision,
// location and database per address, and fails clearly on bad input.
func TestGeoCommand(t *testing.T) {
	dbPath := geodatatest.Write(t, map[string]geodata.Info{
		"192.0.2.0/24":  {Country: "US", Continent: "NA", Subdivision: "VA", Lat: 39.04, Lon: -77.49, HasLocation: true},
		"2001:db8::/32": {Country: "IE", Continent: "EU"},
	})
	junk := filepath.Join(t.TempDir(), "junk.mmdb")
	if err := os.WriteFile(junk, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings, in order
		stderr   string
		noStdout bool
	}{
		{"embedded default", []string{"8.8.8.8"}, 0,
			[]string{"8.8.8.8\n", "  network      8.8.", "  country      US\n", "  continent    NA\n", "  subdivision  -\n", "  location     38.0000 -97.0000\n", "  database     embedded country database (built "}, "", false},
		{"file, several addresses", []string{"--geoip", dbPath, "192.0.2.7", "::ffff:192.0.2.8", "2001:db8::1", "203.0.113.1"}, 0,
			[]string{
				"192.0.2.7\n  network      192.0.2.0/24\n  country      US\n  continent    NA\n  subdivision  VA\n  location     39.0400 -77.4900\n  database     GeoIP2-City database " + dbPath + " (built 2023-11-14, 2 networks)\n",
				"\n::ffff:192.0.2.8\n  network      192.0.2.0/24\n  country      US\n",
				"\n2001:db8::1\n  network      2001:db8::/32\n  country      IE\n  continent    EU\n  subdivision  -\n  location     53.0000 -8.0000\n",
				"\n203.0.113.1\n  network      200.0.0.0/5\n  country      - (not in the database)\n  continent    -\n  subdivision  -\n  location     -\n",
			}, "", false},
		{"bad address", []string{"--geoip", dbPath, "192.0.2.1", "192.0.2"}, 2, nil, `gslb geo: bad address "192.0.2"`, true},
		{"missing database", []string{"--geoip", filepath.Join(t.TempDir(), "none.mmdb"), "192.0.2.1"}, 1, nil, "none.mmdb: no such file or directory", true},
		{"unreadable database", []string{"--geoip", junk, "192.0.2.1"}, 1, nil, "gslb geo: geodata: open " + junk + ": ", true},
		{"no address", nil, 2, nil, "usage: gslb geo [--geoip FILE] IP...", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := geo(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("gslb geo %s: exit %d, want %d; stderr: %s", strings.Join(tc.args, " "), code, tc.code, stderr.String())
			}
			out := stdout.String()
			rest := out
			for _, want := range tc.stdout {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("gslb geo %s: stdout lacks %q (in order); got:\n%s", strings.Join(tc.args, " "), want, out)
					break
				}
				rest = rest[i+len(want):]
			}
			if tc.noStdout && out != "" {
				t.Errorf("gslb geo %s: stdout %q, want nothing", strings.Join(tc.args, " "), out)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("gslb geo %s: stderr %q, want it to contain %q", strings.Join(tc.args, " "), stderr.String(), tc.stderr)
			}
		})
	}
}

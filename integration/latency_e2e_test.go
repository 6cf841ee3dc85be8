//go:build e2e

package integration

import (
	"slices"
	"testing"
	"time"
)

// TestLatencyMeasured: with probes.measure_clients on, a latency record
// answers with geo until the client's network is measured, then with the
// region whose prober measured it (ST-06 end to end; loopback only: the
// client is 127.0.0.1, so its network is 127.0.0.0/24).
func TestLatencyMeasured(t *testing.T) {
	dir := t.TempDir()
	zones := dir + "/zones"
	must(t, mkdir(zones))
	writeFile(t, zones, "lat.example.zone", `$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 127.0.0.1
$REGION one lat=50 lon=8
$REGION two lat=40 lon=-75
$POOL p-one region=one members=127.0.0.25
$POOL p-two region=two members=127.0.0.26
api 5 IN GSLB latency pools=p-one,p-two
`)
	cfg := writeFile(t, dir, "node.yaml", `node: n2
region: two
dns: ["127.0.0.1:0"]
admin: "127.0.0.1:0"
zones: "`+zones+`"
probes:
  measure_clients: true
`)
	p := start(t, "serve", "-config", cfg)
	if got := answersOf(t, p.ready["dns"], "api.lat.example."); !slices.Equal(got, []string{"127.0.0.25"}) {
		t.Fatalf("before any measurement: %v, want the record order's first pool (geo does not place 127.0.0.1)", got)
	}
	began := time.Now()
	waitFor(t, "the answer from the measured region", 30*time.Second, func() bool {
		return slices.Equal(answersOf(t, p.ready["dns"], "api.lat.example."), []string{"127.0.0.26"})
	})
	t.Logf("127.0.0.0/24 measured from region two; the latency record moved to it after %v", time.Since(began).Round(10*time.Millisecond))
}

package node

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/gslb"
)

// TestExplainAPI: the admin API's shape of an explanation keeps every fact
// of gslb's, under the JSON keys the CLI and dashboard read, and survives
// encoding/json both ways.
func TestExplainAPI(t *testing.T) {
	e := &gslb.Explanation{Record: "www.example.com.", Source: "example.com.zone:12", Type: "A", Policy: "geo",
		Client: gslb.ClientFacts{Addr: netip.MustParseAddr("198.51.100.0"), Bits: 24, Country: "DE", Continent: "EU", Located: true},
		Order:  &gslb.RegionOrder{Source: "geo", Network: "198.51.100.0/24", Regions: []gslb.RegionStep{{Region: "eu-west", DistanceKm: 1071, Why: "first"}}},
		Pools: []gslb.PoolFacts{{Pool: "web-eu", Region: "eu-west", Weight: 1, Candidate: true,
			Members: []gslb.MemberFacts{{Addr: netip.MustParseAddr("10.2.0.1"), Weight: 1, Family: true}}}},
		Choice: gslb.ChoiceFacts{Pool: "web-us", Region: "us-east", Rule: "first healthy in region order"},
		Answer: gslb.AnswerFacts{Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}, TTL: 15, Scope: 24},
	}
	ae := toAPI(e)
	b, err := json.Marshal(api.ExplainResponse{Query: "www.example.com", StateIndex: 42, Explanation: ae})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"query":"www.example.com"`, `"state_index":42`, `"addrs":["10.1.0.1"]`, `"scope":24`, `"ttl":15`,
		`"country":"DE"`, `"pool":"web-us"`, `"distance_km":1071`, `"members":[{"addr":"10.2.0.1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	var back api.ExplainResponse
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Errorf("not the same after a round trip:\n%s\n%s", b, b2)
	}
}

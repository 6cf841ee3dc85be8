package probes_test

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/zones"
)

// TestReportIsPlainData: a Report survives encoding unchanged, so the
// replicated store can carry it between nodes as it is.
func TestReportIsPlainData(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 123, time.UTC)
	r := probes.Report{Prober: "node-a", Region: "us-east", Time: now, Every: 5 * time.Second, Full: true,
		Statuses: []probes.Status{{Key: "tcp|192.0.2.10|443", Target: "tcp://192.0.2.10:443", Up: false,
			Since: now.Add(-time.Minute), Reason: "connection refused", Quorum: zones.QuorumAll,
			RTT: 3 * time.Millisecond, MinRTT: 2 * time.Millisecond, CertExpiry: now.Add(90 * 24 * time.Hour)}},
		RTTs: []probes.RTT{{Kind: probes.KindNetwork, Name: "198.51.100.0/24", Addr: netip.MustParseAddr("198.51.100.7"),
			EWMA: 40 * time.Millisecond, Min: 38 * time.Millisecond, Time: now}},
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON probes.Report
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, r) {
		t.Errorf("JSON round trip:\n got %+v\nwant %+v", fromJSON, r)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(r); err != nil {
		t.Fatal(err)
	}
	var fromGob probes.Report
	if err := gob.NewDecoder(&buf).Decode(&fromGob); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromGob, r) {
		t.Errorf("gob round trip:\n got %+v\nwant %+v", fromGob, r)
	}
}

package store

import (
	"bytes"
	"io"
	"reflect"
	"testing"
	"time"
)

// TestLoadReportApply (issue 17): the newest load report of each node is
// kept (a late, older one is ignored), listed by region then node, and
// carried by a snapshot; a report without a node or time is refused.
func TestLoadReportApply(t *testing.T) {
	f := newTestFSM(t)
	g := []GroupLoad{{Group: "app", Backends: 2, Available: 2, Weight: 2, InFlight: 3, MaxConns: 10, Headroom: 17, Rate: 120, Latency: 2 * time.Millisecond, Utilisation: 0.15}}
	eu1 := &LoadReport{Node: "eu-1", Region: "eu-west", At: t0.Add(2 * time.Second), Groups: g, Utilisation: 0.15}
	old := &LoadReport{Node: "eu-1", Region: "eu-west", At: t0, Utilisation: 1}
	us1 := &LoadReport{Node: "us-1", Region: "us-east", At: t0, Utilisation: 0.5}
	for i, r := range f.ApplyBatch(logs(t, 1, us1, eu1, old)) {
		if r != nil {
			t.Fatalf("response %d: %v", i, r)
		}
	}
	check := func(what string, got []LoadReport) {
		t.Helper()
		if len(got) != 2 || got[0].Node != "eu-1" || got[0].Utilisation != 0.15 || len(got[0].Groups) != 1 || got[0].Groups[0] != g[0] || got[1].Node != "us-1" {
			t.Fatalf("%s: loads %+v, want eu-1's newer report (0.15) then us-1's", what, got)
		}
	}
	check("applied", f.current().Loads())
	if TypeLoadReport != 6 {
		t.Errorf("TypeLoadReport = %d, want 6 (permanent)", TypeLoadReport)
	}
	b, err := Encode(eu1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode(b); err != nil || !reflect.DeepEqual(got, eu1) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, eu1)
	}
	for _, bad := range []*LoadReport{{Region: "x", At: t0}, {Node: "n"}} {
		if _, err := Encode(bad); err == nil {
			t.Errorf("load report %+v encodes", bad)
		}
	}

	var snap bufSink
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Persist(&snap); err != nil {
		t.Fatal(err)
	}
	s.Release()
	h := newTestFSM(t)
	if err := h.Restore(io.NopCloser(bytes.NewReader(snap.Bytes()))); err != nil {
		t.Fatal(err)
	}
	check("restored", h.current().Loads())
}

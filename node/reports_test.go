package node

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
	"github.com/gslbd/gslb/zones"
)

// TestReportTranslation: a prober's report becomes typed store messages
// (transition with its RTTs and certificate expiry, heartbeat, RTT
// summaries by kind and name), and the committed state becomes the same
// report again for another node's aggregator: nothing dropped on the way.
func TestReportTranslation(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	exp := t0.Add(30 * 24 * time.Hour)
	q := zones.Quorum(2)
	report := probes.Report{Prober: "eu-west-1", Region: "eu-west", Time: t0, Every: 2 * time.Second, Full: true,
		Statuses: []probes.Status{
			{Key: "k-https", Target: "https://192.0.2.10:443/", Up: true, Since: t0, Reason: "HTTP 200", Quorum: q,
				RTT: 12 * time.Millisecond, MinRTT: 9 * time.Millisecond, CertExpiry: exp},
			{Key: "k-tcp", Target: "tcp://192.0.2.11:80", Up: false, Since: t0, Reason: "connection refused", Quorum: q},
		},
		RTTs: []probes.RTT{
			{Kind: probes.KindRegion, Name: "us-east", Addr: netip.MustParseAddr("127.0.0.11"), EWMA: 80 * time.Millisecond, Min: 75 * time.Millisecond, Time: t0},
			{Kind: probes.KindNetwork, Name: "81.2.69.0/24", Addr: netip.MustParseAddr("81.2.69.1"), EWMA: 20 * time.Millisecond, Min: 18 * time.Millisecond, Time: t0},
		},
	}
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"transition", transitionOf(report, report.Statuses[0]), store.Transition{Prober: "eu-west-1", Region: "eu-west", Key: "k-https",
			Target: "https://192.0.2.10:443/", Up: true, Reason: "HTTP 200", At: t0, RTT: 12 * time.Millisecond, MinRTT: 9 * time.Millisecond, CertExpiry: exp}},
		{"heartbeat", *heartbeatOf(report), store.Heartbeat{Prober: "eu-west-1", Region: "eu-west", At: t0, Every: 2 * time.Second}},
		{"rtts", rttsOf(report), []store.RTTSummary{
			{Prober: "eu-west-1", Kind: store.RTTRegion, Name: "us-east", Addr: "127.0.0.11", EWMA: 80 * time.Millisecond, Min: 75 * time.Millisecond, At: t0},
			{Prober: "eu-west-1", Kind: store.RTTNetwork, Name: "81.2.69.0/24", Addr: "81.2.69.1", EWMA: 20 * time.Millisecond, Min: 18 * time.Millisecond, At: t0},
		}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, tc.got, tc.want)
		}
	}

	// Through a real one-node store and back.
	c := storetest.NewCluster(t, 1)
	s := c.Nodes[0].Store
	b := &store.ReportBatch{Prober: report.Prober, Heartbeat: heartbeatOf(report), RTTs: rttsOf(report)}
	for _, st := range report.Statuses {
		b.Transitions = append(b.Transitions, transitionOf(report, st))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Submit(ctx, b); err != nil {
		t.Fatal(err)
	}
	quorum := map[string]zones.Quorum{"k-https": q, "k-tcp": q}
	got := reportsFrom(s.State(), "another-node", quorum)
	if len(got) != 1 {
		t.Fatalf("reportsFrom: %d reports, want 1: %+v", len(got), got)
	}
	r := got[0]
	sortStatuses := func(s []probes.Status) {
		slices.SortFunc(s, func(a, b probes.Status) int { return strings.Compare(a.Key, b.Key) })
	}
	sortRTTs := func(s []probes.RTT) {
		slices.SortFunc(s, func(a, b probes.RTT) int { return strings.Compare(a.Name, b.Name) })
	}
	want := report
	want.Statuses = slices.Clone(report.Statuses)
	want.RTTs = slices.Clone(report.RTTs)
	sortStatuses(r.Statuses)
	sortStatuses(want.Statuses)
	sortRTTs(r.RTTs)
	sortRTTs(want.RTTs)
	for i := range r.Statuses {
		r.Statuses[i].Since, want.Statuses[i].Since = r.Statuses[i].Since.UTC(), want.Statuses[i].Since.UTC()
		r.Statuses[i].CertExpiry, want.Statuses[i].CertExpiry = r.Statuses[i].CertExpiry.UTC(), want.Statuses[i].CertExpiry.UTC()
	}
	for i := range r.RTTs {
		r.RTTs[i].Time = r.RTTs[i].Time.UTC()
	}
	r.Time = r.Time.UTC()
	if !reflect.DeepEqual(r, want) {
		t.Errorf("round trip through the store:\n got %+v\nwant %+v", r, want)
	}
	if got := reportsFrom(s.State(), report.Prober, quorum); len(got) != 0 {
		t.Errorf("reportsFrom leaves out this node's own prober; got %+v", got)
	}
}

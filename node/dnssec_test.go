package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gslbd/gslb/api"
)

// TestDNSSECConfig (DNSSEC-30): the dnssec key as a zone, a list or the
// mapping; errors name the key; an empty list is off.
func TestDNSSECConfig(t *testing.T) {
	for _, tc := range []struct {
		Name, YAML, Err string
		On              bool
	}{
		{"one zone", "dnssec: example.com", "", true},
		{"a list", "dnssec: [example.com, example.net]", "", true},
		{"every zone", `dnssec: "*"`, "", true},
		{"mapping", "dnssec:\n  zones: [example.com]\n  algorithm: ed25519\n  split: true", "", true},
		{"empty list is off", "dnssec: []", "", false},
		{"bad algorithm", "dnssec:\n  zones: [example.com]\n  algorithm: rsasha1", "dnssec.algorithm", true},
		{"bad name", "dnssec: [a..b]", "dnssec.zones", true},
		{"no data directory", "dnssec: example.com", "dnssec: a data directory", true},
		{"unknown key", "dnssec:\n  zone: [example.com]", "unknown key dnssec.zone", false},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			data := "data: " + filepath.Join(dir, "data") + "\n"
			if tc.Name == "no data directory" {
				data = ""
			}
			f := filepath.Join(dir, "node.yaml")
			os.WriteFile(f, []byte("dns: 127.0.0.1:0\nzones: "+dir+"\n"+data+tc.YAML+"\n"), 0o600)
			cfg, err := LoadConfig(f)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.Err == "" && err != nil || tc.Err != "" && (err == nil || !strings.Contains(err.Error(), tc.Err)) {
				t.Fatalf("error %v, want %q", err, tc.Err)
			}
			if err == nil && cfg.DNSSEC.on() != tc.On {
				t.Errorf("on = %v, want %v", cfg.DNSSEC.on(), tc.On)
			}
		})
	}
}

// TestDNSSECNode (DNSSEC-31): a single node signing example.com makes its
// key on start, keeps it in the data directory (0600) and signs with the
// same key after a restart; status shows the key and its DS; a rollover
// step through the admin API adds a published key; a step out of order is
// refused with the reason.
func TestDNSSECNode(t *testing.T) {
	data := t.TempDir()
	on := func(c *Config) { c.Data = data; c.DNSSEC = &DNSSECConfig{Zones: StringList{"example.com"}} }
	n, _ := startTestNode(t, on)
	st := n.Status().DNSSEC
	if st == nil || len(st.Zones) != 1 || len(st.Zones[0].Keys) != 1 || len(st.Zones[0].DS) != 1 {
		t.Fatalf("status dnssec %+v: want example.com with one key and its DS", st)
	}
	tag := st.Zones[0].Keys[0].Tag
	fi, err := os.Stat(filepath.Join(data, keyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	n.Stop(context.Background())

	n2, _ := startTestNode(t, on)
	if st := n2.Status().DNSSEC; st == nil || len(st.Zones) != 1 || st.Zones[0].Keys[0].Tag != tag {
		t.Fatalf("after a restart: %+v, want the key %d again", st, tag)
	}
	// gslb explain shows how the record's zone is signed.
	resp, err := http.Get("http://" + n2.AdminAddr().String() + "/api/v1/explain?name=admin.example.com&client=8.8.8.8")
	if err != nil {
		t.Fatal(err)
	}
	var ex api.ExplainResponse
	err = json.NewDecoder(resp.Body).Decode(&ex)
	resp.Body.Close()
	if err != nil || ex.DNSSEC == nil || !ex.DNSSEC.Signed || ex.DNSSEC.Zone != "example.com." || len(ex.DNSSEC.Keys) != 1 || ex.DNSSEC.Keys[0].Tag != tag || len(ex.DNSSEC.DS) != 1 {
		t.Fatalf("explain dnssec %+v (%v): want example.com. signed by key %d with its DS", ex.DNSSEC, err, tag)
	}
	if _, err := n2.rollover(context.Background(), api.RolloverRequest{Zone: "example.com", Step: "switch"}); err == nil || !strings.Contains(err.Error(), "no pre-published") {
		t.Fatalf("switch first: %v, want a refusal", err)
	}
	keys, err := n2.rollover(context.Background(), api.RolloverRequest{Zone: "example.com", Step: "prepublish"})
	if err != nil || len(keys) != 2 || keys[1].State != "published" {
		t.Fatalf("prepublish: %+v, %v; want the active key and a published one", keys, err)
	}
	if _, err := n2.rollover(context.Background(), api.RolloverRequest{Zone: "example.org", Step: "prepublish"}); err == nil {
		t.Fatal("prepublish for a zone not signed: no error")
	}
}

// TestDNSSECClusterNode (DNSSEC-32): in a (one-node) cluster the zone's key
// is made once, committed sealed in the cluster state (no key file), and
// signed with after a restart from that state; the sealed keys open only
// with the cluster secret.
func TestDNSSECClusterNode(t *testing.T) {
	data, zonesDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(zonesDir, "example.com.zone"), []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	raft := freeAddr(t)
	off := false
	const secret = "Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA"
	mk := func() *Config {
		cfg := DefaultConfig()
		cfg.Node, cfg.Region, cfg.Data, cfg.Zones = "n1", "us-east", data, zonesDir
		cfg.DNS.Listen, cfg.Admin, cfg.ZonesPoll = StringList{"127.0.0.1:0"}, "127.0.0.1:0", 0
		cfg.Probes.Enabled = &off
		cfg.DNSSEC = &DNSSECConfig{Zones: StringList{"*"}}
		cfg.Cluster = &ClusterConfig{Raft: raft, Secret: secret, Fast: true,
			Peers: []PeerConfig{{ID: "n1", Raft: raft, Region: "us-east"}}}
		return cfg
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(context.Background(), mk(), log)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the zone's key committed and used", func() bool {
		st := n.Status().DNSSEC
		_, ok := n.store.State().DNSSECKeys()
		return ok && st != nil && len(st.Zones) == 1
	})
	tag := n.Status().DNSSEC.Zones[0].Keys[0].Tag
	rec, _ := n.store.State().DNSSECKeys()
	if rec.Seq != 1 {
		t.Errorf("keys committed %d times, want once", rec.Seq)
	}
	if _, err := unseal("another secret entirely, 32 chars", rec.Sealed); err == nil {
		t.Error("the sealed keys open with another secret")
	}
	if keys, err := unseal(secret, rec.Sealed); err != nil || len(keys) != 1 || keys[0].Tag != tag {
		t.Errorf("unseal: %v, %v; want the key %d", keys, err, tag)
	}
	if _, err := os.Stat(filepath.Join(data, keyFile)); err == nil {
		t.Error("a cluster node wrote a key file")
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err = Start(context.Background(), mk(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	if st := n.Status().DNSSEC; st == nil || len(st.Zones) != 1 || st.Zones[0].Keys[0].Tag != tag {
		t.Fatalf("after a restart: %+v, want the key %d from the state at once", st, tag)
	}
	if rec, _ := n.store.State().DNSSECKeys(); rec.Seq != 1 {
		t.Errorf("after a restart the keys were committed again (seq %d)", rec.Seq)
	}
	// A rollover step is committed, and signed with at once.
	keys, err := n.rollover(context.Background(), api.RolloverRequest{Zone: "example.com", Step: "prepublish"})
	if err != nil || len(keys) != 2 {
		t.Fatalf("prepublish in a cluster: %+v, %v; want two keys", keys, err)
	}
	rec, _ = n.store.State().DNSSECKeys()
	if rec.Seq != 2 || len(n.Status().DNSSEC.Zones[0].Keys) != 2 {
		t.Errorf("after prepublish: seq %d, status %+v; want seq 2 and both keys", rec.Seq, n.Status().DNSSEC)
	}
	if committed, err := unseal(secret, rec.Sealed); err != nil || len(committed) != 2 {
		t.Errorf("committed keys after prepublish: %d, %v; want 2", len(committed), err)
	}
}

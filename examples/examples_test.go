// Package examples_test keeps the example configs and zones loadable: the
// node configs of the cluster tutorial and of the compose file load and
// validate, their secret is strong enough, and the zone parses and checks.
package examples_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/node"
	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/zones"
)

func TestExampleCluster(t *testing.T) {
	for _, dir := range []string{"cluster", "compose"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		n := 0
		for _, f := range files {
			if filepath.Base(f) == "compose.yaml" {
				continue
			}
			n++
			t.Run(f, func(t *testing.T) {
				cfg, err := node.LoadConfig(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := cfg.Validate(); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if cfg.Cluster == nil {
					t.Fatalf("%s: no cluster section", f)
				}
				if err := store.CheckSecret(cfg.Cluster.Secret); err != nil {
					t.Errorf("%s: cluster.secret: %v", f, err)
				}
				found := false
				for _, p := range cfg.Cluster.Peers {
					found = found || p.ID == cfg.Node
				}
				if !found {
					t.Errorf("%s: node %q is not in cluster.peers", f, cfg.Node)
				}
			})
		}
		if n != 3 {
			t.Errorf("%s: %d node configs, want 3", dir, n)
		}
	}
}

// TestExampleZone: the cluster's zone is the README's example zone (which
// the end-to-end tests query), and it loads, links and compiles.
func TestExampleZone(t *testing.T) {
	a, err := os.ReadFile("cluster/zones/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("zones/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("cluster/zones/example.com.zone differs from zones/example.com.zone")
	}
	z, err := zones.Load("cluster/zones/example.com.zone", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := zones.Link([]*zones.Zone{z}); err != nil {
		t.Fatal(err)
	}
	if _, err := gslb.Compile([]*zones.Zone{z}, gslb.Env{}); err != nil {
		t.Fatal(err)
	}
}

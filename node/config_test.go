package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrors: a bad node config is refused with a message naming
// the key (ZL-12's rule for the node config).
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "dns: [\"127.0.0.1:53\"]\nzones: /tmp\nzonez: x\n", "line 3: unknown key zonez"},
		{"unknown nested key", "dns: [\"127.0.0.1:53\"]\nzones: /tmp\nprobes:\n  intervl: 5s\n", "line 4: unknown key probes.intervl"},
		{"unknown key in a list", "node: a\ndata: /tmp/x\ndns: 127.0.0.1:53\ncluster:\n  raft: 127.0.0.1:7946\n  secret: Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA\n  peers: [{id: a, raft: \"127.0.0.1:7946\", regoin: x}]\n", "unknown key cluster.peers[0].regoin"},
		{"admin beyond loopback without a token", "dns: [\"127.0.0.1:53\"]\nzones: /tmp\nadmin: 0.0.0.0:9153\n", "admin: 0.0.0.0:9153 is not a loopback address: set admin_token or admin_token_file"},
		{"token and token file", "dns: [\"127.0.0.1:53\"]\nzones: /tmp\nadmin: 127.0.0.1:9153\nadmin_token: a\nadmin_token_file: /x\n", "admin_token_file: give admin_token or admin_token_file, not both"},
		{"weak secret", "node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  secret: aaaaaaaaaaaaaaaa\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}]\n", "cluster.secret: "},
		{"tls alone without cluster_id", "node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  tls: {ca_file: ca.pem, cert_file: a.pem, key_file: a.key}\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}]\n", "cluster.cluster_id: must be set when nodes authenticate with cluster.tls alone"},
		{"tls incomplete", "node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  cluster_id: prod\n  tls: {ca_file: ca.pem}\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}]\n", "cluster.tls: ca_file, cert_file and key_file are all required"},
		{"dns of the wrong shape", "dns: {a: b}\nzones: /tmp\n", "line 1: unknown key dns.a"},
		{"dns listen of the wrong shape", "dns: {listen: {a: b}}\nzones: /tmp\n", "line 1: want an address or a list of addresses"},
		{"rrl exempt", "dns: {listen: \"127.0.0.1:53\", rrl: {exempt: [192.0.2.0/24, nope]}}\nzones: /tmp\n", `dns.rrl.exempt[1]: "nope" is not a network or an address`},
		{"cookie secret", "dns: {listen: \"127.0.0.1:53\", cookie_secret: abc}\nzones: /tmp\n", "dns.cookie_secret: want 32 hex digits"},
		{"rrl prefix", "dns:\n  listen: [\"127.0.0.1:53\"]\n  rrl: {ipv4_prefix: 33}\nzones: /tmp\n", "dns.rrl: rate must not be negative"},
		{"no dns", "zones: /tmp\n", "dns: at least one address is required"},
		{"bad dns", "dns: [\"localhost\"]\nzones: /tmp\n", `dns[0]: "localhost" is not host:port`},
		{"no zones", "dns: [\"127.0.0.1:53\"]\n", "zones: a directory of zone files is required"},
		{"cluster without secret", "node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}]\n", "cluster.secret: must be set"},
		{"cluster without node", "data: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  secret: Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}]\n", "node: a node name is required in a cluster"},
		{"duplicate peer", "node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  secret: Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}, {id: a, raft: \"127.0.0.1:7947\"}]\n", `cluster.peers[1].id: "a" listed twice`},
		{"bad peer address", "node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  secret: Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA\n  peers: [{id: a, raft: \"nowhere\"}]\n", `cluster.peers[0].raft: "nowhere" is not host:port`},
		{"proxy error names its field", "dns: [\"127.0.0.1:53\"]\nzones: /tmp\nproxy:\n  listeners: [{name: web, address: \"127.0.0.1:0\", protocol: http}]\n  routes: [{name: r, backends: nope}]\n", "proxy.routes[0].backends"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o644)
			c, err := LoadConfig(path)
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(path, []byte("node: a\ndata: /tmp/x\ndns: [\"127.0.0.1:53\"]\ncluster:\n  raft: 127.0.0.1:7946\n  secret: Zq3vN8xK2mW7pL4rT9yB6cF1hJ5dG0sA\n  peers: [{id: a, raft: \"127.0.0.1:7946\"}]\n"), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
}

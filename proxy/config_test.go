package proxy

import (
	"strings"
	"testing"
)

const goodYAML = `
dns:
  listen: 127.0.0.1:53
proxy:
  trusted_proxies: [10.0.0.0/8, 192.0.2.1]
  listeners:
    - {name: web, address: "127.0.0.1:0"}
    - {name: db, address: "127.0.0.1:0", protocol: tcp, backends: pg, proxy_protocol: v2}
  routes:
    - {name: api, host: "*.example.com", path_prefix: /api, methods: [GET], backends: web,
       rate_limit: {rate: 10, key: "header:X-Key"}}
    - {name: rest, backends: web}
  groups:
    - name: web
      algorithm: weighted_round_robin
      slow_start: 30s
      health_check: {type: http, path: /healthz, interval: 1s}
      backends:
        - {address: "127.0.0.1:8081", weight: 5}
        - {address: "127.0.0.1:8082", backup: true}
    - name: pg
      algorithm: least_conn
      backends: [{address: "127.0.0.1:5432"}]
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse([]byte(goodYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	g := cfg.Groups[0]
	if g.HealthCheck.Fails != 3 || g.HealthCheck.Passes != 2 || g.HealthCheck.Timeout == 0 {
		t.Errorf("health check defaults not applied: %+v", g.HealthCheck)
	}
	if g.Backends[1].Weight != 1 || !g.Backends[1].Backup {
		t.Errorf("backend defaults: %+v", g.Backends[1])
	}
	if cfg.RegionHealthPath != "/health/region" || cfg.HealthPath != "/health" {
		t.Errorf("health paths: %q %q", cfg.HealthPath, cfg.RegionHealthPath)
	}
	if rl := cfg.Routes[0].RateLimit; rl.Burst != 10 || rl.Algorithm != "token_bucket" {
		t.Errorf("rate limit defaults: %+v", rl)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown group", `proxy: {listeners: [{address: ":0"}], routes: [{backends: web}]}`,
			`proxy.routes[0].backends: unknown group "web"`},
		{"unknown key", `proxy: {listeners: [{address: ":0", bogus: 1}]}`,
			`field bogus not found`},
		{"no section", `dns: {}`, `no proxy: section`},
		{"bad algorithm", `proxy: {listeners: [{address: ":0"}], groups: [{name: g, algorithm: fastest, backends: [{address: "a:1"}]}]}`,
			`proxy.groups[0].algorithm: unknown algorithm "fastest"`},
		{"bad backend address", `proxy: {listeners: [{address: ":0"}], groups: [{name: g, backends: [{address: "nope"}]}]}`,
			`proxy.groups[0].backends[0].address: "nope" is not host:port`},
		{"https without certs", `proxy: {listeners: [{address: ":0", protocol: https}]}`,
			`proxy.listeners[0].tls.certificates: required for https`},
		{"tcp without group", `proxy: {listeners: [{address: ":0", protocol: tcp}]}`,
			`proxy.listeners[0].backends: required for tcp`},
		{"weight", `proxy: {listeners: [{address: ":0"}], groups: [{name: g, backends: [{address: "a:1", weight: -2}]}]}`,
			`proxy.groups[0].backends[0].weight: -2 must be in 1..1000`},
		{"rate", `proxy: {listeners: [{address: ":0"}], groups: [{name: g, backends: [{address: "a:1"}]}], routes: [{backends: g, rate_limit: {rate: 0}}]}`,
			`proxy.routes[0].rate_limit.rate: 0 must be > 0`},
		{"trusted", `proxy: {trusted_proxies: [bogus], listeners: [{address: ":0"}]}`,
			`proxy.trusted_proxies[0]: "bogus" is not an address or prefix`},
		{"header hash", `proxy: {listeners: [{address: ":0"}], groups: [{name: g, algorithm: header_hash, backends: [{address: "a:1"}]}]}`,
			`proxy.groups[0].hash_header: required by header_hash`},
		{"duplicate group", `proxy: {listeners: [{address: ":0"}], groups: [{name: g, backends: [{address: "a:1"}]}, {name: g, backends: [{address: "a:1"}]}]}`,
			`proxy.groups[1].name: duplicate group "g"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

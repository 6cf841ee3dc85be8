package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the `proxy:` section of the node config: listeners, routes and
// backend groups. The zero value of every optional field is a documented
// default, applied by Validate.
type Config struct {
	// HealthPath is the proxy's own liveness endpoint on every HTTP
	// listener; it never touches a backend. Default "/health".
	HealthPath string `yaml:"health_path"`
	// RegionHealthPath reports 200 when every route and TCP listener has a
	// healthy backend and 503 otherwise. Default "/health/region".
	RegionHealthPath string `yaml:"region_health_path"`
	// TrustedProxies lists the peer networks whose X-Forwarded-For,
	// X-Forwarded-Proto, X-Forwarded-Host and Forwarded headers are kept and
	// appended to; from any other peer they are replaced.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// RequestIDHeader is set on every proxied request (kept from a trusted
	// peer). Default "X-Request-Id"; "-" disables it.
	RequestIDHeader string `yaml:"request_id_header"`
	// AccessLog logs one slog line per request. Off by default.
	AccessLog bool `yaml:"access_log"`
	// MaxHeaderBytes bounds the request header block (431 above).
	// Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds request bodies (413 above). Default 0 = no limit.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Timeouts apply to HTTP listeners and backend connections.
	Timeouts Timeouts `yaml:"timeouts"`
	// DrainTimeout bounds how long removed listeners and backends keep
	// serving established connections after a reload or shutdown.
	// Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	Listeners []ListenerConfig `yaml:"listeners"`
	Routes    []RouteConfig    `yaml:"routes"`
	Groups    []GroupConfig    `yaml:"groups"`
	// Spill sends requests to other regions' proxies when this region has
	// no server for them (see SpillConfig). Off by default.
	Spill *SpillConfig `yaml:"spill"`
}

// Timeouts are the proxy's connection timeouts.
type Timeouts struct {
	// Connect bounds dialing a backend. Default 5s.
	Connect time.Duration `yaml:"connect"`
	// ReadHeader bounds reading a client's request header. Default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// Response bounds waiting for a backend's response header. Default 60s.
	Response time.Duration `yaml:"response"`
	// Idle closes idle client keep-alive connections, idle backend pool
	// connections and idle TCP proxy connections. Default 90s.
	Idle time.Duration `yaml:"idle"`
}

// ListenerConfig is one listening socket.
type ListenerConfig struct {
	Name string `yaml:"name"`
	// Address is host:port; port 0 picks a free port (see Proxy.Addrs).
	Address string `yaml:"address"`
	// Protocol is "http" (HTTP/1.1, and h2c when H2C is set), "https"
	// (TLS with HTTP/2 and HTTP/1.1 by ALPN) or "tcp".
	Protocol string `yaml:"protocol"`
	// H2C enables cleartext HTTP/2 (prior knowledge) on an http listener.
	H2C bool `yaml:"h2c"`
	// TLS is required for https: one or more certificates, chosen by SNI.
	TLS *TLSConfig `yaml:"tls"`
	// Backends names the group a tcp listener forwards to.
	Backends string `yaml:"backends"`
	// ProxyProtocol sends a PROXY protocol header ("v1" or "v2") to
	// backends of a tcp listener. Default none.
	ProxyProtocol string `yaml:"proxy_protocol"`
}

// TLSConfig holds the certificates of an https listener.
type TLSConfig struct {
	// Certificates are chosen by the client's SNI against each
	// certificate's names; the first is the default.
	Certificates []CertConfig `yaml:"certificates"`
}

// CertConfig is one PEM certificate chain and its key.
type CertConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RouteConfig sends matching HTTP requests to a backend group. Routes are
// tried in order; the first whose every set condition matches wins.
type RouteConfig struct {
	Name string `yaml:"name"`
	// Listeners restricts the route to these listeners (default: all
	// http and https listeners).
	Listeners []string `yaml:"listeners"`
	// Host matches the request host without port, case-insensitively;
	// "*.example.com" matches any subdomain.
	Host string `yaml:"host"`
	// PathPrefix matches the start of the path.
	PathPrefix string `yaml:"path_prefix"`
	// Methods lists accepted methods (default: any).
	Methods []string `yaml:"methods"`
	// Headers must all be present with exactly these values.
	Headers map[string]string `yaml:"headers"`
	// Backends names the backend group.
	Backends string `yaml:"backends"`
	// Retries is how many other backends an idempotent request without a
	// body is retried on when a backend fails before responding.
	// Default 1; -1 disables.
	Retries int `yaml:"retries"`
	// RateLimit is optional.
	RateLimit *RateLimitConfig `yaml:"rate_limit"`
}

// RateLimitConfig limits requests per key.
type RateLimitConfig struct {
	// Key is "ip" (client address, the default), "route" (one bucket for
	// the whole route) or "header:NAME".
	Key string `yaml:"key"`
	// Algorithm is "token_bucket" (default) or "sliding_window".
	Algorithm string `yaml:"algorithm"`
	// Rate is requests per Window (token bucket: refill rate).
	Rate float64 `yaml:"rate"`
	// Window is the rate's period. Default 1s.
	Window time.Duration `yaml:"window"`
	// Burst is the token bucket size. Default max(1, Rate).
	Burst int `yaml:"burst"`
	// MaxKeys bounds memory: idle keys are evicted first, and keys beyond
	// this many share one overflow bucket. Default 100000.
	MaxKeys int `yaml:"max_keys"`
}

// GroupConfig is a set of backends with one balancing algorithm, shared by
// HTTP routes and TCP listeners.
type GroupConfig struct {
	Name string `yaml:"name"`
	// Algorithm is one of: round_robin (default), weighted_round_robin
	// (nginx's smooth WRR), least_conn, weighted_least_conn, least_time
	// (EWMA of latency), random, p2c (power of two choices), ip_hash,
	// uri_hash, header_hash (HashHeader), consistent_hash (Maglev over
	// HashKey).
	Algorithm string `yaml:"algorithm"`
	// HashHeader is the header hashed by header_hash.
	HashHeader string `yaml:"hash_header"`
	// HashKey is what consistent_hash hashes: "ip" (default), "uri" or
	// "header:NAME".
	HashKey string `yaml:"hash_key"`
	// StickyCookie, when set, pins each client to a backend with a cookie
	// of this name that the proxy sets; a client whose sticky backend is
	// unavailable is balanced again and gets a new cookie.
	StickyCookie string `yaml:"sticky_cookie"`
	// TLS re-encrypts to the backends (HTTP/2 negotiated by ALPN).
	TLS bool `yaml:"tls"`
	// TLSServerName overrides the SNI sent to backends.
	TLSServerName string `yaml:"tls_server_name"`
	// TLSInsecureSkipVerify skips backend certificate checks.
	TLSInsecureSkipVerify bool `yaml:"tls_insecure_skip_verify"`
	// H2C speaks cleartext HTTP/2 to the backends (for gRPC).
	H2C bool `yaml:"h2c"`
	// MaxConns bounds concurrent requests (HTTP) or connections (TCP) per
	// backend; a backend at its limit is skipped. Default 0 = no limit.
	MaxConns int `yaml:"max_conns"`
	// PanicThreshold (percent, 0 = off) turns on panic mode: when fewer
	// than this share of the primaries are available (and no backup is),
	// requests are balanced over every primary that is not draining,
	// healthy or not, rather than piling onto the few left (Envoy's
	// panic threshold). Region health still reports only real health.
	PanicThreshold int `yaml:"panic_threshold"`
	// SlowStart ramps a recovered backend's weight from 10 % to 100 %
	// over this time. Default 0 = off.
	SlowStart time.Duration `yaml:"slow_start"`
	// HealthCheck is the active check; default none (always up unless
	// ejected).
	HealthCheck *HealthCheckConfig `yaml:"health_check"`
	// Outlier is passive ejection; nil means the defaults below, and
	// consecutive_failures: -1 turns it off.
	Outlier *OutlierConfig `yaml:"outlier"`

	Backends []BackendConfig `yaml:"backends"`
}

// BackendConfig is one server.
type BackendConfig struct {
	// Address is host:port.
	Address string `yaml:"address"`
	// Weight defaults to 1.
	Weight int `yaml:"weight"`
	// Backup servers take traffic only when no primary is available.
	Backup bool `yaml:"backup"`
	// Drain marks the backend draining: it takes no new requests.
	Drain bool `yaml:"drain"`
}

// HealthCheckConfig is an active health check.
type HealthCheckConfig struct {
	// Type is "tcp" (connect) or "http" (GET Path, expect Expect status).
	Type string `yaml:"type"`
	// Path for http checks. Default "/".
	Path string `yaml:"path"`
	// Host header for http checks (default: the backend address).
	Host string `yaml:"host"`
	// Expect is the expected HTTP status; default any 2xx or 3xx.
	Expect int `yaml:"expect"`
	// Interval between checks. Default 2s.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one check. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// Fails consecutive failures mark a backend down. Default 3.
	Fails int `yaml:"fails"`
	// Passes consecutive successes mark it up again. Default 2.
	Passes int `yaml:"passes"`
}

// OutlierConfig is passive ejection: consecutive 5xx responses or
// connection errors eject a backend for a backoff that doubles with each
// ejection (up to MaxEjection) and resets after a clean period.
type OutlierConfig struct {
	// ConsecutiveFailures before ejection. Default 5; -1 disables.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// BaseEjection is the first ejection time. Default 30s.
	BaseEjection time.Duration `yaml:"base_ejection"`
	// MaxEjection caps the backoff. Default 300s.
	MaxEjection time.Duration `yaml:"max_ejection"`
	// MaxEjectionPercent bounds the share of a group ejected at once
	// (at least one backend may always be ejected). Default 50.
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
}

// Algorithm names.
const (
	AlgRoundRobin         = "round_robin"
	AlgWeightedRoundRobin = "weighted_round_robin"
	AlgLeastConn          = "least_conn"
	AlgWeightedLeastConn  = "weighted_least_conn"
	AlgLeastTime          = "least_time"
	AlgRandom             = "random"
	AlgP2C                = "p2c"
	AlgIPHash             = "ip_hash"
	AlgURIHash            = "uri_hash"
	AlgHeaderHash         = "header_hash"
	AlgConsistentHash     = "consistent_hash"
)

var algorithms = map[string]bool{
	AlgRoundRobin: true, AlgWeightedRoundRobin: true, AlgLeastConn: true,
	AlgWeightedLeastConn: true, AlgLeastTime: true, AlgRandom: true, AlgP2C: true,
	AlgIPHash: true, AlgURIHash: true, AlgHeaderHash: true, AlgConsistentHash: true,
}

// Parse reads YAML whose top level has a `proxy:` key and validates that
// section. Other top-level keys (the rest of the node config) are ignored;
// unknown keys inside the proxy section are errors.
func Parse(data []byte) (Config, error) {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	node, ok := top["proxy"]
	if !ok {
		return Config{}, errors.New("parse config: no proxy: section")
	}
	var cfg Config
	// Re-encode the section so that KnownFields applies to it alone.
	raw, err := yaml.Marshal(&node)
	if err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("parse config: proxy: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadFile reads and validates a config file (see Parse).
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func orDur(p *time.Duration, d time.Duration) {
	if *p == 0 {
		*p = d
	}
}

// Validate applies defaults and checks the config. Every message names the
// field path, e.g. `proxy.routes[0].backends: unknown group "web"`.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("proxy."+format, a...))
	}
	if c.HealthPath == "" {
		c.HealthPath = "/health"
	}
	if c.RegionHealthPath == "" {
		c.RegionHealthPath = "/health/region"
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		bad("health_path: %q must start with /", c.HealthPath)
	}
	if !strings.HasPrefix(c.RegionHealthPath, "/") {
		bad("region_health_path: %q must start with /", c.RegionHealthPath)
	}
	if c.RequestIDHeader == "" {
		c.RequestIDHeader = "X-Request-Id"
	}
	for i, s := range c.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			bad("trusted_proxies[%d]: %v", i, err)
		}
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxHeaderBytes < 0 {
		bad("max_header_bytes: %d must be > 0", c.MaxHeaderBytes)
	}
	if c.MaxBodyBytes < 0 {
		bad("max_body_bytes: %d must be >= 0", c.MaxBodyBytes)
	}
	orDur(&c.Timeouts.Connect, 5*time.Second)
	orDur(&c.Timeouts.ReadHeader, 10*time.Second)
	orDur(&c.Timeouts.Response, 60*time.Second)
	orDur(&c.Timeouts.Idle, 90*time.Second)
	orDur(&c.DrainTimeout, 30*time.Second)
	for name, d := range map[string]time.Duration{"connect": c.Timeouts.Connect, "read_header": c.Timeouts.ReadHeader, "response": c.Timeouts.Response, "idle": c.Timeouts.Idle} {
		if d < 0 {
			bad("timeouts.%s: %v must be > 0", name, d)
		}
	}

	groups := map[string]int{}
	for i := range c.Groups {
		g := &c.Groups[i]
		p := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			bad("%s.name: required", p)
		} else if _, dup := groups[g.Name]; dup {
			bad("%s.name: duplicate group %q", p, g.Name)
		}
		groups[g.Name] = i
		if g.Algorithm == "" {
			g.Algorithm = AlgRoundRobin
		}
		if !algorithms[g.Algorithm] {
			bad("%s.algorithm: unknown algorithm %q", p, g.Algorithm)
		}
		if g.Algorithm == AlgHeaderHash && g.HashHeader == "" {
			bad("%s.hash_header: required by header_hash", p)
		}
		if g.HashKey == "" {
			g.HashKey = "ip"
		}
		if k := g.HashKey; k != "ip" && k != "uri" && !(strings.HasPrefix(k, "header:") && len(k) > 7) {
			bad("%s.hash_key: %q must be ip, uri or header:NAME", p, k)
		}
		if g.TLS && g.H2C {
			bad("%s.h2c: cannot be combined with tls", p)
		}
		if g.PanicThreshold < 0 || g.PanicThreshold > 100 {
			bad("%s.panic_threshold: %d must be in 0..100", p, g.PanicThreshold)
		}
		if g.MaxConns < 0 {
			bad("%s.max_conns: %d must be >= 0", p, g.MaxConns)
		}
		if g.SlowStart < 0 {
			bad("%s.slow_start: %v must be >= 0", p, g.SlowStart)
		}
		if len(g.Backends) == 0 {
			bad("%s.backends: at least one backend required", p)
		}
		seen := map[string]bool{}
		for j := range g.Backends {
			b := &g.Backends[j]
			bp := fmt.Sprintf("%s.backends[%d]", p, j)
			if _, _, err := net.SplitHostPort(b.Address); err != nil || b.Address == "" {
				bad("%s.address: %q is not host:port", bp, b.Address)
			}
			if seen[b.Address] {
				bad("%s.address: duplicate backend %q", bp, b.Address)
			}
			seen[b.Address] = true
			if b.Weight == 0 {
				b.Weight = 1
			}
			if b.Weight < 0 || b.Weight > 1000 {
				bad("%s.weight: %d must be in 1..1000", bp, b.Weight)
			}
		}
		if hc := g.HealthCheck; hc != nil {
			hp := p + ".health_check"
			if hc.Type == "" {
				hc.Type = "tcp"
			}
			if hc.Type != "tcp" && hc.Type != "http" {
				bad("%s.type: %q must be tcp or http", hp, hc.Type)
			}
			if hc.Path == "" {
				hc.Path = "/"
			}
			if !strings.HasPrefix(hc.Path, "/") {
				bad("%s.path: %q must start with /", hp, hc.Path)
			}
			orDur(&hc.Interval, 2*time.Second)
			orDur(&hc.Timeout, time.Second)
			if hc.Interval < 0 {
				bad("%s.interval: %v must be > 0", hp, hc.Interval)
			}
			if hc.Timeout < 0 {
				bad("%s.timeout: %v must be > 0", hp, hc.Timeout)
			}
			if hc.Fails == 0 {
				hc.Fails = 3
			}
			if hc.Passes == 0 {
				hc.Passes = 2
			}
			if hc.Fails < 0 {
				bad("%s.fails: %d must be > 0", hp, hc.Fails)
			}
			if hc.Passes < 0 {
				bad("%s.passes: %d must be > 0", hp, hc.Passes)
			}
		}
		if g.Outlier == nil {
			g.Outlier = &OutlierConfig{}
		}
		o := g.Outlier
		if o.ConsecutiveFailures == 0 {
			o.ConsecutiveFailures = 5
		}
		orDur(&o.BaseEjection, 30*time.Second)
		orDur(&o.MaxEjection, 300*time.Second)
		if o.MaxEjectionPercent == 0 {
			o.MaxEjectionPercent = 50
		}
		if o.ConsecutiveFailures < -1 {
			bad("%s.outlier.consecutive_failures: %d must be > 0 or -1", p, o.ConsecutiveFailures)
		}
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			bad("%s.outlier.max_ejection_percent: %d must be in 0..100", p, o.MaxEjectionPercent)
		}
	}

	listeners := map[string]string{}
	if len(c.Listeners) == 0 {
		bad("listeners: at least one listener required")
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener%d", i)
		}
		if _, dup := listeners[l.Name]; dup {
			bad("%s.name: duplicate listener %q", p, l.Name)
		}
		if l.Protocol == "" {
			l.Protocol = "http"
		}
		listeners[l.Name] = l.Protocol
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			bad("%s.address: %q is not host:port", p, l.Address)
		}
		switch l.Protocol {
		case "http":
		case "https":
			if l.TLS == nil || len(l.TLS.Certificates) == 0 {
				bad("%s.tls.certificates: required for https", p)
			}
		case "tcp":
			if l.Backends == "" {
				bad("%s.backends: required for tcp", p)
			} else if _, ok := groups[l.Backends]; !ok {
				bad("%s.backends: unknown group %q", p, l.Backends)
			}
			if pp := l.ProxyProtocol; pp != "" && pp != "v1" && pp != "v2" {
				bad("%s.proxy_protocol: %q must be v1 or v2", p, pp)
			}
		default:
			bad("%s.protocol: %q must be http, https or tcp", p, l.Protocol)
		}
		if l.Protocol != "tcp" && l.Backends != "" {
			bad("%s.backends: only tcp listeners name a group; use routes", p)
		}
		if l.TLS != nil {
			for j, cc := range l.TLS.Certificates {
				if cc.CertFile == "" {
					bad("%s.tls.certificates[%d].cert_file: required", p, j)
				}
				if cc.KeyFile == "" {
					bad("%s.tls.certificates[%d].key_file: required", p, j)
				}
			}
		}
	}

	c.Spill.validate(bad, listeners)

	routeNames := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			r.Name = fmt.Sprintf("route%d", i)
		}
		if routeNames[r.Name] {
			bad("%s.name: duplicate route %q", p, r.Name)
		}
		routeNames[r.Name] = true
		if r.Backends == "" {
			bad("%s.backends: required", p)
		} else if _, ok := groups[r.Backends]; !ok {
			bad("%s.backends: unknown group %q", p, r.Backends)
		}
		for j, ln := range r.Listeners {
			proto, ok := listeners[ln]
			if !ok {
				bad("%s.listeners[%d]: unknown listener %q", p, j, ln)
			} else if proto == "tcp" {
				bad("%s.listeners[%d]: %q is a tcp listener", p, j, ln)
			}
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			bad("%s.path_prefix: %q must start with /", p, r.PathPrefix)
		}
		for j, m := range r.Methods {
			if m == "" || strings.ToUpper(m) != m {
				bad("%s.methods[%d]: %q must be an upper-case method", p, j, m)
			}
		}
		if r.Retries == 0 {
			r.Retries = 1
		}
		if r.Retries < -1 || r.Retries > 5 {
			bad("%s.retries: %d must be in -1..5", p, r.Retries)
		}
		if rl := r.RateLimit; rl != nil {
			rp := p + ".rate_limit"
			if rl.Key == "" {
				rl.Key = "ip"
			}
			if k := rl.Key; k != "ip" && k != "route" && !(strings.HasPrefix(k, "header:") && len(k) > 7) {
				bad("%s.key: %q must be ip, route or header:NAME", rp, k)
			}
			if rl.Algorithm == "" {
				rl.Algorithm = "token_bucket"
			}
			if rl.Algorithm != "token_bucket" && rl.Algorithm != "sliding_window" {
				bad("%s.algorithm: %q must be token_bucket or sliding_window", rp, rl.Algorithm)
			}
			if rl.Rate <= 0 {
				bad("%s.rate: %v must be > 0", rp, rl.Rate)
			}
			orDur(&rl.Window, time.Second)
			if rl.Window < 0 {
				bad("%s.window: %v must be > 0", rp, rl.Window)
			}
			if rl.Burst == 0 {
				rl.Burst = max(1, int(rl.Rate))
			}
			if rl.Burst < 0 {
				bad("%s.burst: %d must be > 0", rp, rl.Burst)
			}
			if rl.MaxKeys == 0 {
				rl.MaxKeys = 100000
			}
			if rl.MaxKeys < 0 {
				bad("%s.max_keys: %d must be > 0", rp, rl.MaxKeys)
			}
		}
	}
	return errors.Join(errs...)
}

// parsePrefix accepts a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

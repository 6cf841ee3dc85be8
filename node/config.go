package node

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/store"
)

// Config is a node's configuration: the node config file
// (`gslb serve -config node.yaml`) and the flags that override it. Every key
// is documented in docs/operations.md. The zero value of a field is its documented
// default.
type Config struct {
	Node   string    `yaml:"node"`
	Region string    `yaml:"region"`
	DNS    DNSConfig `yaml:"dns"`
	NSID   string    `yaml:"nsid"`
	Admin  string    `yaml:"admin"`
	// AdminToken guards the admin API; required when Admin is not a
	// loopback address. AdminTokenFile reads it from a file instead.
	AdminToken     string `yaml:"admin_token"`
	AdminTokenFile string `yaml:"admin_token_file"`
	// AdminOpenMetrics leaves /metrics and /health open without the token.
	AdminOpenMetrics bool   `yaml:"admin_open_metrics"`
	Data             string `yaml:"data"`
	Zones            string `yaml:"zones"`
	// ZonesPoll is how often the zones directory is looked at for changed
	// files (default 1s; 0 only on SIGHUP).
	ZonesPoll time.Duration `yaml:"zones_poll"`
	// ZonesMaxSize is the largest zone file loaded, in bytes (default
	// dnsserver.DefaultMaxZoneSize).
	ZonesMaxSize int64          `yaml:"zones_max_size"`
	GeoIP        string         `yaml:"geoip"`
	LogLevel     string         `yaml:"log_level"`
	Probes       ProbesConfig   `yaml:"probes"`
	Cluster      *ClusterConfig `yaml:"cluster"`
	Proxy        *proxy.Config  `yaml:"proxy"`
	// DNSSEC signs zones online (see DNSSECConfig and docs/dnssec.md).
	DNSSEC *DNSSECConfig `yaml:"dnssec"`

	path string // the file it was read from, for reloads
}

// StringList is a YAML list of strings that also takes one plain string.
type StringList []string

// UnmarshalYAML accepts "a" as well as ["a", "b"].
func (l *StringList) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		*l = StringList{v.Value}
		return nil
	}
	var s []string
	if err := v.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want an address or a list of addresses", v.Line)
	}
	*l = s
	return nil
}

// DNSConfig is the dns key: the listen addresses (as a plain list, or
// under listen:) and the front's limits.
type DNSConfig struct {
	Listen StringList `yaml:"listen"`
	// UDPSize is the EDNS payload size advertised (default 1232).
	UDPSize uint16    `yaml:"udp_size"`
	TCP     TCPConfig `yaml:"tcp"`
	RRL     RRLConfig `yaml:"rrl"`
	// CookieSecret is the DNS cookie secret, 32 hex digits (default: from
	// the cluster secret, so every node accepts every node's cookies; a
	// single node without one: random per start).
	CookieSecret string `yaml:"cookie_secret"`
}

// TCPConfig is dns.tcp (zero: dnsserver's defaults).
type TCPConfig struct {
	MaxConns        int           `yaml:"max_conns"`
	MaxConnsPerAddr int           `yaml:"max_conns_per_addr"`
	MaxConnsPerNet  int           `yaml:"max_conns_per_net"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
}

// RRLConfig is dns.rrl: response-rate limiting (on by default).
type RRLConfig struct {
	Enabled       *bool    `yaml:"enabled"`
	Rate          int      `yaml:"rate"`
	Slip          int      `yaml:"slip"`
	IPv4Prefix    int      `yaml:"ipv4_prefix"`
	IPv6Prefix    int      `yaml:"ipv6_prefix"`
	Exempt        []string `yaml:"exempt"`
	LogOnly       bool     `yaml:"log_only"`
	LimitLoopback bool     `yaml:"limit_loopback"`
}

// UnmarshalYAML takes an address, a list of addresses, or the mapping.
func (d *DNSConfig) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode || v.Kind == yaml.SequenceNode {
		return d.Listen.UnmarshalYAML(v)
	}
	type plain DNSConfig
	var p plain
	if err := v.Decode(&p); err != nil {
		return err
	}
	*d = DNSConfig(p)
	return nil
}

// server is the dnsserver configuration of d; cookie is the cookie secret
// to use when d names none.
func (d *DNSConfig) server(nsid string, cookie []byte) (dnsserver.Config, error) {
	c := dnsserver.Config{Addrs: d.Listen, NSID: nsid, UDPSize: d.UDPSize,
		MaxTCPConns: d.TCP.MaxConns, MaxTCPConnsPerAddr: d.TCP.MaxConnsPerAddr, MaxTCPConnsPerNet: d.TCP.MaxConnsPerNet,
		TCPIdleTimeout: d.TCP.IdleTimeout, ReadTimeout: d.TCP.ReadTimeout, CookieSecret: cookie}
	if d.CookieSecret != "" {
		b, err := hex.DecodeString(d.CookieSecret)
		if err != nil || len(b) != 16 {
			return c, errors.New("dns.cookie_secret: want 32 hex digits")
		}
		c.CookieSecret = b
	}
	r := d.RRL
	c.RRL = dnsserver.RRL{Off: r.Enabled != nil && !*r.Enabled, Rate: r.Rate, Slip: r.Slip, IPv4Bits: r.IPv4Prefix,
		IPv6Bits: r.IPv6Prefix, LogOnly: r.LogOnly, LimitLoopback: r.LimitLoopback}
	for i, e := range r.Exempt {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil {
				return c, fmt.Errorf("dns.rrl.exempt[%d]: %q is not a network or an address", i, e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.RRL.Exempt = append(c.RRL.Exempt, p.Masked())
	}
	return c, nil
}

// DefaultConfig returns a Config with the defaults of the keys that are
// not zero by default (zones_poll).
func DefaultConfig() *Config { return &Config{ZonesPoll: time.Second} }

// loadProxyConfig rereads the proxy section of the node config file.
func (c *Config) loadProxyConfig() (*proxy.Config, error) {
	if c.path == "" {
		return nil, nil
	}
	nc, err := LoadConfig(c.path)
	if err != nil {
		return nil, err
	}
	if nc.Proxy == nil {
		return nil, nil
	}
	if err := nc.Proxy.Validate(); err != nil {
		return nil, err
	}
	return nc.Proxy, nil
}

type ProbesConfig struct {
	// Enabled health-checks pool members (default true).
	Enabled *bool `yaml:"enabled"`
	// MaxConcurrent bounds probes in flight (default 64).
	MaxConcurrent int `yaml:"max_concurrent"`
	// MeasureClients lets the prober measure RTT to the client networks
	// that latency records are asked from (ICMP echo, else a TCP connect to
	// port 53 of the resolver or ECS address seen). Off by default: it
	// sends probes to addresses outside your own infrastructure.
	MeasureClients bool `yaml:"measure_clients"`
}

type ClusterConfig struct {
	// Raft is the address for Raft and the cluster's internal API.
	Raft      string `yaml:"raft"`
	Advertise string `yaml:"advertise"`
	Secret    string `yaml:"secret"`
	// SecretFile reads the secret from a file instead.
	SecretFile string       `yaml:"secret_file"`
	Peers      []PeerConfig `yaml:"peers"`
	NonVoter   bool         `yaml:"non_voter"`
	// Join is the raft address of any member of a running cluster: a node
	// not listed in peers asks it to be added (as a non-voter with
	// non_voter: true) when it starts.
	Join string `yaml:"join"`
	// TLS makes nodes authenticate with the operator's own PKI (mutual
	// TLS): instead of the secret, or on top of it.
	TLS *TLSConfig `yaml:"tls"`
	// ClusterID names the cluster (default: derived from the secret);
	// required with tls and no secret.
	ClusterID string `yaml:"cluster_id"`
	// Fast uses short Raft timeouts (heartbeat and election 300ms), for
	// nodes on one machine or one LAN (the demo uses it).
	Fast bool `yaml:"fast"`
}

// TLSConfig is cluster.tls: PEM files for mutual TLS between nodes.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type PeerConfig struct {
	ID     string `yaml:"id"`
	Raft   string `yaml:"raft"`
	Region string `yaml:"region"`
	// DNS is the peer's DNS address, which this node's prober measures the
	// region RTT to (optional).
	DNS      string `yaml:"dns"`
	NonVoter bool   `yaml:"non_voter"`
}

// LoadConfig reads a node config file; unknown keys are errors.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := DefaultConfig()
	if err := checkKeys(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c.path = path
	return c, nil
}

func (c *Config) probesEnabled() bool { return c.Probes.Enabled == nil || *c.Probes.Enabled }

// validate checks the config; messages name the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.DNS.Listen) == 0 {
		bad("dns", "at least one address is required (e.g. 127.0.0.1:5353)")
	}
	if _, err := c.DNS.server("", nil); err != nil {
		errs = append(errs, err)
	}
	if r := c.DNS.RRL; r.Rate < 0 || r.IPv4Prefix < 0 || r.IPv4Prefix > 32 || r.IPv6Prefix < 0 || r.IPv6Prefix > 128 {
		bad("dns.rrl", "rate must not be negative, ipv4_prefix 0-32, ipv6_prefix 0-128")
	}
	for i, a := range c.DNS.Listen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(fmt.Sprintf("dns[%d]", i), "%q is not host:port", a)
		}
	}
	if c.Admin != "" {
		if host, _, err := net.SplitHostPort(c.Admin); err != nil {
			bad("admin", "%q is not host:port", c.Admin)
		} else if !isLoopback(host) && c.AdminToken == "" && c.AdminTokenFile == "" {
			bad("admin", "%s is not a loopback address: set admin_token or admin_token_file, so that only operators can read and change the node", c.Admin)
		}
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		bad("admin_token_file", "give admin_token or admin_token_file, not both")
	}
	if c.ZonesMaxSize < 0 {
		bad("zones_max_size", "must not be negative")
	}
	if err := c.validateDNSSEC(); err != nil {
		errs = append(errs, err)
	}
	if c.ZonesPoll < 0 {
		bad("zones_poll", "must not be negative")
	}
	if c.Probes.MaxConcurrent < 0 {
		bad("probes.max_concurrent", "must not be negative")
	}
	if c.Cluster == nil {
		if c.Zones == "" {
			bad("zones", "a directory of zone files is required")
		}
	} else {
		cl := c.Cluster
		if c.Node == "" {
			bad("node", "a node name is required in a cluster")
		}
		if c.Data == "" {
			bad("data", "a data directory is required in a cluster")
		}
		if cl.Raft == "" {
			bad("cluster.raft", "an address is required")
		} else if _, _, err := net.SplitHostPort(cl.Raft); err != nil {
			bad("cluster.raft", "%q is not host:port", cl.Raft)
		}
		if cl.Secret == "" && cl.SecretFile == "" && cl.TLS == nil {
			bad("cluster.secret", "must be set (or cluster.secret_file, or cluster.tls)")
		}
		if cl.TLS != nil && cl.Secret == "" && cl.SecretFile == "" && cl.ClusterID == "" {
			bad("cluster.cluster_id", "must be set when nodes authenticate with cluster.tls alone")
		}
		if t := cl.TLS; t != nil && (t.CAFile == "" || t.CertFile == "" || t.KeyFile == "") {
			bad("cluster.tls", "ca_file, cert_file and key_file are all required")
		}
		if cl.Secret != "" && cl.SecretFile != "" {
			bad("cluster.secret_file", "give cluster.secret or cluster.secret_file, not both")
		}
		if cl.Secret != "" {
			if err := store.CheckSecret(cl.Secret); err != nil {
				bad("cluster.secret", "%v (`gslb secret` prints a good one)", err)
			}
		}
		if cl.Join != "" {
			if _, _, err := net.SplitHostPort(cl.Join); err != nil {
				bad("cluster.join", "%q is not host:port", cl.Join)
			}
		}
		if cl.Join == "" && len(cl.Peers) == 0 {
			bad("cluster.peers", "list the cluster's voters (or give cluster.join)")
		}
		ids := map[string]bool{}
		for i, p := range cl.Peers {
			f := fmt.Sprintf("cluster.peers[%d]", i)
			if p.ID == "" {
				bad(f+".id", "is required")
			}
			if ids[p.ID] {
				bad(f+".id", "%q listed twice", p.ID)
			}
			ids[p.ID] = true
			if _, _, err := net.SplitHostPort(p.Raft); err != nil {
				bad(f+".raft", "%q is not host:port", p.Raft)
			}
			if p.DNS != "" {
				if _, _, err := net.SplitHostPort(p.DNS); err != nil {
					bad(f+".dns", "%q is not host:port", p.DNS)
				}
			}
		}
	}
	if c.Proxy != nil {
		if err := c.Proxy.Validate(); err != nil {
			errs = append(errs, err) // its messages name the field (proxy.routes[0]...)
		}
	}
	return errors.Join(errs...)
}

// secret returns the cluster secret, reading secret_file if set.
func (cl *ClusterConfig) secret() (string, error) {
	if cl.SecretFile == "" {
		return cl.Secret, nil
	}
	b, err := os.ReadFile(cl.SecretFile)
	if err != nil {
		return "", fmt.Errorf("cluster.secret_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// isLoopback reports whether an admin host only listens on loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// adminToken returns the admin token, reading admin_token_file if set.
func (c *Config) adminToken() (string, error) {
	if c.AdminTokenFile == "" {
		return c.AdminToken, nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("admin_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin_token_file: %s is empty", c.AdminTokenFile)
	}
	return tok, nil
}

// checkKeys reports every unknown key with its path and line
// ("line 4: unknown key probes.intervl"), before the typed decode.
func checkKeys(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	walkKeys(doc.Content[0], reflect.TypeOf(Config{}), "", &errs)
	return errors.Join(errs...)
}

func walkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("line %d: unknown key %s", k.Line, key))
				continue
			}
			walkKeys(n.Content[i+1], ft, key, errs)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, c := range n.Content {
			walkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	}
}

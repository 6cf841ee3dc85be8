package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gslbd/gslb/proxy"
)

// nodeConfig is the node config file (`gslb serve -config node.yaml`).
// Every key is documented in the README; flags override it.
type nodeConfig struct {
	Node       string        `yaml:"node"`
	Region     string        `yaml:"region"`
	DNS        []string      `yaml:"dns"`
	NSID       string        `yaml:"nsid"`
	Admin      string        `yaml:"admin"`
	AdminToken string        `yaml:"admin_token"`
	Data       string        `yaml:"data"`
	Zones      string        `yaml:"zones"`
	ZonesPoll  time.Duration `yaml:"zones_poll"`
	GeoIP      string        `yaml:"geoip"`
	LogLevel   string        `yaml:"log_level"`
	Probes     probesConfig  `yaml:"probes"`
	Cluster    *clusterConf  `yaml:"cluster"`
	// DemoControl is set by `gslb demo`: the address of its control
	// endpoint, so the dashboard can offer kill and start buttons.
	DemoControl string        `yaml:"demo_control"`
	Proxy       *proxy.Config `yaml:"proxy"`

	path string // the file it was read from, for reloads
}

// loadProxyConfig rereads the proxy section of the node config file.
func (c *nodeConfig) loadProxyConfig() (*proxy.Config, error) {
	if c.path == "" {
		return nil, nil
	}
	nc, err := loadConfig(c.path)
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

type probesConfig struct {
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

type clusterConf struct {
	// Raft is the address for Raft and the cluster's internal API.
	Raft      string `yaml:"raft"`
	Advertise string `yaml:"advertise"`
	Secret    string `yaml:"secret"`
	// SecretFile reads the secret from a file instead.
	SecretFile string     `yaml:"secret_file"`
	Peers      []peerConf `yaml:"peers"`
	NonVoter   bool       `yaml:"non_voter"`
	// Join is the raft address of any member of a running cluster: a node
	// not listed in peers asks it to be added (as a non-voter with
	// non_voter: true) when it starts.
	Join string `yaml:"join"`
	// Fast uses short Raft timeouts (heartbeat and election 300ms), for
	// nodes on one machine or one LAN (the demo uses it).
	Fast bool `yaml:"fast"`
}

type peerConf struct {
	ID     string `yaml:"id"`
	Raft   string `yaml:"raft"`
	Region string `yaml:"region"`
	// DNS is the peer's DNS address, which this node's prober measures the
	// region RTT to (optional).
	DNS      string `yaml:"dns"`
	NonVoter bool   `yaml:"non_voter"`
}

// loadConfig reads a node config file; unknown keys are errors.
func loadConfig(path string) (*nodeConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c nodeConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, os.ErrNotExist) && err.Error() != "EOF" {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.path = path
	return &c, nil
}

func (c *nodeConfig) probesEnabled() bool { return c.Probes.Enabled == nil || *c.Probes.Enabled }

// validate checks the config; messages name the key.
func (c *nodeConfig) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.DNS) == 0 {
		bad("dns", "at least one address is required (e.g. 127.0.0.1:5353)")
	}
	for i, a := range c.DNS {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(fmt.Sprintf("dns[%d]", i), "%q is not host:port", a)
		}
	}
	if c.Admin != "" {
		if _, _, err := net.SplitHostPort(c.Admin); err != nil {
			bad("admin", "%q is not host:port", c.Admin)
		}
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
		if cl.Secret == "" && cl.SecretFile == "" {
			bad("cluster.secret", "must be set (or cluster.secret_file)")
		}
		if cl.Secret != "" && cl.SecretFile != "" {
			bad("cluster.secret_file", "give cluster.secret or cluster.secret_file, not both")
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
func (cl *clusterConf) secret() (string, error) {
	if cl.SecretFile == "" {
		return cl.Secret, nil
	}
	b, err := os.ReadFile(cl.SecretFile)
	if err != nil {
		return "", fmt.Errorf("cluster.secret_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

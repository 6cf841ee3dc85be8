package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures one node of the cluster. Its zero values are the
// documented defaults; NodeID, DataDir, RaftAddr and Secret are required.
type Config struct {
	// NodeID names this node in the cluster, e.g. "us-east-1". It never
	// changes for the life of the data directory.
	NodeID string
	// DataDir holds raft.db (log and stable store), state.db (the state
	// machine), snapshots/ and cluster-id.
	DataDir string
	// RaftAddr is the host:port the node listens on for Raft and for the
	// internal API (one port, mutual TLS). Ignored when Listener is set.
	RaftAddr string
	// AdvertiseAddr is the host:port the other nodes dial. Default: the
	// listener's address (which must then not be a wildcard address).
	AdvertiseAddr string
	// Peers is the initial cluster. A node that finds itself in Peers and
	// has no Raft state yet bootstraps the cluster with exactly this list
	// (voters do; listed non-voters wait for the leader to contact them);
	// every node listed must be given the same list. A node not listed
	// starts empty and is added with Join.
	Peers []Peer
	// NonVoter makes this node a non-voter when it joins (Join): it
	// receives the log and serves the state but never votes.
	NonVoter bool
	// Secret is the shared cluster secret: it authenticates all traffic
	// between nodes (Raft, forwarding, join), which TLS encrypts. It must
	// pass CheckSecret (at least 128 bits of estimated entropy); NewSecret
	// makes one. It may be empty when TLS is set (then ClusterID must be).
	Secret string
	// TLS, if set, makes nodes authenticate with the operator's PKI: each
	// presents its certificate and accepts only peers whose certificate the
	// CA signed (mutual TLS). With Secret set too, a peer needs both.
	TLS *TLSFiles
	// ClusterID names the cluster. It is recorded in the data directory and
	// a node refuses to start on a data directory of another cluster.
	// Default: derived from Secret (set it explicitly before rotating the
	// secret).
	ClusterID string
	// Logger receives the store's and Raft's logs. Default: slog.Default().
	Logger *slog.Logger
	// Tuning holds Raft timing; zero fields take the defaults.
	Tuning Tuning
	// CheckZone, if set, validates a zone's content before Submit proposes
	// a ZoneUpdate (the node wires the zone parser here), so a zone that
	// does not load is refused before it reaches the log. Errors are
	// returned by Submit as they are.
	CheckZone func(name string, content []byte) error
	// Told, if set, receives the report batches other members send with
	// Tell (validated, not committed), from the internal API's goroutines.
	Told func(*ReportBatch)

	// Listener, if set, is used instead of listening on RaftAddr (tests
	// and socket activation). The store closes it.
	Listener net.Listener
	// Dial, if set, replaces the TCP dialer used to reach other nodes.
	Dial DialFunc
}

// TLSFiles names PEM files for mutual TLS between nodes. Every
// certificate the CA signed is trusted as a member of the cluster (host
// names are not checked: nodes are dialed by address), so use a CA, or an
// intermediate, that signs only this cluster's nodes. The files are read by
// New; a renewed certificate takes effect at the next start.
type TLSFiles struct {
	CAFile   string // the CA certificate(s) peers must chain to
	CertFile string // this node's certificate (chain), for server and client use
	KeyFile  string // its private key
}

// Peer is one member of the cluster.
type Peer struct {
	ID    string
	Addr  string // host:port of its RaftAddr/AdvertiseAddr
	Voter bool
}

// Tuning holds Raft timing. The defaults suit nodes in different regions
// (RTT up to ~300 ms); in-process tests use much shorter values.
type Tuning struct {
	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	CommitTimeout      time.Duration // default 50ms
	SnapshotInterval   time.Duration // default 2m
	SnapshotThreshold  uint64        // entries between snapshots, default 8192
	TrailingLogs       uint64        // entries kept after a snapshot, default 10240
	// ApplyTimeout bounds Submit when the caller's context has no deadline.
	ApplyTimeout time.Duration // default 5s
	// LeaderWait is how long Submit waits for a leader to be elected before
	// it returns ErrNoQuorum, so that writes ride through an ordinary
	// election but fail fast when the node is cut off.
	LeaderWait time.Duration // default 2 x ElectionTimeout
}

func (t Tuning) withDefaults() Tuning {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.HeartbeatTimeout, time.Second)
	def(&t.ElectionTimeout, time.Second)
	def(&t.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&t.CommitTimeout, 50*time.Millisecond)
	def(&t.SnapshotInterval, 2*time.Minute)
	def(&t.ApplyTimeout, 5*time.Second)
	def(&t.LeaderWait, 2*t.ElectionTimeout)
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = 8192
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = 10240
	}
	return t
}

// Validate checks c; its messages name the configuration field.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("cluster.node_id: must be set"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("cluster.data_dir: must be set"))
	}
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
			errs = append(errs, fmt.Errorf("cluster.raft_addr: %q: %w", c.RaftAddr, err))
		}
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("cluster.advertise_addr: %q: %w", c.AdvertiseAddr, err))
		}
	}
	switch {
	case c.TLS != nil && c.Secret == "":
		if c.ClusterID == "" {
			errs = append(errs, errors.New("cluster.cluster_id: must be set when nodes authenticate with TLS files alone"))
		}
	default:
		if err := CheckSecret(c.Secret); err != nil {
			errs = append(errs, fmt.Errorf("cluster.secret: %w", err))
		}
	}
	if t := c.TLS; t != nil {
		for _, f := range []struct{ key, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if f.path == "" {
				errs = append(errs, fmt.Errorf("cluster.tls.%s: must be set", f.key))
			}
		}
	}
	ids := map[string]bool{}
	addrs := map[string]bool{}
	voters := 0
	for i, p := range c.Peers {
		if p.ID == "" {
			errs = append(errs, fmt.Errorf("cluster.peers[%d].id: must be set", i))
		} else if ids[p.ID] {
			errs = append(errs, fmt.Errorf("cluster.peers[%d].id: %q listed twice", i, p.ID))
		}
		ids[p.ID] = true
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			errs = append(errs, fmt.Errorf("cluster.peers[%d].addr: %q: %w", i, p.Addr, err))
		} else if addrs[p.Addr] {
			errs = append(errs, fmt.Errorf("cluster.peers[%d].addr: %q listed twice", i, p.Addr))
		}
		addrs[p.Addr] = true
		if p.Voter {
			voters++
		}
	}
	if len(c.Peers) > 0 && voters == 0 {
		errs = append(errs, errors.New("cluster.peers: no voter"))
	}
	t := c.Tuning.withDefaults()
	if t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("cluster.tuning.leader_lease_timeout: %v is longer than heartbeat_timeout %v", t.LeaderLeaseTimeout, t.HeartbeatTimeout))
	}
	return errors.Join(errs...)
}

func (c *Config) clusterID() string {
	if c.ClusterID != "" {
		return c.ClusterID
	}
	sum := sha256.Sum256([]byte("gslb cluster id\x00" + c.Secret))
	return "s-" + hex.EncodeToString(sum[:8])
}

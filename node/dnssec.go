package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/dnssec"
	"github.com/gslbd/gslb/dnsserver"
)

// DNSSECConfig is the dnssec key: the zones to sign online (a list, "*"
// for every zone served), as a plain list or under zones:, with the
// algorithm of new keys and whether they are a KSK/ZSK split.
type DNSSECConfig struct {
	Zones StringList `yaml:"zones"`
	// Algorithm of the keys generated: ecdsap256sha256 (13, the default)
	// or ed25519 (15).
	Algorithm string `yaml:"algorithm"`
	// Split generates a KSK and a ZSK per zone instead of one combined
	// signing key (CSK).
	Split bool `yaml:"split"`
}

// UnmarshalYAML takes a zone, a list of zones, or the mapping.
func (d *DNSSECConfig) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode || v.Kind == yaml.SequenceNode {
		return d.Zones.UnmarshalYAML(v)
	}
	type plain DNSSECConfig
	var p plain
	if err := v.Decode(&p); err != nil {
		return err
	}
	*d = DNSSECConfig(p)
	return nil
}

// parse checks d; messages name the key.
func (d *DNSSECConfig) parse() (zones []string, all bool, alg uint8, err error) {
	zones, all, err = dnssec.ParseZones(strings.Join(d.Zones, ","))
	if err != nil {
		return nil, false, 0, fmt.Errorf("dnssec.zones: %w", err)
	}
	switch strings.ToLower(d.Algorithm) {
	case "", "ecdsap256sha256", "13":
		alg = dnssec.ECDSAP256SHA256
	case "ed25519", "15":
		alg = dnssec.ED25519
	default:
		return nil, false, 0, fmt.Errorf("dnssec.algorithm: %q: want ecdsap256sha256 or ed25519", d.Algorithm)
	}
	return zones, all, alg, nil
}

// on reports whether d names any zone to sign (an empty list: none).
func (d *DNSSECConfig) on() bool {
	if d == nil {
		return false
	}
	for _, z := range d.Zones {
		if strings.Trim(z, ", ") != "" {
			return true
		}
	}
	return false
}

// validateDNSSEC checks the dnssec key.
func (c *Config) validateDNSSEC() error {
	if !c.DNSSEC.on() {
		return nil
	}
	if _, _, _, err := c.DNSSEC.parse(); err != nil {
		return err
	}
	if c.Data == "" {
		return errors.New("dnssec: a data directory (data, --data) is required: the zone keys are kept there")
	}
	if cl := c.Cluster; cl != nil && cl.Secret == "" && cl.SecretFile == "" {
		return errors.New("dnssec: a cluster needs cluster.secret or cluster.secret_file: the zone keys are sealed with a key derived from it")
	}
	return nil
}

// signing is a node's DNSSEC state: the signer the DNS server signs with
// and the keys, kept in the data directory (a single node) or in the
// cluster state.
type signing struct {
	zones  []string
	all    bool
	alg    uint8
	split  bool
	signer *dnssec.Signer
	path   string // the key file of a single node

	// In a cluster (dnssec_cluster.go): the cluster secret the keys are
	// sealed with, the node's context, and one proposal at a time.
	secret  string
	ctx     context.Context
	propose sync.Mutex

	mu   sync.Mutex // key changes
	keys []*dnssec.Key
	seq  uint64 // in a cluster: the committed keys' Seq signed with
}

// keyFile is where a single node keeps its zone keys.
const keyFile = "dnssec-keys.json"

// newSigning returns the node's signing state, with the keys of the key
// file, or nil when no zone is to be signed.
func newSigning(cfg *Config) (*signing, error) {
	if !cfg.DNSSEC.on() {
		return nil, nil
	}
	zones, all, alg, err := cfg.DNSSEC.parse()
	if err != nil {
		return nil, err
	}
	sg := &signing{zones: zones, all: all, alg: alg, split: cfg.DNSSEC.Split, signer: dnssec.New(dnssec.Options{}),
		path: filepath.Join(cfg.Data, keyFile)}
	if cfg.Cluster != nil {
		return sg, nil // the keys come from the cluster state
	}
	b, err := os.ReadFile(sg.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("dnssec: %w", err)
	default:
		if sg.keys, err = dnssec.Unmarshal(b); err != nil {
			return nil, fmt.Errorf("dnssec: %s: %w", sg.path, err)
		}
	}
	sg.signer.SetKeys(sg.keys)
	return sg, nil
}

// signs reports whether zone origin is to be signed.
func (sg *signing) signs(origin string) bool {
	if sg.all {
		return true
	}
	for _, z := range sg.zones {
		if z == origin {
			return true
		}
	}
	return false
}

// save writes keys to the key file (0600, replaced atomically).
func (sg *signing) save(keys []*dnssec.Key) error {
	b, err := dnssec.Marshal(keys)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(sg.path), 0o700); err != nil {
		return fmt.Errorf("dnssec: %w", err)
	}
	tmp := sg.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("dnssec: %w", err)
	}
	if err := os.Rename(tmp, sg.path); err != nil {
		return fmt.Errorf("dnssec: %w", err)
	}
	return nil
}

// dnssecKeys generates the keys of every zone of snap that is to be
// signed and has none yet, before snap is served (called by serve, with
// n.zonesMu held). A single node keeps them in its key file; in a cluster
// they are proposed in the background.
func (n *Node) dnssecKeys(snap *dnsserver.Snapshot) {
	sg := n.signing
	if sg == nil {
		return
	}
	var want []string
	for origin := range snap.Zones() {
		if sg.signs(origin) {
			want = append(want, origin)
		}
	}
	sg.mu.Lock()
	defer sg.mu.Unlock()
	keys, added, err := dnssec.Ensure(sg.keys, want, sg.alg, sg.split, time.Now())
	if err != nil {
		n.log.Error("dnssec: generating keys; the zone is served unsigned", "err", err)
		return
	}
	if !added {
		return
	}
	if n.store != nil {
		n.proposeKeys(keys)
		return
	}
	if err := n.saveKeys(keys); err != nil {
		n.log.Error("dnssec: keeping new keys; the zone is served unsigned", "err", err)
		return
	}
	for _, z := range want {
		for _, k := range dnssec.ZoneKeys(keys, z) {
			n.log.Info("dnssec: new key", "zone", z, "role", string(k.Role), "tag", k.Tag, "ds", k.DS().String())
		}
	}
}

// saveKeys keeps keys in the key file of a single node and signs with
// them. sg.mu is held.
func (n *Node) saveKeys(keys []*dnssec.Key) error {
	if err := n.signing.save(keys); err != nil {
		return err
	}
	n.useKeys(keys)
	return nil
}

// useKeys makes keys the ones every reply is signed with. sg.mu is held.
func (n *Node) useKeys(keys []*dnssec.Key) {
	n.signing.keys = keys
	n.signing.signer.SetKeys(keys)
	n.dns.ClearReplies() // no reply signed by the previous keys is served again
}

// clearSignedReplies empties the DNS reply cache every hour while zones
// are signed: no cached reply holds a signature that the signer would have
// renewed (dnssec.Options.Refresh).
func (n *Node) clearSignedReplies(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.dns.ClearReplies()
		}
	}
}

// rollover applies one step of a key rollover to zone (see
// docs/dnssec.md).
func (n *Node) rollover(ctx context.Context, req api.RolloverRequest) ([]api.DNSSECKey, error) {
	sg := n.signing
	if sg == nil {
		return nil, errors.New("this node signs no zone (dnssec is not configured)")
	}
	zone := dnsCanonical(req.Zone)
	role := dnssec.Role(req.Role)
	sg.mu.Lock()
	locked := true
	defer func() {
		if locked {
			sg.mu.Unlock()
		}
	}()
	if len(dnssec.ZoneKeys(sg.keys, zone)) == 0 {
		return nil, fmt.Errorf("%s: no keys (is the zone served and signed?)", zone)
	}
	if role == "" {
		role = dnssec.CSK
		for _, k := range dnssec.ZoneKeys(sg.keys, zone) {
			if k.Role == dnssec.KSK {
				return nil, fmt.Errorf("%s has a KSK and a ZSK: say which to roll (role ksk or zsk)", zone)
			}
		}
	}
	var keys []*dnssec.Key
	var err error
	switch req.Step {
	case "prepublish":
		keys, _, err = dnssec.Prepublish(sg.keys, zone, role, time.Now())
	case "switch":
		keys, err = dnssec.Switch(sg.keys, zone, role)
	case "remove":
		keys, err = dnssec.Remove(sg.keys, zone, role)
	default:
		return nil, fmt.Errorf("step %q: want prepublish, switch or remove", req.Step)
	}
	if err != nil {
		return nil, err
	}
	if n.store != nil {
		prev := sg.seq
		sg.mu.Unlock()
		locked = false
		if err := n.commitKeys(ctx, prev, keys); err != nil {
			return nil, err
		}
	} else if err := n.saveKeys(keys); err != nil {
		return nil, err
	}
	n.log.Info("dnssec: rollover step", "zone", zone, "role", string(role), "step", req.Step)
	return apiKeys(dnssec.ZoneKeys(keys, zone)), nil
}

func dnsCanonical(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func apiKeys(keys []*dnssec.Key) []api.DNSSECKey {
	out := []api.DNSSECKey{}
	for _, k := range keys {
		out = append(out, api.DNSSECKey{Tag: k.Tag, Role: string(k.Role), State: string(k.State),
			Algorithm: k.DNSKEY.Algorithm, Created: k.Created, DS: k.DS().String()})
	}
	return out
}

// dnssecStatus is the signing state of every signed zone, for status and
// explain.
func (n *Node) dnssecStatus() *api.DNSSEC {
	sg := n.signing
	if sg == nil {
		return nil
	}
	st := sg.signer.Stats()
	out := &api.DNSSEC{Signatures: st.Signatures.Load(), CacheHits: st.CacheHits.Load(), CacheMisses: st.CacheMisses.Load(), Zones: []api.DNSSECZone{}}
	if exp := sg.signer.EarliestExpiry(); !exp.IsZero() {
		out.EarliestExpiry = exp.UTC()
	}
	for _, z := range sg.signer.Zones() {
		zs := api.DNSSECZone{Zone: z.Origin, Keys: apiKeys(z.Keys)}
		for _, ds := range z.DS() {
			zs.DS = append(zs.DS, ds.String())
		}
		out.Zones = append(out.Zones, zs)
	}
	return out
}

// rolloverHandler is POST /api/v1/dnssec/rollover.
func (n *Node) rolloverHandler(w http.ResponseWriter, r *http.Request) {
	var req api.RolloverRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "bad request: %v", err)
		return
	}
	keys, err := n.rollover(r.Context(), req)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, keys)
}

// dnssecRoutes adds the DNSSEC routes of the admin API.
func (n *Node) dnssecRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/dnssec/rollover", n.write(http.HandlerFunc(n.rolloverHandler)))
}

// signerMetrics exports the signer's counters and the time left before
// the earliest signature handed out expires.
type signerMetrics struct{ s *dnssec.Signer }

var (
	sigMadeDesc   = prometheus.NewDesc("gslb_dnssec_signatures_total", "RRSIGs made by the online signer.", nil, nil)
	sigHitDesc    = prometheus.NewDesc("gslb_dnssec_cache_hits_total", "RRsets whose signatures came from the signature cache.", nil, nil)
	sigMissDesc   = prometheus.NewDesc("gslb_dnssec_cache_misses_total", "RRsets signed afresh (not in the signature cache, or due for renewal).", nil, nil)
	sigErrDesc    = prometheus.NewDesc("gslb_dnssec_sign_errors_total", "RRsets that could not be signed (sent unsigned).", nil, nil)
	sigExpiryDesc = prometheus.NewDesc("gslb_dnssec_signature_expiry_seconds", "Seconds until the earliest expiration of a signature the cache still hands out.", nil, nil)
	sigZonesDesc  = prometheus.NewDesc("gslb_dnssec_zones", "Zones being signed.", nil, nil)
)

func (m signerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sigMadeDesc, sigHitDesc, sigMissDesc, sigErrDesc, sigExpiryDesc, sigZonesDesc} {
		ch <- d
	}
}

func (m signerMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.s.Stats()
	ch <- prometheus.MustNewConstMetric(sigMadeDesc, prometheus.CounterValue, float64(st.Signatures.Load()))
	ch <- prometheus.MustNewConstMetric(sigHitDesc, prometheus.CounterValue, float64(st.CacheHits.Load()))
	ch <- prometheus.MustNewConstMetric(sigMissDesc, prometheus.CounterValue, float64(st.CacheMisses.Load()))
	ch <- prometheus.MustNewConstMetric(sigErrDesc, prometheus.CounterValue, float64(st.Errors.Load()))
	if exp := m.s.EarliestExpiry(); !exp.IsZero() {
		ch <- prometheus.MustNewConstMetric(sigExpiryDesc, prometheus.GaugeValue, time.Until(exp).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(sigZonesDesc, prometheus.GaugeValue, float64(len(m.s.Zones())))
}

// explainDNSSEC tells how the zone of name is signed, for gslb explain
// (nil when the node signs no zone).
func (n *Node) explainDNSSEC(name string) *api.ExplainDNSSEC {
	sg := n.signing
	if sg == nil {
		return nil
	}
	origin, _, _ := n.dns.Snapshot().NameInfo(name, nil)
	if origin == "" {
		return nil
	}
	out := &api.ExplainDNSSEC{Zone: origin}
	if z := sg.signer.Zone(origin); z != nil {
		out.Signed, out.Keys = true, apiKeys(z.Keys)
		for _, ds := range z.DS() {
			out.DS = append(out.DS, ds.String())
		}
	}
	return out
}

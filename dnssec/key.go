package dnssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Algorithms that keys can be generated with (RFC 8624 §3.1: both MUST be
// supported by validators and are recommended for signing).
const (
	ECDSAP256SHA256 = dns.ECDSAP256SHA256 // 13, the default
	ED25519         = dns.ED25519         // 15
)

// Role is what a key signs.
type Role string

// Roles. A combined signing key (CSK, the default) signs everything; with a
// split, the KSK signs the DNSKEY RRset and the ZSK everything else.
const (
	CSK Role = "csk"
	KSK Role = "ksk"
	ZSK Role = "zsk"
)

// State is where a key is in its life (RFC 6781 §4.1.1, pre-publication).
type State string

// States. A published key is in the DNSKEY RRset but signs nothing (except
// the DNSKEY RRset, if it is a KSK or CSK); an active key signs; a retired
// key stays in the DNSKEY RRset, still signing that RRset if it is a KSK or
// CSK (so a DS that points at it keeps validating), until it is removed.
const (
	Published State = "published"
	Active    State = "active"
	Retired   State = "retired"
)

// Key is one signing key of one zone. It is immutable once made.
type Key struct {
	Zone    string // the zone's origin, lower case, fully qualified
	Role    Role
	State   State
	Created time.Time
	DNSKEY  *dns.DNSKEY
	Tag     uint16
	private crypto.Signer
}

// Flags returns the DNSKEY flags for role: 257 (zone key and SEP) for a
// CSK or KSK, 256 (zone key) for a ZSK.
func (r Role) Flags() uint16 {
	if r == ZSK {
		return dns.ZONE
	}
	return dns.ZONE | dns.SEP
}

// signsKeys reports whether the key signs the DNSKEY RRset.
func (k *Key) signsKeys() bool { return k.Role != ZSK }

// Generate makes a new key for zone with algorithm alg (ECDSAP256SHA256 or
// ED25519), role and state.
func Generate(zone string, alg uint8, role Role, state State, now time.Time) (*Key, error) {
	if alg != ECDSAP256SHA256 && alg != ED25519 {
		return nil, fmt.Errorf("dnssec: algorithm %d: only 13 (ECDSAP256SHA256) and 15 (ED25519) are supported", alg)
	}
	if role != CSK && role != KSK && role != ZSK {
		return nil, fmt.Errorf("dnssec: role %q: want csk, ksk or zsk", role)
	}
	zone = dns.CanonicalName(zone)
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: KeyTTL},
		Flags:     role.Flags(),
		Protocol:  3,
		Algorithm: alg,
	}
	priv, err := k.Generate(256)
	if err != nil {
		return nil, fmt.Errorf("dnssec: generating a key for %s: %w", zone, err)
	}
	return newKey(zone, role, state, now, k, priv.(crypto.Signer)), nil
}

func newKey(zone string, role Role, state State, created time.Time, k *dns.DNSKEY, priv crypto.Signer) *Key {
	return &Key{Zone: zone, Role: role, State: state, Created: created.UTC(), DNSKEY: k, Tag: k.KeyTag(), private: priv}
}

// With returns a copy of k in state st.
func (k *Key) With(st State) *Key {
	c := *k
	c.State = st
	return &c
}

// KeyTTL is the TTL of the DNSKEY, CDS and CDNSKEY RRsets. A rollover step
// waits at least this long (plus the largest TTL of the zone) before the
// next one.
const KeyTTL = 3600

// DS returns the DS record of k with digest SHA-256 (RFC 4509), which is
// what a parent zone is given.
func (k *Key) DS() *dns.DS { return k.DNSKEY.ToDS(dns.SHA256) }

// String describes k in one line: zone, role, state, algorithm and tag.
func (k *Key) String() string {
	return fmt.Sprintf("%s %s %s alg %d tag %d", k.Zone, k.Role, k.State, k.DNSKEY.Algorithm, k.Tag)
}

// storedKey is the encoded form of a Key.
type storedKey struct {
	Zone      string    `json:"zone"`
	Role      Role      `json:"role"`
	State     State     `json:"state"`
	Created   time.Time `json:"created"`
	Algorithm uint8     `json:"algorithm"`
	Private   string    `json:"private"` // PKCS #8, base64
}

type storedKeys struct {
	Version int         `json:"version"`
	Keys    []storedKey `json:"keys"`
}

// Marshal encodes keys, private parts included (keep the result secret).
func Marshal(keys []*Key) ([]byte, error) {
	out := storedKeys{Version: 1, Keys: []storedKey{}}
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.private)
		if err != nil {
			return nil, fmt.Errorf("dnssec: key %s: %w", k, err)
		}
		out.Keys = append(out.Keys, storedKey{Zone: k.Zone, Role: k.Role, State: k.State, Created: k.Created,
			Algorithm: k.DNSKEY.Algorithm, Private: base64.StdEncoding.EncodeToString(der)})
	}
	return json.MarshalIndent(out, "", "  ")
}

// Unmarshal decodes what Marshal encoded.
func Unmarshal(b []byte) ([]*Key, error) {
	var in storedKeys
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("dnssec: keys: %w", err)
	}
	if in.Version != 1 {
		return nil, fmt.Errorf("dnssec: keys: version %d: this build reads version 1", in.Version)
	}
	var keys []*Key
	for i, s := range in.Keys {
		der, err := base64.StdEncoding.DecodeString(s.Private)
		if err != nil {
			return nil, fmt.Errorf("dnssec: keys[%d]: private: %w", i, err)
		}
		p, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("dnssec: keys[%d]: private: %w", i, err)
		}
		priv, ok := p.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("dnssec: keys[%d]: private: not a signing key", i)
		}
		if s.Role != CSK && s.Role != KSK && s.Role != ZSK {
			return nil, fmt.Errorf("dnssec: keys[%d]: role %q: want csk, ksk or zsk", i, s.Role)
		}
		if s.State != Published && s.State != Active && s.State != Retired {
			return nil, fmt.Errorf("dnssec: keys[%d]: state %q: want published, active or retired", i, s.State)
		}
		zone := dns.CanonicalName(s.Zone)
		k := &dns.DNSKEY{
			Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: KeyTTL},
			Flags:     s.Role.Flags(),
			Protocol:  3,
			Algorithm: s.Algorithm,
		}
		if err := setPublic(k, priv); err != nil {
			return nil, fmt.Errorf("dnssec: keys[%d]: %w", i, err)
		}
		keys = append(keys, newKey(zone, s.Role, s.State, s.Created, k, priv))
	}
	return keys, nil
}

// setPublic fills in k's public key field from priv (RFC 6605 §4: X and
// Y, 32 bytes each; RFC 8080 §3: the 32-byte Ed25519 key), checking that
// it matches k's algorithm.
func setPublic(k *dns.DNSKEY, priv crypto.Signer) error {
	switch pub := priv.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Algorithm != ECDSAP256SHA256 || pub.Curve != elliptic.P256() {
			return fmt.Errorf("algorithm %d does not match an ECDSA key", k.Algorithm)
		}
		b, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return err
		}
		k.PublicKey = base64.StdEncoding.EncodeToString(b[1:])
	case ed25519.PublicKey:
		if k.Algorithm != ED25519 {
			return fmt.Errorf("algorithm %d does not match an Ed25519 key", k.Algorithm)
		}
		k.PublicKey = base64.StdEncoding.EncodeToString(pub)
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// Zones returns the zones keys has keys for, sorted.
func Zones(keys []*Key) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		if !seen[k.Zone] {
			seen[k.Zone] = true
			out = append(out, k.Zone)
		}
	}
	sort.Strings(out)
	return out
}

// ZoneKeys returns the keys of zone, in the order of keys.
func ZoneKeys(keys []*Key, zone string) []*Key {
	zone = dns.CanonicalName(zone)
	var out []*Key
	for _, k := range keys {
		if k.Zone == zone {
			out = append(out, k)
		}
	}
	return out
}

// ErrRollover is returned by a rollover step that does not apply to the
// keys as they are (the message says why).
var ErrRollover = errors.New("dnssec: rollover")

// Ensure returns keys with one active key (or a KSK and a ZSK, when split)
// for each of zones that has none, generated with algorithm alg. added
// reports whether any was generated.
func Ensure(keys []*Key, zones []string, alg uint8, split bool, now time.Time) (out []*Key, added bool, err error) {
	out = append([]*Key(nil), keys...)
	for _, z := range zones {
		z = dns.CanonicalName(z)
		if len(ZoneKeys(keys, z)) > 0 {
			continue
		}
		roles := []Role{CSK}
		if split {
			roles = []Role{KSK, ZSK}
		}
		for _, r := range roles {
			k, err := Generate(z, alg, r, Active, now)
			if err != nil {
				return nil, false, err
			}
			out = append(out, k)
			added = true
		}
	}
	return out, added, nil
}

// Prepublish is the first step of a rollover of zone's keys of role (CSK,
// KSK or ZSK): a new key, published in the DNSKEY RRset (and, for a CSK or
// KSK, in CDS and CDNSKEY) but not yet signing data. Wait until every
// resolver can have seen it (KeyTTL) and, for a CSK or KSK, until the
// parent has the new DS, then Switch.
func Prepublish(keys []*Key, zone string, role Role, now time.Time) ([]*Key, *Key, error) {
	zone = dns.CanonicalName(zone)
	var cur *Key
	for _, k := range ZoneKeys(keys, zone) {
		if k.Role != role {
			continue
		}
		switch k.State {
		case Published:
			return nil, nil, fmt.Errorf("%w: %s: key %d is already pre-published: switch to it", ErrRollover, zone, k.Tag)
		case Retired:
			return nil, nil, fmt.Errorf("%w: %s: key %d is retired but not removed: remove it first", ErrRollover, zone, k.Tag)
		case Active:
			cur = k
		}
	}
	if cur == nil {
		return nil, nil, fmt.Errorf("%w: %s: no active %s key", ErrRollover, zone, role)
	}
	n, err := Generate(zone, cur.DNSKEY.Algorithm, role, Published, now)
	if err != nil {
		return nil, nil, err
	}
	return append(append([]*Key(nil), keys...), n), n, nil
}

// Switch is the second step: the pre-published key of role signs, and the
// key it replaces is retired (still published, and still signing the
// DNSKEY RRset if it is a CSK or KSK, so that the old DS keeps
// validating). Wait until the old signatures have expired from caches (the
// largest TTL of the zone) and, for a CSK or KSK, until the parent no
// longer has the old DS, then Remove.
func Switch(keys []*Key, zone string, role Role) ([]*Key, error) {
	zone = dns.CanonicalName(zone)
	found := false
	out := make([]*Key, 0, len(keys))
	for _, k := range keys {
		if k.Zone == zone && k.Role == role && k.State == Published {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: %s: no pre-published %s key to switch to", ErrRollover, zone, role)
	}
	for _, k := range keys {
		if k.Zone == zone && k.Role == role {
			switch k.State {
			case Published:
				k = k.With(Active)
			case Active:
				k = k.With(Retired)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// Remove is the last step: the retired keys of role leave the DNSKEY RRset.
func Remove(keys []*Key, zone string, role Role) ([]*Key, error) {
	zone = dns.CanonicalName(zone)
	out := make([]*Key, 0, len(keys))
	for _, k := range keys {
		if k.Zone == zone && k.Role == role && k.State == Retired {
			continue
		}
		out = append(out, k)
	}
	if len(out) == len(keys) {
		return nil, fmt.Errorf("%w: %s: no retired %s key to remove", ErrRollover, zone, role)
	}
	return out, nil
}

// ParseZones parses a --dnssec value: comma-separated zone names, or "*"
// for every zone served.
func ParseZones(s string) (zones []string, all bool, err error) {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			continue
		case f == "*":
			all = true
		default:
			if _, ok := dns.IsDomainName(f); !ok {
				return nil, false, fmt.Errorf("dnssec: %q is not a domain name", f)
			}
			zones = append(zones, dns.CanonicalName(f))
		}
	}
	if all && len(zones) > 0 {
		return nil, false, errors.New(`dnssec: "*" signs every zone: name no zone beside it`)
	}
	return zones, all, nil
}

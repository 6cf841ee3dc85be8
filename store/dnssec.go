package store

import (
	"errors"
	"time"
)

// DNSSECKeys is the cluster's DNSSEC zone keys: one sealed blob that
// every node opens with a key derived from the cluster secret, so that
// every nameserver signs with the same keys and the state (on disk, in
// snapshots, on the wire) holds them encrypted. The store never sees them
// in the clear.
//
// A change is made from the keys as they were (Prev, the Seq it read, 0
// for none): it is refused when the keys changed meanwhile, so two nodes
// that make keys for a new zone at once do not overwrite each other (the
// second reads the first's and finds nothing to add).
type DNSSECKeys struct {
	Sealed []byte `json:"sealed"`
	Prev   uint64 `json:"prev"`
	// Seq counts the changes; Apply sets it (Prev + 1).
	Seq uint64    `json:"seq"`
	By  string    `json:"by,omitempty"` // the node that proposed it
	At  time.Time `json:"at"`
}

// TypeDNSSECKeys is DNSSECKeys' permanent type byte.
const TypeDNSSECKeys CommandType = 5

// maxSealedKeys bounds the sealed blob (a few hundred bytes a key).
const maxSealedKeys = 1 << 20

var bucketDNSSEC = []byte("dnssec")
var keyDNSSECKeys = []byte("keys")

// Type returns TypeDNSSECKeys.
func (*DNSSECKeys) Type() CommandType { return TypeDNSSECKeys }

func (c *DNSSECKeys) validate() error {
	if len(c.Sealed) == 0 || len(c.Sealed) > maxSealedKeys {
		return errors.New("dnssec keys: sealed blob empty or larger than 1 MiB")
	}
	return nil
}

// applyDNSSECKeys applies c unless the keys changed since c was made.
func (w *writer) applyDNSSECKeys(c *DNSSECKeys) error {
	var cur uint64
	if k := w.d.next.dnssec; k != nil {
		cur = k.Seq
	}
	if c.Prev != cur {
		return rejectf("dnssec keys: changed meanwhile (now at %d, this change was made from %d): read them again", cur, c.Prev)
	}
	n := *c
	n.Seq = cur + 1
	w.put(bucketDNSSEC, keyDNSSECKeys, &n)
	w.d.next.dnssec = &n
	return nil
}

// DNSSECKeys returns the committed DNSSEC keys, sealed.
func (s *State) DNSSECKeys() (DNSSECKeys, bool) {
	if s.dnssec == nil {
		return DNSSECKeys{}, false
	}
	return *s.dnssec, true
}

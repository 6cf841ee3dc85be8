package node

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/gslbd/gslb/dnssec"
	"github.com/gslbd/gslb/store"
)

// In a cluster the zone keys live in the replicated state (one
// store.DNSSECKeys record), sealed with AES-256-GCM under a key derived
// from the cluster secret, so every nameserver signs with the same keys
// and answers validate with one DS. A node that serves a zone to sign for
// which the state has no key makes one and proposes it; proposals made
// from stale keys are refused by the state, and the node then finds the
// winner's keys there. Signing never waits on Raft: until the keys are
// committed the zone is served unsigned.

// sealKey derives the key that seals the zone keys from the cluster secret.
func sealKey(secret string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(secret), []byte("gslb dnssec keys"), "zone signing keys at rest (AES-256-GCM)", 32)
}

// seal encrypts the encoded keys: nonce, then ciphertext.
func seal(secret string, keys []*dnssec.Key) ([]byte, error) {
	plain, err := dnssec.Marshal(keys)
	if err != nil {
		return nil, err
	}
	aead, err := sealAEAD(secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte("gslb dnssec keys v1")), nil
}

// unseal decrypts what seal made.
func unseal(secret string, b []byte) ([]*dnssec.Key, error) {
	aead, err := sealAEAD(secret)
	if err != nil {
		return nil, err
	}
	if len(b) < aead.NonceSize() {
		return nil, errors.New("dnssec keys: sealed blob too short")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte("gslb dnssec keys v1"))
	if err != nil {
		return nil, fmt.Errorf("dnssec keys: cannot open (another cluster secret?): %w", err)
	}
	return dnssec.Unmarshal(plain)
}

func sealAEAD(secret string) (cipher.AEAD, error) {
	k, err := sealKey(secret)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// startDNSSECSync loads the committed keys and follows their changes
// (called from startCluster once the store is open, before any zone is
// served).
func (n *Node) startDNSSECSync(ctx context.Context) error {
	sg := n.signing
	if sg == nil {
		return nil
	}
	secret, err := n.cfg.Cluster.secret()
	if err != nil {
		return err
	}
	if secret == "" {
		return errors.New("dnssec: a cluster needs cluster.secret (or secret_file) to sign: the zone keys are sealed with a key derived from it")
	}
	sg.secret, sg.ctx = secret, ctx
	ch := n.store.Subscribe()
	n.dnssecFromState(n.store.State())
	n.goRun(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				n.dnssecFromState(n.store.State())
			}
		}
	})
	return nil
}

// dnssecFromState signs with the committed keys when they changed, and
// proposes keys for served zones that have none yet.
func (n *Node) dnssecFromState(st *store.State) {
	sg := n.signing
	rec, ok := st.DNSSECKeys()
	sg.mu.Lock()
	if ok && rec.Seq != sg.seq {
		keys, err := unseal(sg.secret, rec.Sealed)
		if err != nil {
			n.log.Error("dnssec: the committed keys do not open; signing with the previous ones", "err", err)
		} else {
			sg.seq = rec.Seq
			n.useKeys(keys)
			n.log.Info("dnssec: keys from the cluster state", "seq", rec.Seq, "by", rec.By, "zones", len(dnssec.Zones(keys)))
		}
	}
	sg.mu.Unlock()
	n.dnssecKeys(n.dns.Snapshot())
}

// commitKeys proposes keys, made from the committed ones at Seq prev,
// and signs with them once committed. sg.mu is not held: serving and
// following the state never wait for Raft.
func (n *Node) commitKeys(ctx context.Context, prev uint64, keys []*dnssec.Key) error {
	sg := n.signing
	sealed, err := seal(sg.secret, keys)
	if err != nil {
		return err
	}
	cmd := &store.DNSSECKeys{Sealed: sealed, Prev: prev, By: n.name, At: time.Now().UTC()}
	if err := n.store.Submit(ctx, cmd); err != nil {
		return fmt.Errorf("dnssec: committing keys: %w", err)
	}
	sg.mu.Lock()
	if sg.seq == prev { // else the state's copy came first
		sg.seq = prev + 1
		n.useKeys(keys)
	}
	sg.mu.Unlock()
	return nil
}

// proposeKeys commits new keys in the background: serving never waits on
// Raft. A refusal (another node's keys came first) is left to
// dnssecFromState, which runs again on that commit.
func (n *Node) proposeKeys(keys []*dnssec.Key) {
	sg := n.signing
	ctx := sg.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	go func() {
		sg.propose.Lock() // one proposal at a time
		defer sg.propose.Unlock()
		// Made again from the keys as they are now.
		sg.mu.Lock()
		var want []string
		for _, z := range dnssec.Zones(keys) {
			if len(dnssec.ZoneKeys(sg.keys, z)) == 0 {
				want = append(want, z)
			}
		}
		prev := sg.seq
		next, _, err := dnssec.Ensure(sg.keys, want, sg.alg, sg.split, time.Now())
		sg.mu.Unlock()
		if len(want) == 0 {
			return
		}
		if err != nil {
			n.log.Error("dnssec: generating keys", "err", err)
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := n.commitKeys(cctx, prev, next); err != nil {
			if errors.Is(err, store.ErrRejected) {
				n.log.Debug("dnssec: another node's keys came first", "err", err)
				return
			}
			n.log.Warn("dnssec: new keys not committed; the zone is served unsigned until they are", "err", err)
			return
		}
		for _, z := range want {
			for _, k := range dnssec.ZoneKeys(next, z) {
				n.log.Info("dnssec: new key", "zone", z, "role", string(k.Role), "tag", k.Tag, "ds", k.DS().String())
			}
		}
	}()
}

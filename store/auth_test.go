package store_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

// clusterID reads the cluster ID a test node recorded in its data dir.
func clusterID(t *testing.T, nd *storetest.Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(nd.Dir, "cluster-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Issue 6 §3, issue 13 §3: Raft and join traffic need the cluster secret.
// A node with another secret cannot join, whether it names the cluster's ID
// or another one, and a TLS client without the secret gets one refusal
// byte and is counted.
func TestWrongSecretRefused(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	leader := c.WaitLeader()
	for _, tc := range []struct{ Name, ClusterID string }{
		{"same cluster id", clusterID(t, c.Nodes[leader])},
		{"other cluster id", "s-whatever"},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			intruder, err := store.New(store.Config{
				NodeID: "intruder", DataDir: t.TempDir(), Listener: ln,
				Secret: store.NewSecret(), ClusterID: tc.ClusterID,
				Logger: storetest.Logger(), Tuning: storetest.Tuning(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer intruder.Close()
			err = intruder.Join(ctxT(t), c.Nodes[leader].Addr)
			if !errors.Is(err, store.ErrAuth) {
				t.Fatalf("join with the wrong secret = %v, want ErrAuth", err)
			}
			t.Logf("join with wrong secret: %v", err)
		})
	}

	// A raw TLS client that does not know the secret sends a made-up proof.
	conn, err := tls.Dial("tcp", c.Nodes[leader].Addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(append([]byte("R"), make([]byte, 32)...))
	reply, err := io.ReadAll(conn)
	conn.Close()
	if len(reply) != 1 || reply[0] != 0 {
		t.Fatalf("TLS client without the cluster key got %x (%v), want one refusal byte 00", reply, err)
	}
	members, _ := c.Nodes[leader].Store.Members()
	if len(members) != 3 {
		t.Fatalf("members = %+v", members)
	}
	storetest.WaitFor(t, "auth failures counted", func() bool {
		return metricValue(t, c.Nodes[leader].Store, "gslb_store_auth_failures_total", nil) >= 3
	})
}

// peerCert returns the certificate addr presents to a client that has no
// secret.
func peerCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// Issue 13 §3: nothing the cluster port shows before authentication is
// derived from the secret. Two nodes with the same secret and cluster ID
// present different keys, a restarted node a new one, no name in the
// certificate holds the cluster ID or a hash of the secret, and the key is
// not the one the first version derived from the secret.
func TestCertificateCarriesNoSecret(t *testing.T) {
	c := storetest.NewCluster(t, 2)
	id := clusterID(t, c.Nodes[0])
	a, b := peerCert(t, c.Nodes[0].Addr), peerCert(t, c.Nodes[1].Addr)
	c.Restart(0)
	c.WaitLeader()
	a2 := peerCert(t, c.Nodes[0].Addr)

	mac := hmac.New(sha256.New, []byte(storetest.Secret))
	mac.Write([]byte("gslb cluster key v1\x00" + id))
	oldKey := ed25519.NewKeyFromSeed(mac.Sum(nil)).Public().(ed25519.PublicKey)
	secretHash := sha256.Sum256([]byte(storetest.Secret))

	keys := map[string]string{}
	for name, cert := range map[string]*x509.Certificate{"n1": a, "n2": b, "n1 restarted": a2} {
		k, ok := cert.PublicKey.(ed25519.PublicKey)
		if !ok {
			t.Fatalf("%s: key %T, want ed25519", name, cert.PublicKey)
		}
		if k.Equal(oldKey) {
			t.Fatalf("%s: presents the key derived from the secret", name)
		}
		if prev, dup := keys[string(k)]; dup {
			t.Fatalf("%s and %s present the same public key", prev, name)
		}
		keys[string(k)] = name
		if cert.Subject.CommonName != "gslb" || len(cert.DNSNames) > 0 || len(cert.IPAddresses) > 0 {
			t.Fatalf("%s: subject %q, names %v %v; want CN gslb and nothing else", name, cert.Subject, cert.DNSNames, cert.IPAddresses)
		}
		for _, leak := range []string{id, strings.TrimPrefix(id, "s-"), storetest.Secret, string(secretHash[:8])} {
			if strings.Contains(string(cert.Raw), leak) {
				t.Fatalf("%s: the certificate contains %q", name, leak)
			}
		}
	}
	t.Logf("n1 %x, n2 %x, n1 after restart %x", a.PublicKey, b.PublicKey, a2.PublicKey)
}

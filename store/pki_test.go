package store_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/store/storetest"
)

// testCA is a certificate authority that writes node certificates to files.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key}
	ca.file = ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, kind string, der []byte) string {
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return path
}

// node issues a certificate for node id and returns the files.
func (ca *testCA) node(id string) *store.TLSFiles {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return &store.TLSFiles{
		CAFile:   ca.file,
		CertFile: ca.write(id+".pem", "CERTIFICATE", der),
		KeyFile:  ca.write(id+"-key.pem", "EC PRIVATE KEY", kder),
	}
}

// Issue 13 §3 (optional part): nodes authenticate with the operator's CA
// instead of a secret. A node with a certificate of another CA, or of the
// right CA but another cluster ID, cannot join; a client without a
// certificate fails the handshake and is counted.
func TestMutualTLSFromFiles(t *testing.T) {
	ca := newTestCA(t, "cluster")
	c := storetest.NewCluster(t, 3, storetest.WithConfig(func(cfg *store.Config) {
		cfg.Secret, cfg.ClusterID, cfg.TLS = "", "pki-test", ca.node(cfg.NodeID)
	}))
	leader := c.WaitLeader()
	f := follower(c, leader)
	idx, err := c.Nodes[f].Store.SubmitIndex(ctxT(t), report("us-east", "web/192.0.2.1", true, t0))
	if err != nil {
		t.Fatalf("submit through a follower: %v", err)
	}
	c.WaitIndex(idx)

	for _, tc := range []struct {
		Name, ClusterID string
		Files           *store.TLSFiles
	}{
		{"certificate of another CA", "pki-test", newTestCA(t, "other").node("intruder")},
		{"trusts the CA, certificate of another", "pki-test", func() *store.TLSFiles {
			f := newTestCA(t, "other").node("intruder")
			f.CAFile = ca.file
			return f
		}()},
		{"right CA, other cluster id", "pki-other", ca.node("intruder")},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			intruder, err := store.New(store.Config{
				NodeID: "intruder", DataDir: t.TempDir(), Listener: ln, ClusterID: tc.ClusterID, TLS: tc.Files,
				Logger: storetest.Logger(), Tuning: storetest.Tuning(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer intruder.Close()
			if err := intruder.Join(ctxT(t), c.Nodes[leader].Addr); !errors.Is(err, store.ErrAuth) {
				t.Fatalf("join = %v, want ErrAuth", err)
			} else {
				t.Logf("join refused: %v", err)
			}
		})
	}

	conn, err := tls.Dial("tcp", c.Nodes[leader].Addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's refusal arrives after the handshake
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate got a reply")
	}
	storetest.WaitFor(t, "refused connections counted", func() bool {
		return metricValue(t, c.Nodes[leader].Store, "gslb_store_auth_failures_total", nil) >= 4
	})
	if members, _ := c.Nodes[leader].Store.Members(); len(members) != 3 {
		t.Fatalf("members = %+v", members)
	}
}

func TestConfigTLSWithoutSecret(t *testing.T) {
	cfg := store.Config{NodeID: "n1", DataDir: "/tmp/x", RaftAddr: "127.0.0.1:0", TLS: &store.TLSFiles{CAFile: "ca.pem"}}
	err := cfg.Validate()
	for _, want := range []string{"cluster.cluster_id: must be set", "cluster.tls.cert_file: must be set", "cluster.tls.key_file: must be set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "cluster.secret") {
		t.Errorf("Validate() = %v: the secret is optional with TLS files", err)
	}
}

package store

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Every connection between nodes is TLS 1.3 with a certificate that each
// node makes at start from a fresh random ed25519 key: it authenticates
// nothing and carries nothing derived from the secret, so a peer that
// connects without the secret learns nothing it could test guesses
// against. Authentication happens inside the encrypted session, bound to
// it: both ends derive authKey = HKDF-SHA256(secret, salt = cluster ID)
// and a value E exported from the TLS session (RFC 8446 §7.5; it differs
// for every session, so a proof cannot be replayed or relayed by a man in
// the middle, who would hold two sessions with two different values).
//
//	dialer   -> purpose byte, HMAC(authKey, "dialer" || purpose || E)
//	listener -> authRefused, and closes                  (wrong proof)
//	listener -> authAccepted, HMAC(authKey, "listener" || E)
//
// The listener answers only after it has checked the dialer's proof, so a
// client without the secret sees one refusal byte and nothing computed
// from the secret. The purpose byte says what the connection is for, and
// the listener hands it either to Raft's transport or to the internal HTTP
// API; both share one port. DESIGN.md discusses what this protects.
const (
	purposeRaft byte = 'R'
	purposeAPI  byte = 'A'

	authRefused  byte = 0
	authAccepted byte = 1

	exporterLabel = "EXPORTER-gslb-cluster-auth-v2"
	proofLen      = sha256.Size
)

// handshakeTimeout bounds the TLS handshake and the proofs of an accepted
// connection, so a silent client cannot hold a goroutine; maxHandshakes
// bounds how many run at once (more are closed at once).
const (
	handshakeTimeout = 10 * time.Second
	maxHandshakes    = 256
)

// clusterAuth holds a node's TLS configuration and the key its proofs are
// made with.
type clusterAuth struct {
	tls *tls.Config
	key []byte
}

// newClusterAuth derives the proof key from secret and clusterID, and makes
// the TLS configuration: with files, mutual TLS with the operator's
// certificates (see pkiTLS); without, a fresh certificate for this run of
// the node.
func newClusterAuth(secret, clusterID string, files *TLSFiles) (*clusterAuth, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), []byte(clusterID), "gslb cluster auth v2", 32)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if files != nil {
		tc, err := pkiTLS(files)
		if err != nil {
			return nil, err
		}
		return &clusterAuth{key: key, tls: tc}, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cluster certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cluster certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "gslb"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(100, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("cluster certificate: %w", err)
	}
	return &clusterAuth{
		key: key,
		tls: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
			MinVersion:   tls.VersionTLS13,
			// The certificate proves nothing; the proofs exchanged inside
			// the session, bound to it by the exporter, authenticate.
			InsecureSkipVerify: true,
			ServerName:         "gslb",
		},
	}, nil
}

// proof is HMAC-SHA256(key, role || 0 || extra || E), E exported from the
// session of tc.
func (a *clusterAuth) proof(tc *tls.Conn, role string, extra ...byte) ([]byte, error) {
	cs := tc.ConnectionState()
	e, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, a.key)
	mac.Write([]byte(role))
	mac.Write([]byte{0})
	mac.Write(extra)
	mac.Write(e)
	return mac.Sum(nil), nil
}

// ErrAuth is wrapped by errors of connections that failed the cluster's
// authentication: a proof of the cluster key was refused or wrong (another
// secret or cluster ID), or, with TLS files, a certificate was refused.
// Retrying does not help.
var ErrAuth = errors.New("cluster authentication failed")

// DialFunc dials a TCP connection; it is Config.Dial.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// mux accepts authenticated connections on one listener and sorts them into
// the Raft stream layer and the API listener.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	auth      *clusterAuth
	dial      DialFunc
	authFail  func()

	raft *chanListener
	api  *chanListener
	sem  chan struct{}

	closeOnce sync.Once
	done      chan struct{}

	heard sync.Map // Raft address -> *atomic.Int64, see lastHeard
}

// lastHeard returns when a Raft connection this node dialed to addr last
// read a byte (a response from that member), zero if never.
func (m *mux) lastHeard(addr string) time.Time {
	if v, ok := m.heard.Load(addr); ok {
		if ns := v.(*atomic.Int64).Load(); ns != 0 {
			return time.Unix(0, ns)
		}
	}
	return time.Time{}
}

// heardConn records in last when it reads anything.
type heardConn struct {
	net.Conn
	last *atomic.Int64
}

func (c heardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func newMux(ln net.Listener, advertise string, auth *clusterAuth, dial DialFunc, authFail func()) (*mux, error) {
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("advertise address %q: %w", advertise, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return nil, fmt.Errorf("advertise address %q: not a routable address", advertise)
	}
	if dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	m := &mux{ln: ln, advertise: adv, auth: auth, dial: dial, authFail: authFail, done: make(chan struct{}), sem: make(chan struct{}, maxHandshakes)}
	m.raft = &chanListener{m: m, ch: make(chan net.Conn)}
	m.api = &chanListener{m: m, ch: make(chan net.Conn)}
	go m.serve()
	return m, nil
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			m.close()
			return
		}
		select {
		case m.sem <- struct{}{}:
			go func() {
				defer func() { <-m.sem }()
				m.handshake(c)
			}()
		default:
			c.Close()
		}
	}
}

func (m *mux) handshake(c net.Conn) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(c, m.auth.tls)
	var msg [1 + proofLen]byte
	if err := tc.Handshake(); err != nil {
		if m.authFail != nil {
			m.authFail()
		}
		c.Close()
		return
	}
	if _, err := io.ReadFull(tc, msg[:]); err != nil {
		m.refuse(tc)
		return
	}
	want, err := m.auth.proof(tc, "dialer", msg[0])
	if err != nil || !hmac.Equal(msg[1:], want) {
		m.refuse(tc)
		return
	}
	var l *chanListener
	switch msg[0] {
	case purposeRaft:
		l = m.raft
	case purposeAPI:
		l = m.api
	default:
		tc.Close()
		return
	}
	mine, err := m.auth.proof(tc, "listener")
	if err != nil {
		tc.Close()
		return
	}
	if _, err := tc.Write(append([]byte{authAccepted}, mine...)); err != nil {
		tc.Close()
		return
	}
	c.SetDeadline(time.Time{})
	select {
	case l.ch <- tc:
	case <-m.done:
		tc.Close()
	}
}

// tlsRefusal reports whether err is a certificate that one side refused
// (only with TLS files: the peer's alert, or a chain this side does not
// trust), which retrying cannot fix.
func tlsRefusal(err error) bool {
	var alert tls.AlertError
	var verr *tls.CertificateVerificationError
	var oe *net.OpError
	return errors.As(err, &alert) || errors.As(err, &verr) || errors.As(err, &oe) && oe.Op == "remote error"
}

// refuse counts a connection that did not prove it holds the cluster key,
// tells it so and closes it.
func (m *mux) refuse(tc *tls.Conn) {
	if m.authFail != nil {
		m.authFail()
	}
	tc.Write([]byte{authRefused})
	tc.Close()
}

// dialPurpose opens an authenticated connection to addr for purpose.
func (m *mux) dialPurpose(ctx context.Context, addr string, purpose byte) (net.Conn, error) {
	c, err := m.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, m.auth.tls)
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		if ctx.Err() == nil && tlsRefusal(err) {
			return nil, fmt.Errorf("%w: handshake with %s: %w", ErrAuth, addr, err)
		}
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(err)
	}
	mine, err := m.auth.proof(tc, "dialer", purpose)
	if err != nil {
		return fail(err)
	}
	if _, err := tc.Write(append([]byte{purpose}, mine...)); err != nil {
		return fail(err)
	}
	var reply [1 + proofLen]byte
	if _, err := io.ReadFull(tc, reply[:1]); err != nil {
		return fail(err)
	}
	if reply[0] != authAccepted {
		c.Close()
		return nil, fmt.Errorf("%w: %s refused this node's proof (wrong cluster secret or cluster id)", ErrAuth, addr)
	}
	if _, err := io.ReadFull(tc, reply[1:]); err != nil {
		return fail(err)
	}
	want, err := m.auth.proof(tc, "listener")
	if err != nil {
		return fail(err)
	}
	if !hmac.Equal(reply[1:], want) {
		c.Close()
		return nil, fmt.Errorf("%w: %s does not hold the cluster key (wrong cluster secret or cluster id)", ErrAuth, addr)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	m  *mux
	ch chan net.Conn
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return l.m.close() }
func (l *chanListener) Addr() net.Addr { return l.m.advertise }

// streamLayer is the raft.StreamLayer over the mux.
type streamLayer struct{ *chanListener }

func (s streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.m.dialPurpose(ctx, string(addr), purposeRaft)
	if err != nil {
		return nil, err
	}
	v, _ := s.m.heard.LoadOrStore(string(addr), new(atomic.Int64))
	last := v.(*atomic.Int64)
	last.Store(time.Now().UnixNano()) // it just proved it holds the key
	return heardConn{Conn: c, last: last}, nil
}

// pkiTLS is the TLS configuration for operator-provided files: both sides
// present their certificate and verify the other's against the CA.
func pkiTLS(files *TLSFiles) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.cert_file %s, key_file %s: %w", files.CertFile, files.KeyFile, err)
	}
	pem, err := os.ReadFile(files.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster.tls.ca_file: %s holds no PEM certificate", files.CAFile)
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAnyClientCert,
		// Chains are verified against the CA in VerifyConnection, on both
		// sides, without a host name: peers are dialed by address.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
	}, nil
}

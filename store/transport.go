package store

import (
	"context"
	"crypto/ed25519"
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
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Every connection between nodes is mutual TLS 1.3 with one key pair that
// each node derives from the cluster secret and the cluster ID: a peer is
// trusted exactly when it proves it holds that key, so knowing the secret
// is both necessary and sufficient, and nothing else (no CA, no files) has
// to be distributed. After the handshake the dialer sends one byte that
// says what the connection is for, and the listener hands it either to
// Raft's transport or to the internal HTTP API. Both share one port.
const (
	purposeRaft byte = 'R'
	purposeAPI  byte = 'A'
)

// handshakeTimeout bounds the TLS handshake and purpose byte of an accepted
// connection, so a silent client cannot hold a goroutine; maxHandshakes
// bounds how many run at once (more are closed at once).
const (
	handshakeTimeout = 10 * time.Second
	maxHandshakes    = 256
)

// clusterTLS derives the shared certificate and the client and server TLS
// configurations from secret and clusterID.
func clusterTLS(secret, clusterID string) (*tls.Config, error) {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("gslb cluster key v1\x00" + clusterID))
	priv := ed25519.NewKeyFromSeed(mac.Sum(nil))
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gslb cluster " + clusterID},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("cluster certificate: %w", err)
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("peer sent no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
		k, ok := c.PublicKey.(ed25519.PublicKey)
		if !ok || !k.Equal(pub) {
			return errors.New("peer does not hold the cluster key (wrong cluster secret or cluster id)")
		}
		return nil
	}
	return &tls.Config{
		Certificates:          []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
		MinVersion:            tls.VersionTLS13,
		ClientAuth:            tls.RequireAnyClientCert,
		InsecureSkipVerify:    true, // replaced by VerifyPeerCertificate: the peer must hold the cluster key
		VerifyPeerCertificate: verify,
		ServerName:            "gslb",
	}, nil
}

// ErrAuth is wrapped by errors of connections that failed the cluster TLS
// handshake: the peer does not hold the cluster key (another secret or
// cluster ID). Retrying does not help.
var ErrAuth = errors.New("cluster authentication failed")

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// DialFunc dials a TCP connection; it is Config.Dial.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// mux accepts authenticated connections on one listener and sorts them into
// the Raft stream layer and the API listener.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config
	dial      DialFunc
	authFail  func()

	raft *chanListener
	api  *chanListener
	sem  chan struct{}

	closeOnce sync.Once
	done      chan struct{}
}

func newMux(ln net.Listener, advertise string, tc *tls.Config, dial DialFunc, authFail func()) (*mux, error) {
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
	m := &mux{ln: ln, advertise: adv, tls: tc, dial: dial, authFail: authFail, done: make(chan struct{}), sem: make(chan struct{}, maxHandshakes)}
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
	tc := tls.Server(c, m.tls)
	var p [1]byte
	if err := tc.Handshake(); err != nil {
		if m.authFail != nil {
			m.authFail()
		}
		c.Close()
		return
	}
	if _, err := tc.Read(p[:]); err != nil {
		tc.Close()
		return
	}
	c.SetDeadline(time.Time{})
	var l *chanListener
	switch p[0] {
	case purposeRaft:
		l = m.raft
	case purposeAPI:
		l = m.api
	default:
		tc.Close()
		return
	}
	select {
	case l.ch <- tc:
	case <-m.done:
		tc.Close()
	}
}

// dialPurpose opens an authenticated connection to addr for purpose.
func (m *mux) dialPurpose(ctx context.Context, addr string, purpose byte) (net.Conn, error) {
	c, err := m.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, m.tls)
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		if ctx.Err() == nil && !isNetError(err) {
			return nil, fmt.Errorf("%w: handshake with %s: %w", ErrAuth, addr, err)
		}
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	if _, err := tc.Write([]byte{purpose}); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
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
	return s.m.dialPurpose(ctx, string(addr), purposeRaft)
}

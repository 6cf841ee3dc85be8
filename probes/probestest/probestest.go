// Package probestest provides test servers and helpers for the probes
// package: a test certificate authority, an HTTP(S) server whose answer can
// be changed while it runs, a minimal DNS responder, and a Sink that
// records reports. Everything listens on 127.0.0.1 with a free port.
package probestest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
)

// CA is a throwaway certificate authority for TLS tests.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	next atomic.Int64
}

// NewCA generates a CA valid for a day.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gslb probes test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ca := &CA{cert: cert, key: key, pool: pool}
	ca.next.Store(1)
	return ca
}

// Pool returns a pool holding the CA certificate, for CheckerConfig.RootCAs.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Issue returns a server certificate for the given DNS names and IP
// addresses, valid until notAfter.
func (ca *CA) Issue(t testing.TB, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.next.Add(1)),
		Subject:      pkix.Name{CommonName: "probes test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// Request is what a Server saw of one request.
type Request struct {
	Method, Host, Path, SNI string
}

// Server is an HTTP or HTTPS server on 127.0.0.1 whose status and body can
// be changed while it runs, and which can be made to hang.
type Server struct {
	*httptest.Server
	Addr netip.AddrPort

	mu     sync.Mutex
	status int
	body   string
	hang   chan struct{} // non-nil: handlers block until it is closed
	reqs   []Request
}

// NewServer starts an HTTP server answering 200 "ok"; it stops at test end.
func NewServer(t testing.TB) *Server {
	s := newServer()
	s.Start()
	return s.started(t)
}

// NewTLSServer starts an HTTPS server with cert, answering 200 "ok".
func NewTLSServer(t testing.TB, cert tls.Certificate) *Server {
	s := newServer()
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	return s.started(t)
}

func newServer() *Server {
	s := &Server{status: 200, body: "ok"}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Failed handshakes are what some tests are about; keep them quiet.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	return s
}

func (s *Server) started(t testing.TB) *Server {
	s.Addr = netip.MustParseAddrPort(s.Listener.Addr().String())
	t.Cleanup(func() {
		s.Release()
		s.Close()
	})
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rq := Request{Method: r.Method, Host: r.Host, Path: r.URL.RequestURI()}
	if r.TLS != nil {
		rq.SNI = r.TLS.ServerName
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, rq)
	status, body, hang := s.status, s.body, s.hang
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// Set changes the status and body of later answers.
func (s *Server) Set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// Hang makes later requests block until Release or the client gives up.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
}

// Release ends Hang.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// DNSServer answers every UDP query on 127.0.0.1 with a header-only reply
// carrying the rcode set with SetRcode (NOERROR at first).
type DNSServer struct {
	Addr  netip.AddrPort
	rcode atomic.Int32
	conn  net.PacketConn
}

// NewDNSServer starts a DNSServer; it stops at test end.
func NewDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNSServer{conn: c, Addr: netip.MustParseAddrPort(c.LocalAddr().String())}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := append([]byte(nil), buf[:n]...)
			flags := binary.BigEndian.Uint16(resp[2:])
			flags |= 0x8000 | 0x0400 // QR, AA
			flags = flags&^0x000f | uint16(d.rcode.Load())&0x0f
			binary.BigEndian.PutUint16(resp[2:], flags)
			c.WriteTo(resp, from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return d
}

// SetRcode sets the rcode of later replies.
func (d *DNSServer) SetRcode(rc int) { d.rcode.Store(int32(rc)) }

// Collector is a probes.Sink that keeps every report and signals each one.
type Collector struct {
	mu      sync.Mutex
	reports []probes.Report
	signal  chan struct{}
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector { return &Collector{signal: make(chan struct{}, 1)} }

// Report records r.
func (c *Collector) Report(r probes.Report) {
	c.mu.Lock()
	c.reports = append(c.reports, r)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// Reports returns the reports so far.
func (c *Collector) Reports() []probes.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]probes.Report(nil), c.reports...)
}

// WaitFor waits until ok holds for the reports so far, or ctx is done; it
// returns whether ok held.
func (c *Collector) WaitFor(ctx context.Context, ok func([]probes.Report) bool) bool {
	for {
		if ok(c.Reports()) {
			return true
		}
		select {
		case <-c.signal:
		case <-ctx.Done():
			return ok(c.Reports())
		}
	}
}

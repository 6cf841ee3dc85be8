// Package proxytest starts real backends and proxies on loopback for the
// proxy's tests and for integration tests, like net/http/httptest.
package proxytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
)

// Backend is an HTTP backend on 127.0.0.1 that names itself in the
// X-Backend response header and in its body. Paths:
//
//	/hold       blocks until Release is called (Held counts arrivals)
//	/status/N   responds with status N
//	/healthz    200, or 503 while SetHealthy(false)
//	/echo       echoes the request's forwarding headers as "Key: value" lines
//	anything else: 200 with the backend name
type Backend struct {
	Name   string
	Addr   string
	Server *httptest.Server
	Hits   atomic.Int64

	unhealthy atomic.Bool
	held      chan struct{} // one value per request arriving at /hold
	mu        sync.Mutex
	release   chan struct{}
}

// NewBackend starts a backend; it is closed when the test ends.
func NewBackend(t testing.TB, name string) *Backend {
	t.Helper()
	b := &Backend{Name: name, held: make(chan struct{}, 1024), release: make(chan struct{})}
	b.Server = httptest.NewServer(b)
	b.Addr = b.Server.Listener.Addr().String()
	t.Cleanup(b.Close)
	return b
}

// NewBackends starts n backends named b0, b1, ...
func NewBackends(t testing.TB, n int) []*Backend {
	out := make([]*Backend, n)
	for i := range out {
		out[i] = NewBackend(t, "b"+strconv.Itoa(i))
	}
	return out
}

// Close stops the backend (idempotent).
func (b *Backend) Close() {
	b.Release()
	b.Server.CloseClientConnections()
	b.Server.Close()
}

// SetHealthy makes /healthz answer 200 (true) or 503.
func (b *Backend) SetHealthy(ok bool) { b.unhealthy.Store(!ok) }

// Held returns a channel that receives once per request arriving at /hold.
func (b *Backend) Held() <-chan struct{} { return b.held }

// Release lets every request held at /hold (now or later, until the next
// Hold call) finish.
func (b *Backend) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

// Hold makes later /hold requests block again after a Release.
func (b *Backend) Hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.release:
		b.release = make(chan struct{})
	default:
	}
}

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", b.Name)
	switch {
	case r.URL.Path == "/healthz":
		if b.unhealthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	b.Hits.Add(1)
	switch {
	case r.URL.Path == "/hold":
		b.mu.Lock()
		rel := b.release
		b.mu.Unlock()
		b.held <- struct{}{}
		select {
		case <-rel:
		case <-r.Context().Done():
			return
		}
	case len(r.URL.Path) > 8 && r.URL.Path[:8] == "/status/":
		code, _ := strconv.Atoi(r.URL.Path[8:])
		w.WriteHeader(code)
	case r.URL.Path == "/echo":
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Request-Id", "Connection", "X-Hop", "X_Under"} {
			fmt.Fprintf(w, "%s: %s\n", k, r.Header.Get(k))
		}
		return
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s read %d\n", b.Name, n)
		return
	}
	io.WriteString(w, b.Name)
}

// Start builds and starts a proxy; it is shut down when the test ends.
func Start(t testing.TB, cfg proxy.Config) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("proxy.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return p
}

// Group returns a group config over the backends' addresses.
func Group(name, algorithm string, bs ...*Backend) proxy.GroupConfig {
	g := proxy.GroupConfig{Name: name, Algorithm: algorithm}
	for _, b := range bs {
		g.Backends = append(g.Backends, proxy.BackendConfig{Address: b.Addr})
	}
	return g
}

// HTTPConfig is a config with one http listener ("http") and one catch-all
// route ("all") to group g.
func HTTPConfig(g proxy.GroupConfig) proxy.Config {
	return proxy.Config{
		Listeners: []proxy.ListenerConfig{{Name: "http", Address: "127.0.0.1:0"}},
		Routes:    []proxy.RouteConfig{{Name: "all", Backends: g.Name}},
		Groups:    []proxy.GroupConfig{g},
	}
}

// Cert writes a self-signed ECDSA certificate for the DNS names into dir
// and returns the PEM file paths and the parsed certificate.
func Cert(t testing.TB, dir string, names ...string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, names[0]+".crt")
	keyFile = filepath.Join(dir, names[0]+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// Eventually polls cond every few milliseconds until it holds, failing the
// test after 20 seconds. It is for state that changes in another goroutine
// without a channel to wait on (health checker verdicts).
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
)

// dialRaw opens a connection to addr, closed when the test ends.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // safety net only
	return conn
}

// rawExchange sends req on a new connection to addr and returns all that
// comes back until the proxy closes the connection.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	conn := dialRaw(t, addr)
	io.WriteString(conn, req)
	b, _ := io.ReadAll(conn)
	return string(b)
}

// RFC 9112 §6.1: a request with both Content-Length and Transfer-Encoding
// is refused with 400 and the connection closed; nothing reaches the
// backend, whatever the case of the names or the order of the fields.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	be := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
	})
	p, _ := startHTTP(t, proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: be}}})
	next := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct{ name, req string }{
		{"CL then TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n" + next},
		{"lower case", "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" + next},
		{"GET", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n" + next},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rawExchange(t, p.Addrs()["http"], tc.req)
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, "Connection: close\r\n") {
				t.Fatalf("response\n%s\nwant 400 with Connection: close", got)
			}
			if n := strings.Count(got, "HTTP/1.1 "); n != 1 {
				t.Fatalf("%d responses, want 1 (the connection closed after the 400):\n%s", n, got)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 0 {
		t.Fatalf("the backend saw %q", seen)
	}
}

// The fast path (requests parsed from the read buffer, responses copied
// from the backend's) and net/http's path forward the same request and
// response: the backend sees the same fields, the client gets the same
// fields, hop-by-hop ones removed both ways.
func TestFastPathMatchesNetHTTP(t *testing.T) {
	be := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vv := range r.Header {
			if k == "Content-Length" {
				continue // sent by the slow variant below
			}
			lines = append(lines, k+": "+strings.Join(vv, " | "))
		}
		slices.Sort(lines)
		h := w.Header()
		h.Set("Connection", "keep-alive")
		h.Set("Keep-Alive", "timeout=5")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Set("X-Echo-Uri", r.RequestURI)
		h.Set("X-Echo-Host", r.Host)
		body := r.Method + "\n" + strings.Join(lines, "\n") + "\n"
		h.Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	p, _ := startHTTP(t, proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: be}}},
		func(c *proxy.Config) { c.RequestIDHeader = "-" })
	addr := p.Addrs()["http"]
	fields := "Host: example.test:8080\r\nUser-Agent: t/1\r\nx-lower: a\r\nX-Dup: 1\r\nX-Dup: 2\r\nX-Blank:\r\n" +
		"Connection: keep-alive, X-Hop\r\nX-Hop: h\r\nKeep-Alive: 300\r\nX_Under: u\r\nX-Forwarded-For: 6.6.6.6\r\n"
	type result struct {
		status string
		header []string
		body   string
	}
	exchange := func(req string) result {
		t.Helper()
		conn := dialRaw(t, addr)
		io.WriteString(conn, req)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var hs []string
		for k, vv := range resp.Header {
			if k != "Date" {
				hs = append(hs, k+": "+strings.Join(vv, " | "))
			}
		}
		slices.Sort(hs)
		return result{resp.Status, hs, string(b)}
	}
	for _, target := range []string{"/a/b?x=1&y=2", "/", "/q?", "/p:@!$&'()*+,;=-._~"} {
		fast := exchange("GET " + target + " HTTP/1.1\r\n" + fields + "\r\n")
		// Content-Length: 0 sends the same request through http.ReadRequest
		// and http.ReadResponse.
		slow := exchange("GET " + target + " HTTP/1.1\r\n" + fields + "Content-Length: 0\r\n\r\n")
		if fast.status != slow.status || !slices.Equal(fast.header, slow.header) || fast.body != slow.body {
			t.Errorf("GET %s: fast path\n%s\n%q\n%s\nnet/http path\n%s\n%q\n%s", target,
				fast.status, fast.header, fast.body, slow.status, slow.header, slow.body)
			continue
		}
		for _, bad := range []string{"X-Hop", "Keep-Alive", "X_Under", "6.6.6.6"} {
			if strings.Contains(fast.body, bad) {
				t.Errorf("GET %s: the backend saw %s:\n%s", target, bad, fast.body)
			}
		}
		for _, want := range []string{"X-Dup: 1 | 2", "X-Lower: a", "X-Forwarded-For: 127.0.0.1", "User-Agent: t/1"} {
			if !strings.Contains(fast.body, want) {
				t.Errorf("GET %s: the backend saw\n%s\nwant %q", target, fast.body, want)
			}
		}
		want := []string{"Set-Cookie: a=1 | b=2", "X-Echo-Host: example.test:8080", "X-Echo-Uri: " + target}
		for _, w := range want {
			if !slices.Contains(fast.header, w) {
				t.Errorf("GET %s: the client got %q, want %q in it", target, fast.header, w)
			}
		}
		if slices.ContainsFunc(fast.header, func(h string) bool { return strings.HasPrefix(h, "Keep-Alive") || strings.HasPrefix(h, "Connection") }) {
			t.Errorf("GET %s: hop-by-hop field reached the client: %q", target, fast.header)
		}
	}
}

// RFC 9112 §6.1 on h2c listeners, whose HTTP/1 net/http serves: a chunked
// request that also had a Content-Length is served (net/http drops the
// length) with the connection closed after it.
func TestContentLengthWithTransferEncodingH2C(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	be := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
	})
	p, _ := startHTTP(t, proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: be}}},
		func(c *proxy.Config) { c.Listeners[0].H2C = true })
	got := rawExchange(t, p.Addrs()["http"], "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "Connection: close\r\n") || strings.Count(got, "HTTP/1.1 ") != 1 {
		t.Fatalf("response\n%s\nwant one 200 with Connection: close", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"POST /p abc"}) {
		t.Fatalf("the backend saw %q, want [\"POST /p abc\"]", seen)
	}
}

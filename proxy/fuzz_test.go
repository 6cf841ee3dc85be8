package proxy_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
)

// FuzzHTTPFront (PX-14) sends raw bytes to the HTTP/1 front: whatever comes
// back starts as an HTTP response, and the proxy still serves a normal
// request afterwards.
//
//	go test -run '^$' -fuzz FuzzHTTPFront -fuzztime 60s ./proxy/
func FuzzHTTPFront(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"\x16\x03\x01\x00\x05hello",
	} {
		f.Add([]byte(s))
	}
	bs := proxytest.NewBackends(f, 1)
	cfg := proxytest.HTTPConfig(proxytest.Group("web", "", bs...))
	cfg.Timeouts.ReadHeader = 2 * time.Second
	p := proxytest.Start(f, cfg)
	addr := p.Addrs()["http"]
	c := client() // one client: a new one per input would leak its idle connections
	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write(data)
		conn.(*net.TCPConn).CloseWrite()
		// Responses cannot be split without knowing each request's method
		// (HEAD), so check that whatever came back starts as HTTP.
		out, _ := io.ReadAll(conn)
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
			t.Fatalf("response does not start with a status line: %q", out)
		}
		if code, b := get(t, c, "http://"+addr+"/"); code != 200 || b != "b0" {
			t.Fatalf("after the input, a normal request got %d from %q", code, b)
		}
	})
}

var _ = proxy.AlgRoundRobin

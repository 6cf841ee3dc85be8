package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestParseFast(t *testing.T) {
	tests := []struct {
		name, head string
		fast       bool
		check      func(*http.Request) string // "" when right
	}{
		{"GET", "GET /a?b=1 HTTP/1.1\r\nHost: x:80\r\nX-A: 1\r\nx-a: 2\r\nAccept:  */* \r\n\r\n", true, func(r *http.Request) string {
			switch {
			case r.Method != "GET" || r.Host != "x:80" || r.URL.Path != "/a" || r.URL.RawQuery != "b=1" || r.RequestURI != "/a?b=1":
				return "request line or host"
			case strings.Join(r.Header["X-A"], ",") != "1,2" || r.Header.Get("Accept") != "*/*" || r.Header["Host"] != nil:
				return "header"
			case r.Close || r.ContentLength != 0 || r.Body != http.NoBody:
				return "framing"
			}
			return ""
		}},
		{"HEAD close", "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true, func(r *http.Request) string {
			if r.Method != "HEAD" || !r.Close {
				return "method or close"
			}
			return ""
		}},
		{"obs-text and tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\tb\r\n\r\n", true, nil},
		{"empty value", "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n\r\n", true, nil},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", false, nil},
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\n\r\n", false, nil},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", false, nil},
		{"no host", "GET / HTTP/1.1\r\n\r\n", false, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", false, nil},
		{"host with space", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", false, nil},
		{"content-length 0", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false, nil},
		{"transfer-encoding", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", false, nil},
		{"expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false, nil},
		{"upgrade", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false, nil},
		{"connection names a field", "GET / HTTP/1.1\r\nHost: x\r\nConnection: X-A\r\n\r\n", false, nil},
		{"percent in target", "GET /%41 HTTP/1.1\r\nHost: x\r\n\r\n", false, nil},
		{"absolute form", "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", false, nil},
		{"space in target", "GET / x HTTP/1.1\r\nHost: x\r\n\r\n", false, nil},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", false, nil},
		{"bare LF in field", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", false, nil},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", false, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", false, nil},
		{"control in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01\r\n\r\n", false, nil},
		{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hc := &h1conn{hdr: http.Header{}}
			head := []byte(tc.head)
			if n := headEnd(head); n != len(head) {
				t.Fatalf("headEnd = %d, want %d", n, len(head))
			}
			r, ok := hc.parseFast(head)
			if ok != tc.fast {
				t.Fatalf("%q: fast = %v, want %v", tc.head, ok, tc.fast)
			}
			if ok && tc.check != nil {
				if what := tc.check(r); what != "" {
					t.Fatalf("%q: wrong %s: %+v", tc.head, what, r)
				}
			}
			if !ok {
				return
			}
			if err := sameAsNetHTTP(head, r); err != "" {
				t.Fatal(err)
			}
		})
	}
}

// sameAsNetHTTP returns "" when http.ReadRequest accepts head and parses
// it as parseFast did (r), else what differs.
func sameAsNetHTTP(head []byte, r *http.Request) string {
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return fmt.Sprintf("%q: fast, but http.ReadRequest: %v", head, err)
	}
	if want.Method != r.Method || want.Host != r.Host || *want.URL != *r.URL || want.RequestURI != r.RequestURI ||
		want.Close != r.Close || want.ContentLength != r.ContentLength || len(want.Header) != len(r.Header) {
		return fmt.Sprintf("%q: fast path %+v %+v, net/http %+v %+v", head, r, r.URL, want, want.URL)
	}
	for k, v := range want.Header {
		if strings.Join(v, "\x00") != strings.Join(r.Header[k], "\x00") {
			return fmt.Sprintf("%q: %s = %q, net/http %q", head, k, r.Header[k], v)
		}
	}
	return ""
}

// FuzzParseFast: whatever head the fast path accepts, net/http accepts
// and parses the same way (the fast path may only be narrower).
//
//	go test -run '^$' -fuzz FuzzParseFast -fuzztime 60s ./proxy/
func FuzzParseFast(f *testing.F) {
	for _, s := range []string{
		"GET /a?b=1 HTTP/1.1\r\nHost: x:80\r\nX-A: 1\r\nx-a: 2\r\nAccept:  */* \r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\nUser-Agent: a\tb\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := headEnd(data)
		if n < 0 {
			return
		}
		head := data[:n]
		hc := &h1conn{hdr: http.Header{}}
		r, ok := hc.parseFast(head)
		if !ok {
			return
		}
		if err := sameAsNetHTTP(head, r); err != "" {
			t.Fatal(err)
		}
	})
}

func TestParseRespHead(t *testing.T) {
	tests := []struct {
		name, head string
		plain      bool
		want       respHead
	}{
		{"200", "HTTP/1.1 200 OK\r\nContent-Length: 14\r\nDate: x\r\n\r\n", true, respHead{status: 200, length: 14, keep: true, hasDate: true}},
		{"404 close", "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nConnection: close\r\n\r\n", true, respHead{status: 404, length: 0}},
		{"no reason", "HTTP/1.1 503\r\nContent-Length: 1\r\n\r\n", true, respHead{status: 503, length: 1, keep: true}},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, respHead{}},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false, respHead{}},
		{"two CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, respHead{}},
		{"signed CL", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", false, respHead{}},
		{"no CL", "HTTP/1.1 200 OK\r\n\r\n", false, respHead{}},
		{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, respHead{}},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false, respHead{}},
		{"100", "HTTP/1.1 100 Continue\r\n\r\n", false, respHead{}},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, respHead{}},
		{"trailer", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTrailer: X\r\n\r\n", false, respHead{}},
		{"connection names a field", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: X-A\r\n\r\n", false, respHead{}},
		{"obs-fold", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\r\n b\r\n\r\n", false, respHead{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRespHead([]byte(tc.head))
			if ok != tc.plain || ok && got != tc.want {
				t.Fatalf("%q: %+v, %v; want %+v, %v", tc.head, got, ok, tc.want, tc.plain)
			}
		})
	}
}

func TestFastPathAllocations(t *testing.T) {
	hc := &h1conn{hdr: http.Header{}, vals: make([]string, 0, 16)}
	head := []byte("GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
	hc.parseFast(head)
	if n := testing.AllocsPerRun(100, func() { hc.parseFast(head) }); n != 0 {
		t.Errorf("parseFast of a repeated head: %v allocations, want 0", n)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: keep-alive\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { parseRespHead(resp) }); n != 0 {
		t.Errorf("parseRespHead: %v allocations, want 0", n)
	}
}

package proxy_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
)

// get sends one request and returns the status and the X-Backend header.
func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	return do(t, c, http.MethodGet, url, "", hdr...)
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

func startHTTP(t *testing.T, g proxy.GroupConfig, mod ...func(*proxy.Config)) (*proxy.Proxy, string) {
	t.Helper()
	cfg := proxytest.HTTPConfig(g)
	for _, m := range mod {
		m(&cfg)
	}
	p := proxytest.Start(t, cfg)
	return p, "http://" + p.Addrs()["http"]
}

func TestRoundRobinExactOrder(t *testing.T) {
	bs := proxytest.NewBackends(t, 3)
	perms := [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}}
	for _, perm := range perms {
		t.Run(fmt.Sprint(perm), func(t *testing.T) {
			order := []*proxytest.Backend{bs[perm[0]], bs[perm[1]], bs[perm[2]]}
			_, url := startHTTP(t, proxytest.Group("web", proxy.AlgRoundRobin, order...))
			c := client()
			for i := range 30 {
				_, got := get(t, c, url+"/")
				if want := order[i%3].Name; got != want {
					t.Fatalf("request %d went to %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestWeightedRoundRobin532(t *testing.T) {
	bs := proxytest.NewBackends(t, 3)
	g := proxytest.Group("web", proxy.AlgWeightedRoundRobin, bs...)
	for i, w := range []int{5, 3, 2} {
		g.Backends[i].Weight = w
	}
	_, url := startHTTP(t, g)
	c := client()
	counts := map[string]int{}
	const n = 10000
	var window []string
	for i := range n {
		_, b := get(t, c, url+"/")
		counts[b]++
		if i < 10 {
			window = append(window, b)
		}
	}
	// Smooth: the first cycle of 10 interleaves (nginx's sequence for 5,3,2).
	t.Logf("first cycle %v, counts %v", window, counts)
	if got := strings.Join(window, ","); got != "b0,b1,b2,b0,b0,b1,b0,b2,b1,b0" {
		t.Errorf("first cycle = %s, want nginx's smooth order b0,b1,b2,b0,b0,b1,b0,b2,b1,b0", got)
	}
	for i, w := range []float64{0.5, 0.3, 0.2} {
		share := float64(counts[bs[i].Name]) / n
		if math.Abs(share-w) > 0.01 {
			t.Errorf("%s share %.4f, want %.2f±0.01", bs[i].Name, share, w)
		}
	}
}

// TestLeastConnHeld holds one request on each of two backends, then
// expects every further request on the third: the only one with no
// request in flight.
func TestLeastConnHeld(t *testing.T) {
	for _, alg := range []string{proxy.AlgLeastConn, proxy.AlgWeightedLeastConn, proxy.AlgLeastTime} {
		t.Run(alg, func(t *testing.T) {
			bs := proxytest.NewBackends(t, 3)
			_, url := startHTTP(t, proxytest.Group("web", alg, bs...))
			c := client()
			var wg sync.WaitGroup
			busy := map[string]bool{}
			for range 2 {
				wg.Go(func() {
					if resp, err := c.Get(url + "/hold"); err == nil {
						resp.Body.Close()
					}
				})
				select {
				case <-bs[0].Held():
					busy["b0"] = true
				case <-bs[1].Held():
					busy["b1"] = true
				case <-bs[2].Held():
					busy["b2"] = true
				}
			}
			if len(busy) != 2 {
				t.Fatalf("two held requests went to %v, want two different backends", busy)
			}
			for i := range 10 {
				_, got := get(t, c, url+"/")
				if busy[got] {
					t.Fatalf("request %d went to %s, busy with a held request (busy: %v)", i, got, busy)
				}
			}
			for _, b := range bs {
				b.Release()
			}
			wg.Wait()
		})
	}
}

func TestHashAffinity(t *testing.T) {
	bs := proxytest.NewBackends(t, 3)
	tests := []struct {
		name string
		g    func() proxy.GroupConfig
		req  func(i int) (path string, hdr []string)
	}{
		{"ip_hash", func() proxy.GroupConfig { return proxytest.Group("web", proxy.AlgIPHash, bs...) },
			func(i int) (string, []string) { return fmt.Sprintf("/p%d", i), nil }},
		{"uri_hash", func() proxy.GroupConfig { return proxytest.Group("web", proxy.AlgURIHash, bs...) },
			func(i int) (string, []string) { return "/same", []string{"X-User", fmt.Sprint(i)} }},
		{"header_hash", func() proxy.GroupConfig {
			g := proxytest.Group("web", proxy.AlgHeaderHash, bs...)
			g.HashHeader = "X-User"
			return g
		}, func(i int) (string, []string) { return fmt.Sprintf("/p%d", i), []string{"X-User", "alice"} }},
		{"consistent_hash", func() proxy.GroupConfig {
			g := proxytest.Group("web", proxy.AlgConsistentHash, bs...)
			g.HashKey = "header:X-User"
			return g
		}, func(i int) (string, []string) { return fmt.Sprintf("/p%d", i), []string{"X-User", "bob"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, url := startHTTP(t, tc.g())
			c := client()
			first := ""
			for i := range 50 {
				path, hdr := tc.req(i)
				_, b := get(t, c, url+path, hdr...)
				if first == "" {
					first = b
				}
				if b != first {
					t.Fatalf("request %d went to %s, want %s (same key)", i, b, first)
				}
			}
		})
	}
	// Different keys spread over every backend.
	g := proxytest.Group("web", proxy.AlgURIHash, bs...)
	_, url := startHTTP(t, g)
	c := client()
	seen := map[string]int{}
	for i := range 300 {
		_, b := get(t, c, fmt.Sprintf("%s/k%d", url, i))
		seen[b]++
	}
	if len(seen) != 3 {
		t.Errorf("uri_hash over 300 paths used %v, want all 3 backends", seen)
	}
}

func TestRandomSpread(t *testing.T) {
	for _, alg := range []string{proxy.AlgRandom, proxy.AlgP2C} {
		t.Run(alg, func(t *testing.T) {
			bs := proxytest.NewBackends(t, 3)
			_, url := startHTTP(t, proxytest.Group("web", alg, bs...))
			c := client()
			seen := map[string]int{}
			for range 600 {
				_, b := get(t, c, url+"/")
				seen[b]++
			}
			t.Logf("%s: %v", alg, seen)
			for _, b := range bs {
				// Binomial(600, 1/3): mean 200, sd 11.5; 120 is 7 sd away.
				// (p2c with sequential requests sees equal loads: random.)
				if seen[b.Name] < 120 {
					t.Errorf("%s: %s got %d of 600", alg, b.Name, seen[b.Name])
				}
			}
		})
	}
}

// TestStickyCookie: 100 requests with the cookie stay on one backend; when
// it goes down the client moves and gets a new cookie.
func TestStickyCookie(t *testing.T) {
	bs := proxytest.NewBackends(t, 3)
	g := proxytest.Group("web", proxy.AlgRoundRobin, bs...)
	g.StickyCookie = "GSLB"
	_, url := startHTTP(t, g)
	c := client()
	resp, err := c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "GSLB" {
			cookie = ck
		}
	}
	if cookie == nil {
		t.Fatalf("no GSLB cookie in %v", resp.Header["Set-Cookie"])
	}
	first := resp.Header.Get("X-Backend")
	for i := range 100 {
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.AddCookie(cookie)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if b := resp.Header.Get("X-Backend"); b != first {
			t.Fatalf("request %d with cookie went to %s, want %s", i, b, first)
		}
		if len(resp.Cookies()) != 0 {
			t.Fatalf("request %d with a valid cookie got a new one: %v", i, resp.Header["Set-Cookie"])
		}
	}
	for _, b := range bs {
		if b.Name == first {
			b.Close()
		}
	}
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.AddCookie(cookie)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") == first {
		t.Fatalf("sticky backend down: status %d from %q, want 200 from another", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	var renewed bool
	for _, ck := range resp.Cookies() {
		renewed = renewed || ck.Name == "GSLB" && ck.Value != cookie.Value
	}
	if !renewed {
		t.Errorf("sticky backend down: no new cookie in %v", resp.Header["Set-Cookie"])
	}
}

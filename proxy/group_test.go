package proxy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gslbd/gslb/internal/balance"
)

func testGroup(t *testing.T, cfg GroupConfig) *Group {
	t.Helper()
	c := Config{Listeners: []ListenerConfig{{Address: "127.0.0.1:0"}}, Groups: []GroupConfig{cfg}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = c.Groups[0]
	bs := make([]*Backend, len(cfg.Backends))
	for i, bc := range cfg.Backends {
		bs[i] = newBackend(bc.Address)
	}
	g := newGroup(cfg, bs, c.Timeouts, slog.New(slog.DiscardHandler))
	t.Cleanup(g.close)
	return g
}

func backends(n int) []BackendConfig {
	out := make([]BackendConfig, n)
	for i := range out {
		out[i] = BackendConfig{Address: fmt.Sprintf("10.0.0.%d:80", i+1)}
	}
	return out
}

// shares picks n times (releasing each slot) and returns each backend's share.
func shares(g *Group, n int) []float64 {
	counts := map[*Backend]int{}
	for range n {
		b := g.pick(&pickKey{}, nil)
		if b != nil {
			counts[b]++
			b.release()
		}
	}
	out := make([]float64, len(g.backends))
	for i, b := range g.backends {
		out[i] = float64(counts[b]) / float64(n)
	}
	return out
}

// PX-06: a recovered backend's share ramps over the slow-start window.
func TestSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := testGroup(t, GroupConfig{Name: "g", Algorithm: AlgWeightedRoundRobin, SlowStart: 10 * time.Second, Backends: backends(2)})
		b1 := g.backends[1]
		g.setDown(b1, true)
		if s := shares(g, 1000); s[1] != 0 {
			t.Fatalf("down backend share = %.3f, want 0", s[1])
		}
		g.setDown(b1, false)
		s0 := shares(g, 1100)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		s5 := shares(g, 1550)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		s11 := shares(g, 1000)
		t.Logf("recovered backend share: t=0 %.3f, t=5s %.3f, t=11s %.3f", s0[1], s5[1], s11[1])
		// Weights 100 vs 10 at t=0 (10 % floor), 100 vs 55 at half way.
		if s0[1] < 0.08 || s0[1] > 0.10 {
			t.Errorf("share at t=0 = %.3f, want 10/110", s0[1])
		}
		if s5[1] < 0.34 || s5[1] > 0.37 {
			t.Errorf("share at t=5s = %.3f, want about 55/155", s5[1])
		}
		if s11[1] != 0.5 {
			t.Errorf("share after the window = %.3f, want 0.5", s11[1])
		}
	})
}

// PX-02: consecutive failures eject with a growing backoff; at most
// MaxEjectionPercent of the group (at least one) is ejected at once.
func TestEjectionBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := testGroup(t, GroupConfig{Name: "g", Backends: backends(3),
			Outlier: &OutlierConfig{ConsecutiveFailures: 3, BaseEjection: time.Second, MaxEjection: 10 * time.Second, MaxEjectionPercent: 34}})
		b0, b1 := g.backends[0], g.backends[1]
		fail := func(b *Backend, n int) {
			for range n {
				b.result(502)
			}
		}
		fail(b0, 2)
		b0.result(200) // a success resets the count
		fail(b0, 2)
		if len(g.v.Load().members) != 3 {
			t.Fatal("ejected before 3 consecutive failures")
		}
		fail(b0, 1)
		if s := shares(g, 300); s[0] != 0 {
			t.Fatalf("ejected backend share = %.3f, want 0", s[0])
		}
		fail(b1, 3) // 34 % of 3 = 1: b1 may not be ejected too
		if s := shares(g, 300); s[1] == 0 {
			t.Fatal("second backend ejected beyond max_ejection_percent")
		}
		time.Sleep(time.Second + 10*time.Millisecond)
		synctest.Wait()
		if s := shares(g, 300); s[0] == 0 {
			t.Fatal("backend still ejected after the first backoff (1s)")
		}
		fail(b0, 3) // second ejection: 2s
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if s := shares(g, 300); s[0] != 0 {
			t.Fatal("second ejection shorter than 2s")
		}
		time.Sleep(600 * time.Millisecond)
		synctest.Wait()
		if s := shares(g, 300); s[0] == 0 {
			t.Fatal("backend still ejected after the second backoff (2s)")
		}
	})
}

// Backups take traffic only when no primary is available.
func TestBackup(t *testing.T) {
	bc := backends(3)
	bc[2].Backup = true
	g := testGroup(t, GroupConfig{Name: "g", Backends: bc})
	if s := shares(g, 100); s[2] != 0 {
		t.Fatalf("backup share with primaries up = %.2f", s[2])
	}
	g.setDown(g.backends[0], true)
	if s := shares(g, 100); s[2] != 0 || s[1] != 1 {
		t.Fatalf("shares with one primary down = %v", s)
	}
	g.setDown(g.backends[1], true)
	if s := shares(g, 100); s[2] != 1 {
		t.Fatalf("backup share with all primaries down = %.2f, want 1", s[2])
	}
	g.setDown(g.backends[2], true)
	if g.Healthy() || g.pick(nil, nil) != nil {
		t.Fatal("group with everything down: Healthy or pick returned a backend")
	}
}

// PX-05: a backend at max_conns is skipped; all full means no backend.
func TestMaxConns(t *testing.T) {
	g := testGroup(t, GroupConfig{Name: "g", MaxConns: 2, Backends: backends(2)})
	var got []*Backend
	for range 4 {
		b := g.pick(nil, nil)
		if b == nil {
			t.Fatal("pick failed below the limit")
		}
		got = append(got, b)
	}
	if g.pick(nil, nil) != nil {
		t.Fatal("pick succeeded with every backend at max_conns")
	}
	got[0].release()
	if b := g.pick(nil, nil); b != got[0] {
		t.Fatalf("pick after a release = %v, want %s", b, got[0].addr)
	}
}

// Consistent hashing through a reload that adds a backend: at most
// 1/N + 5 % of keys move.
func TestConsistentHashAddBackend(t *testing.T) {
	for _, alg := range []string{AlgConsistentHash, AlgIPHash} {
		t.Run(alg, func(t *testing.T) {
			g3 := testGroup(t, GroupConfig{Name: "g", Algorithm: alg, Backends: backends(3)})
			g4 := testGroup(t, GroupConfig{Name: "g", Algorithm: alg, Backends: backends(4)})
			moved := 0
			const n = 20000
			for i := range n {
				k := &pickKey{hash: balance.Hash64(fmt.Sprintf("198.51.100.%d/%d", i%256, i))}
				a, b := g3.pick(k, nil), g4.pick(k, nil)
				a.release()
				b.release()
				if a.addr != b.addr {
					moved++
				}
			}
			frac := float64(moved) / n
			t.Logf("%s: %.4f of keys moved from 3 to 4 backends (limit %.4f)", alg, frac, 0.25+0.05)
			if frac > 0.30 {
				t.Errorf("%s moved %.4f of keys, want <= 0.30", alg, frac)
			}
		})
	}
}

func TestProxyHeaderEncoding(t *testing.T) {
	src, dst := mustAP("192.0.2.1:5000"), mustAP("198.51.100.2:443")
	if got := string(proxyHeader("v1", src, dst)); got != "PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n" {
		t.Errorf("v1 = %q", got)
	}
	v2 := proxyHeader("v2", src, dst)
	if len(v2) != 16+12 || v2[12] != 0x21 || v2[13] != 0x11 || v2[15] != 12 {
		t.Errorf("v2 = %x", v2)
	}
	v6 := proxyHeader("v2", mustAP("[2001:db8::1]:1"), mustAP("[2001:db8::2]:2"))
	if len(v6) != 16+36 || v6[13] != 0x21 {
		t.Errorf("v2 ipv6 = %x", v6)
	}
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// PX-04: below the panic threshold the group balances over every primary;
// region health still says what is really up.
func TestPanicThreshold(t *testing.T) {
	g := testGroup(t, GroupConfig{Name: "g", PanicThreshold: 50, Backends: backends(4)})
	g.setDown(g.backends[0], true)
	g.setDown(g.backends[1], true)
	if g.Panic() {
		t.Fatal("panic with 2 of 4 available (threshold 50 %)")
	}
	if s := shares(g, 100); s[0] != 0 || s[2] != 0.5 {
		t.Fatalf("shares with 2 of 4 up = %v", s)
	}
	g.setDown(g.backends[2], true)
	if !g.Panic() || !g.Healthy() {
		t.Fatalf("1 of 4 available: panic %v healthy %v, want true true", g.Panic(), g.Healthy())
	}
	if s := shares(g, 100); s[0] != 0.25 || s[3] != 0.25 {
		t.Fatalf("panic shares = %v, want 0.25 each", s)
	}
	g.setDown(g.backends[3], true)
	if !g.Panic() || g.Healthy() {
		t.Fatalf("none available: panic %v healthy %v, want true false", g.Panic(), g.Healthy())
	}
}

//go:build e2e

package integration

import (
	"bufio"
	"context"
	be "encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The DNS front as an attacker sees it: the real binary, loopback only.

// startTarget serves the README's example zone with an admin listener for
// /metrics; it returns the DNS and admin addresses.
func startTarget(t *testing.T) (dnsAddr, admin string) {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, exampleZone, dir)
	p := start(t, "serve", "--dns", "127.0.0.1:0", "--zones", dir, "--nsid", "e2e-node", "--zones-poll", "0", "--probes=false", "--admin", "127.0.0.1:0")
	if p.ready["admin"] == "" {
		t.Fatalf("no admin address in the ready line: %v", p.ready)
	}
	return p.ready["dns"], p.ready["admin"]
}

// metric reads one sample of the admin listener's /metrics: the value of
// the line that starts with series ("name" or `name{labels}`).
func metric(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

// raiseFDLimit lets this process hold n more descriptors.
func raiseFDLimit(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	rl.Cur = min(n, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < n {
		t.Skipf("cannot raise the open-file limit to %d (hard limit %d): %v", n, rl.Max, err)
	}
}

// digTCP runs `dig +tcp` from src and returns how long the answer took.
func digTCP(t *testing.T, src, addr string) time.Duration {
	t.Helper()
	return digFrom(t, src, addr, "+tcp")
}

// digUDP is digTCP over UDP.
func digUDP(t *testing.T, src, addr string) time.Duration {
	t.Helper()
	return digFrom(t, src, addr, "+notcp")
}

func digFrom(t *testing.T, src, addr, transport string) time.Duration {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "dig", "@"+host, "-p", port, "-b", src, transport, "+time=1", "+tries=1", "+norec", "example.com", "SOA").CombinedOutput()
	took := time.Since(start)
	if err != nil || !strings.Contains(string(out), "status: NOERROR") {
		t.Fatalf("dig %s from %s: %v\n%s", transport, src, err, out)
	}
	return took
}

// holdTCP opens n connections from src, each sending a query every 5 s
// (the attack of issue 12) until ctx ends; it returns how many the server
// accepted (answered a first query).
func holdTCP(ctx context.Context, t *testing.T, wg *sync.WaitGroup, src func(i int) string, addr string, n int) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeSOA)
	pkt, _ := m.Pack()
	frame := be.BigEndian.AppendUint16(nil, uint16(len(pkt)))
	frame = append(frame, pkt...)
	var mu sync.Mutex
	held := 0
	for i := 0; i < n; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src(i))}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue // reset at once: over this address's share
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			go func() { <-ctx.Done(); c.Close() }()
			for first := true; ; first = false {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(frame); err != nil {
					return
				}
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(be.BigEndian.Uint16(l[:]))); err != nil {
					return
				}
				if first {
					mu.Lock()
					held++
					mu.Unlock()
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Second):
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the first queries be answered
	mu.Lock()
	defer mu.Unlock()
	return held
}

// TestTCPHeld: 128 and then 2,000 TCP connections from 127.0.0.1 (and
// 2,000 spread over 64 networks of 127/8), each asking every 5 s, and a
// slowloris sending a byte a second, do not stop `dig +tcp` from 127.0.0.2
// (same /24) and 127.0.1.2 (another) from being answered within 1 s; the
// slowloris is cut by the read timeout.
func TestTCPHeld(t *testing.T) {
	need(t, "dig")
	raiseFDLimit(t, 2*2000+256)
	addr, admin := startTarget(t)
	one := func(int) string { return "127.0.0.1" }
	spread := func(i int) string { return fmt.Sprintf("127.0.%d.%d", 10+i%64, 1+i/64) }
	for _, tc := range []struct {
		name string
		n    int
		src  func(int) string
	}{{"128 from one address", 128, one}, {"2000 from one address", 2000, one}, {"2000 from 64 networks", 2000, spread}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			held := holdTCP(ctx, t, &wg, tc.src, addr, tc.n)
			t.Logf("%d connections opened, %d kept and answered", tc.n, held)

			slow, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}).Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			cut := make(chan time.Duration, 1)
			go func() {
				start := time.Now()
				for _, b := range []byte{0, 29, 0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0} {
					if _, err := slow.Write([]byte{b}); err != nil {
						break
					}
					time.Sleep(time.Second)
				}
				slow.SetReadDeadline(time.Now().Add(10 * time.Second))
				io.Copy(io.Discard, slow)
				cut <- time.Since(start)
			}()

			if took := digUDP(t, "127.0.0.2", addr); took > time.Second {
				t.Errorf("dig over UDP took %v while %d TCP connections are held", took, held)
			}
			for _, src := range []string{"127.0.0.2", "127.0.1.2", "127.0.0.2"} {
				took := digTCP(t, src, addr)
				t.Logf("dig +tcp from %s: answered in %v", src, took.Round(time.Millisecond))
				if took > time.Second {
					t.Errorf("dig +tcp from %s took %v while %d connections are held", src, took, held)
				}
			}
			select {
			case d := <-cut:
				if d > 8*time.Second {
					t.Errorf("the byte-a-second client was cut only after %v", d)
				}
			case <-time.After(20 * time.Second):
				t.Error("the byte-a-second client was never cut")
			}
			t.Logf("metrics: open %v, refused (address) %v, read timeouts %v", metric(t, admin, "gslb_dns_tcp_connections"),
				metric(t, admin, `gslb_dns_tcp_refused_total{reason="address"}`), metric(t, admin, "gslb_dns_tcp_read_timeouts_total"))
		})
	}
}

// TestMalformedCorpus sends the header that claims a question it does
// not hold, other malformed packets and 2,000 random ones (fixed seed) over
// UDP and TCP: the panic counter stays 0 and the server keeps answering.
func TestMalformedCorpus(t *testing.T) {
	need(t, "dig")
	addr, admin := startTarget(t)
	corpus := [][]byte{
		{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
		{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1},
		{0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},
		{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'c', 'o', 'm', 0, 0},
		{0xbe, 0xef, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
	}
	rng := rand.New(rand.NewSource(12))
	base := new(dns.Msg)
	base.SetQuestion("www.example.com.", dns.TypeA)
	base.SetEdns0(1232, false)
	valid, _ := base.Pack()
	for i := 0; i < 2000; i++ {
		p := append([]byte(nil), valid...)
		for j := 0; j < 1+rng.Intn(4); j++ {
			p[rng.Intn(len(p))] = byte(rng.Intn(256))
		}
		corpus = append(corpus, p[:rng.Intn(len(p)+1)])
	}
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for _, p := range corpus {
		uc.Write(p)
	}
	for _, p := range corpus[:200] {
		tc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Write(append(be.BigEndian.AppendUint16(nil, uint16(len(p))), p...))
		tc.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, io.LimitReader(tc, 1<<16))
		tc.Close()
	}
	digTCP(t, "127.0.0.1", addr)
	if n := metric(t, admin, "gslb_dns_panics_total"); n != 0 {
		t.Errorf("gslb_dns_panics_total = %v after the corpus", n)
	}
}

// floodUDP sends n copies of one query from src to addr as fast as it can
// and counts the replies: full answers and empty TC replies (slips).
func floodUDP(t *testing.T, src, addr string, n int) (full, slipped int) {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(4 << 20)
	m := new(dns.Msg)
	m.SetQuestion("mail.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			r := new(dns.Msg)
			if r.Unpack(buf[:k]) != nil {
				continue
			}
			if r.Truncated {
				slipped++
			} else if len(r.Answer) == 1 {
				full++
			}
		}
	}()
	for i := 0; i < n; i++ {
		m.Id = uint16(i)
		b, _ := m.Pack()
		c.WriteToUDP(b, ra)
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // do not overrun our own receive buffer
		}
	}
	<-done
	return full, slipped
}

// TestUDPFlood: response-rate limiting as the binary runs it. By default
// loopback clients are exempt (they cannot be another host), so a flood
// from 127.0.0.1 is answered in full. With dns.rrl.limit_loopback and a
// rate of 20 in the node config, a flood of 2,000 back-to-back queries from
// 127.0.0.1 gets at most the rate plus the slips (every 2nd limited reply
// an empty TC reply), while a second source network (127.0.1.0/24) asking
// at the same time is answered in full.
func TestUDPFlood(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, exampleZone, dir)
		cfg := writeFile(t, t.TempDir(), "node.yaml", fmt.Sprintf(`dns:
  listen: ["127.0.0.1:0"]
  rrl: {rate: 20, slip: 2, limit_loopback: true}
zones: %q
zones_poll: 0s
admin: "127.0.0.1:0"
probes: {enabled: false}
`, dir))
		p := start(t, "serve", "-config", cfg)
		addr, admin := p.ready["dns"], p.ready["admin"]
		const n = 2000
		var other struct{ full, slipped int }
		done := make(chan struct{})
		go func() {
			defer close(done)
			m := new(dns.Msg)
			m.SetQuestion("mail.example.com.", dns.TypeA)
			cl := &dns.Client{Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.1.2")}}}
			for i := 0; i < 15; i++ {
				if r, _, err := cl.Exchange(m, addr); err == nil && !r.Truncated && len(r.Answer) == 1 {
					other.full++
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		full, slipped := floodUDP(t, "127.0.0.1", addr, n)
		<-done
		dropped := metric(t, admin, `gslb_dns_rrl_limited_total{action="dropped",class="answer"}`)
		t.Logf("%d queries from 127.0.0.1 with rate 20: %d answered, %d slipped, %v dropped; 127.0.1.2: %d of 15 answered", n, full, slipped, dropped, other.full)
		// The flood takes well under 2 s: at most a few seconds' worth of
		// the rate is answered; about half the rest slips.
		if full > 100 || slipped < n/4 || dropped < n/4 {
			t.Errorf("flood with rate 20: %d answered, %d slipped, %v dropped of %d", full, slipped, dropped, n)
		}
		if other.full != 15 {
			t.Errorf("another network was answered %d of 15 times during the flood", other.full)
		}
	})
	t.Run("loopback exempt by default", func(t *testing.T) {
		testUDPFloodDefault(t)
	})
}

func testUDPFloodDefault(t *testing.T) {
	addr, admin := startTarget(t)
	const n = 2000
	full, slipped := floodUDP(t, "127.0.0.1", addr, n)
	t.Logf("%d queries from 127.0.0.1: %d answered, %d slipped", n, full, slipped)
	if slipped != 0 || full < n*9/10 {
		t.Errorf("loopback flood: %d answered, %d slipped of %d; want all answered", full, slipped, n)
	}
	if v := metric(t, admin, `gslb_dns_rrl_limited_total{action="dropped",class="answer"}`); v != 0 {
		t.Errorf("%v loopback replies dropped by RRL", v)
	}
}

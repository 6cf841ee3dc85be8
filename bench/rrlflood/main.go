// Command rrlflood sends a bounded burst of identical UDP queries from one
// source address to a DNS server and counts what comes back: full answers,
// empty TC replies (RRL slips) and no reply (dropped). For bench/rrl.sh;
// loopback only.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"
)

func main() {
	server := flag.String("s", "127.0.0.1:53", "server `ADDR`")
	src := flag.String("src", "127.0.0.1", "source `IP`")
	n := flag.Int("n", 2000, "queries to send (at most 100000)")
	name := flag.String("q", "mail.example.com.", "query name (type A)")
	flag.Parse()
	if *n > 100000 {
		*n = 100000
	}
	ra, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if ip := ra.IP; ip == nil || !ip.IsLoopback() {
		fmt.Fprintln(os.Stderr, "rrlflood: loopback servers only")
		os.Exit(2)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(*src)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.SetReadBuffer(8 << 20)
	var full, tc, other int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			r := new(dns.Msg)
			switch {
			case r.Unpack(buf[:k]) != nil:
				other++
			case r.Truncated:
				tc++
			case len(r.Answer) > 0:
				full++
			default:
				other++
			}
		}
	}()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(*name), dns.TypeA)
	start := time.Now()
	for i := 0; i < *n; i++ {
		m.Id = uint16(i)
		b, _ := m.Pack()
		c.WriteToUDP(b, ra)
		if i%64 == 63 {
			time.Sleep(500 * time.Microsecond) // stay within our own receive buffer
		}
	}
	sent := time.Since(start)
	<-done
	fmt.Printf("sent %d in %.2fs: %d answered, %d slipped (TC), %d dropped, %d other\n", *n, sent.Seconds(), full, tc, *n-full-tc-other, other)
}

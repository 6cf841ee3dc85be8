package dnssec

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// FetchDS asks the DNS server at addr (host:port) for zone's DNSKEY RRset
// over TCP and returns the DS records (SHA-256) of its secure entry point
// keys (KSK or CSK) in zone-file format: what to give the parent zone's
// registrar.
func FetchDS(ctx context.Context, addr, zone string) ([]string, error) {
	zone = dns.CanonicalName(zone)
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeDNSKEY)
	m.RecursionDesired = false
	m.SetEdns0(4096, true)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	if d, ok := ctx.Deadline(); ok {
		c.Timeout = time.Until(d)
	}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return nil, fmt.Errorf("%s DNSKEY at %s: %w", zone, addr, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s DNSKEY at %s: %s", zone, addr, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		k, ok := rr.(*dns.DNSKEY)
		if !ok || k.Flags&dns.SEP == 0 || !equalFold(k.Hdr.Name, zone) {
			continue
		}
		ds := k.ToDS(dns.SHA256)
		ds.Hdr.Ttl = KeyTTL
		out = append(out, ds.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s at %s: no DNSKEY with the SEP flag (is the zone signed there?)", zone, addr)
	}
	return out, nil
}

func equalFold(a, b string) bool { return dns.CanonicalName(a) == dns.CanonicalName(b) }

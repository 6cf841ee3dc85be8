//go:build e2e

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestConfigChurn is CH-10 (and ZL-02 through the cluster): the zone is
// changed every 300 ms on one node while every nameserver is queried
// without pause. No query fails, every answer belongs to a version that was
// written, and all nameservers end on the last version.
func TestConfigChurn(t *testing.T) {
	c := newCluster(t)
	home := map[string]string{"us-east": "127.0.0.31", "eu-west": "127.0.0.32", "ap-south": "127.0.0.33"}
	c.allAnswer("every region up", c.regions, home, 60*time.Second)
	file := filepath.Join(c.dir, "us-east", "zones", "example.com.zone")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const versions = 30
	write := func(v int) {
		z := strings.Replace(string(orig), "hostmaster 1 3600", fmt.Sprintf("hostmaster %d 3600", 100+v), 1)
		z += fmt.Sprintf("ver IN TXT \"v%d\"\n", v)
		tmp := file + ".tmp"
		os.WriteFile(tmp, []byte(z), 0o644)
		os.Rename(tmp, file) // atomic, as an operator's deploy should be
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var queries, failures int
	var bad []string
	var wg sync.WaitGroup
	for _, r := range c.regions {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			cl := &dns.Client{Timeout: 2 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, q := range []struct {
					name string
					t    uint16
				}{{"www.example.com.", dns.TypeA}, {"ver.example.com.", dns.TypeTXT}} {
					m := new(dns.Msg)
					m.SetQuestion(q.name, q.t)
					resp, _, err := cl.Exchange(m, addr)
					mu.Lock()
					queries++
					switch {
					case err != nil:
						failures++
						bad = append(bad, fmt.Sprintf("%s %s: %v", addr, q.name, err))
					case q.t == dns.TypeA && (resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0):
						failures++
						bad = append(bad, fmt.Sprintf("%s www: %s with %d answers", addr, dns.RcodeToString[resp.Rcode], len(resp.Answer)))
					case q.t == dns.TypeTXT && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError:
						failures++
						bad = append(bad, fmt.Sprintf("%s ver: %s", addr, dns.RcodeToString[resp.Rcode]))
					case q.t == dns.TypeTXT && len(resp.Answer) == 1:
						v := resp.Answer[0].(*dns.TXT).Txt[0]
						var n int
						if _, err := fmt.Sscanf(v, "v%d", &n); err != nil || n < 0 || n >= versions {
							failures++
							bad = append(bad, fmt.Sprintf("%s ver: %q was never written", addr, v))
						}
					}
					mu.Unlock()
				}
			}
		}(r.dns)
	}
	for v := 0; v < versions; v++ {
		write(v)
		time.Sleep(300 * time.Millisecond)
	}
	last := fmt.Sprintf("v%d", versions-1)
	waitFor(t, "every nameserver on the last version", 30*time.Second, func() bool {
		for _, r := range c.regions {
			out := runDig(t, "dig", r.dns, "ver.example.com", "TXT", "+short")
			if strings.Trim(strings.TrimSpace(out.Raw), `"`) != last {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	if failures > 0 {
		t.Errorf("%d of %d queries failed during the churn; first: %v", failures, queries, bad[:min(5, len(bad))])
	}
	t.Logf("%d queries during %d zone versions, %d failed", queries, versions, failures)
}

package dnsserver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
	"github.com/gslbd/gslb/gslb"
)

const reloadZone = `$TTL 300
@ IN SOA ns1 hostmaster %d 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
www IN A %s
`

func writeZone(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wwwA(t *testing.T, addr string) string {
	t.Helper()
	r := dnstest.Exchange(t, addr, "udp", query("www.reload.example.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("www: rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return r.Answer[0].(*dns.A).A.String()
}

// TestReload covers ZL-01: a broken zone keeps serving its previous
// version; a fixed one replaces it, even when the serial did not change.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "reload.example.zone", fmt.Sprintf(reloadZone, 1, "192.0.2.1"))
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, true)
	if got := wwwA(t, srv.Addr); got != "192.0.2.1" {
		t.Fatalf("www = %s", got)
	}
	writeZone(t, dir, "reload.example.zone", fmt.Sprintf(reloadZone, 2, "not-an-address"))
	if !srv.Loader.Changed() {
		t.Fatal("Changed() = false after writing the file")
	}
	snap, errs := srv.Loader.Load()
	if len(errs) == 0 {
		t.Fatal("broken zone loaded without error")
	}
	srv.Swap(snap)
	if got := wwwA(t, srv.Addr); got != "192.0.2.1" {
		t.Fatalf("after a broken reload www = %s, want the previous 192.0.2.1", got)
	}
	// Same serial, new content: reloaded (with a warning in the log).
	writeZone(t, dir, "reload.example.zone", fmt.Sprintf(reloadZone, 1, "192.0.2.2"))
	snap, errs = srv.Loader.Load()
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	srv.Swap(snap)
	if got := wwwA(t, srv.Addr); got != "192.0.2.2" {
		t.Fatalf("after reload www = %s, want 192.0.2.2", got)
	}
	if srv.Loader.Changed() {
		t.Fatal("Changed() = true right after a load")
	}
}

// TestNeverLoaded covers ZL-03: a configured zone that never loaded is
// answered with SERVFAIL, not REFUSED.
func TestNeverLoaded(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "broken.example.zone", "$TTL 300\n@ IN SOA ns1 h 1 3600 600 1209600 60\nwww IN A 1.2.3\n")
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, false)
	r := dnstest.Exchange(t, srv.Addr, "udp", query("www.broken.example.", dns.TypeA))
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	r = dnstest.Exchange(t, srv.Addr, "udp", query("www.other.example.", dns.TypeA))
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("other zone: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

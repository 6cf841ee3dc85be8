package dnsserver

import (
	"net"
	"testing"
)

// TestUDPDropsCounted: datagrams the kernel drops on a socket whose
// receive buffer is full are read back from /proc/net/udp by the socket's
// inode (what gslb_dns_udp_receive_drops_total reports).
func TestUDPDropsCounted(t *testing.T) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.SetReadBuffer(1) // the kernel's minimum: a few datagrams fit
	ino := socketInode(sink)
	if ino == 0 {
		t.Skip("no socket inode here (not Linux?)")
	}
	src, err := net.DialUDP("udp", nil, sink.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pkt := make([]byte, 512)
	for i := 0; i < 2000; i++ { // nobody reads: most are dropped
		src.Write(pkt)
	}
	if d := udpDrops(map[uint64]bool{ino: true}); d == 0 {
		t.Fatalf("no drops counted for inode %d after 2,000 datagrams to a full buffer", ino)
	} else {
		t.Logf("%d datagrams dropped", d)
	}
	if d := udpDrops(map[uint64]bool{ino + 1<<40: true}); d != 0 {
		t.Errorf("drops counted for an inode that is not ours: %d", d)
	}
}

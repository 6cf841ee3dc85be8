package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/gslbd/gslb/api"
)

// printSpill adds the proxy's spill-over to `gslb status`: where requests
// go when this region has no server for them, and how many went.
func printSpill(w io.Writer, s *api.ProxySpill) {
	if s == nil {
		return
	}
	var peers []string
	for _, p := range s.Peers {
		peers = append(peers, fmt.Sprintf("%s (%s, %d spilled)", p.Region, upDownWord(p.Up), p.Sent))
	}
	fmt.Fprintf(w, "spill-over to: %s\n", strings.Join(peers, ", "))
	if len(s.Received) > 0 {
		var from []string
		for _, r := range slices.Sorted(maps.Keys(s.Received)) {
			from = append(from, fmt.Sprintf("%s %d", r, s.Received[r]))
		}
		fmt.Fprintf(w, "spilled here from: %s\n", strings.Join(from, ", "))
	}
}

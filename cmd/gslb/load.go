package main

import (
	"fmt"
	"time"

	"github.com/gslbd/gslb/api"
)

// loadText is a region's proxy load in `gslb status`: utilisation, servers
// available, requests in flight and per second, latency, age of the report.
func loadText(l *api.RegionLoad) string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%  %d/%d servers  %d in flight  %.1f req/s  %.1f ms  (%s ago)", l.Utilisation*100, l.Available, l.Backends,
		l.InFlight, l.Rate, float64(l.Latency)/float64(time.Millisecond), time.Since(l.At).Round(time.Second))
}

package probes

import (
	"github.com/gslbd/gslb/zones"
)

// TargetsFromZones lists the targets of every checked pool in zs: one per
// pool member, in zone and pool order, duplicates included (SetTargets
// removes them). Each target carries its zone's origin, which a dns check
// without qname= queries.
func TargetsFromZones(zs ...*zones.Zone) []Target {
	var out []Target
	for _, z := range zs {
		for _, p := range z.Pools {
			if p.Check.Scheme == "" {
				continue
			}
			for _, m := range p.Members {
				out = append(out, Target{Check: p.Check, Addr: m.Addr, Zone: z.Origin})
			}
		}
	}
	return out
}

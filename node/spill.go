package node

import (
	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/proxy"
)

// proxyConfig fills in what the node knows for its proxy's spill-over
// (proxy.spill): this node's region and the cluster secret, which every
// region's proxy shares to authenticate spilled requests.
func (n *Node) proxyConfig(pc proxy.Config) proxy.Config {
	if pc.Spill == nil {
		return pc
	}
	s := *pc.Spill
	if s.Region == "" {
		s.Region = n.cfg.Region
	}
	if s.Secret == "" && n.cfg.Cluster != nil {
		s.Secret, _ = n.cfg.Cluster.secret()
	}
	pc.Spill = &s
	return pc
}

// spillStatus is the proxy's spill-over state for the status API.
func spillStatus(p *proxy.Proxy) *api.ProxySpill {
	s := p.SpillStatus()
	if s == nil {
		return nil
	}
	out := &api.ProxySpill{Received: s.Received}
	for _, x := range s.Peers {
		out.Peers = append(out.Peers, api.SpillPeer{Region: x.Region, Up: x.Up, Sent: x.Sent})
	}
	return out
}

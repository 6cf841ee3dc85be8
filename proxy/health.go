package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// checker runs one backend's active health check until its context ends:
// fails consecutive failures mark the backend down, passes consecutive
// successes mark it up (hysteresis).
type checker struct {
	g      *Group
	b      *Backend
	hc     HealthCheckConfig
	client *http.Client
}

func (c *checker) run(ctx context.Context) {
	t := time.NewTicker(c.hc.Interval)
	defer t.Stop()
	fails, passes := 0, 0
	var saidEjected int64 // the ejection (its end) already reported as passing its check
	for {
		err := c.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		if u := c.b.ejectedUntil.Load(); err == nil && u != saidEjected && c.b.ejected(time.Now().UnixNano()) {
			// The active check and passive ejection disagree: say so once
			// per ejection (the ejection stands until it ends).
			saidEjected = u
			c.g.log.Info("backend passes its active check while ejected", "group", c.g.name, "backend", c.b.addr,
				"ejected_until", time.Unix(0, u).UTC().Format(time.RFC3339Nano))
		}
		if err != nil {
			passes = 0
			fails++
			if fails >= c.hc.Fails && !c.b.down.Load() {
				c.g.log.Warn("backend down", "group", c.g.name, "backend", c.b.addr, "err", err)
				c.g.setDown(c.b, true)
			}
		} else {
			fails = 0
			passes++
			if passes >= c.hc.Passes && c.b.down.Load() {
				c.g.log.Info("backend up", "group", c.g.name, "backend", c.b.addr)
				c.g.setDown(c.b, false)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *checker) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.hc.Timeout)
	defer cancel()
	if c.hc.Type == "tcp" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.b.addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	scheme := "http"
	if c.g.cfg.TLS {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+c.b.addr+c.hc.Path, nil)
	if err != nil {
		return err
	}
	if c.hc.Host != "" {
		req.Host = c.hc.Host
	}
	req.Header.Set("User-Agent", "gslb-proxy-health")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 400
	if c.hc.Expect != 0 {
		ok = resp.StatusCode == c.hc.Expect
	}
	if !ok {
		return fmt.Errorf("health check %s%s: status %d", c.b.addr, c.hc.Path, resp.StatusCode)
	}
	return nil
}

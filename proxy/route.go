package proxy

import (
	"net/http"
	"strings"
)

// route is a compiled RouteConfig.
type route struct {
	name     string
	host     string // lower case; "" = any
	wildcard bool   // host is a suffix ".example.com"
	prefix   string
	methods  []string
	headers  [][2]string // canonical key, value
	group    *Group
	retries  int
	limiter  *limiter
	m        *routeMetrics
}

func newRoute(rc *RouteConfig, g *Group, m *metrics) *route {
	rt := &route{name: rc.Name, prefix: rc.PathPrefix, methods: rc.Methods, group: g, retries: max(rc.Retries, 0)}
	h := strings.ToLower(rc.Host)
	if strings.HasPrefix(h, "*.") {
		rt.wildcard, h = true, h[1:]
	}
	rt.host = h
	for k, v := range rc.Headers {
		rt.headers = append(rt.headers, [2]string{http.CanonicalHeaderKey(k), v})
	}
	if rc.RateLimit != nil {
		rt.limiter = newLimiter(*rc.RateLimit)
	}
	rt.m = m.route(rc.Name)
	return rt
}

// match reports whether r matches every condition of the route; host is
// the request host without port.
func (rt *route) match(r *http.Request, host string) bool {
	if rt.host != "" {
		if rt.wildcard {
			if len(host) <= len(rt.host) || !hasSuffixFold(host, rt.host) {
				return false
			}
		} else if !strings.EqualFold(host, rt.host) {
			return false
		}
	}
	if rt.prefix != "" && !strings.HasPrefix(r.URL.Path, rt.prefix) {
		return false
	}
	if len(rt.methods) > 0 {
		ok := false
		for _, m := range rt.methods {
			if m == r.Method {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, kv := range rt.headers {
		vs := r.Header[kv[0]]
		if len(vs) == 0 || vs[0] != kv[1] {
			return false
		}
	}
	return true
}

func hasSuffixFold(s, suffix string) bool {
	return strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// hostOnly strips the port from a Host header value.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

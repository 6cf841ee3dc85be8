package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/store"
)

// The admin surface. Who may do what:
//   - On a loopback address without admin_token, everything is open to the
//     machine's users (a warning is logged once at start).
//   - With admin_token (required beyond loopback: Config.Validate), every
//     /api/v1 request, read or write, needs "Authorization: Bearer TOKEN",
//     compared in constant time; /metrics and /health too unless
//     admin_open_metrics is set. The dashboard's static files are open (they
//     hold no data); the page asks for the token when the API answers 401.
//   - Writes are POST with a JSON body only, and cross-site requests are
//     refused (Sec-Fetch-Site / Origin against Host), so a web page an
//     operator has open cannot drive the API. No CORS header is ever sent.

// admin is the admin HTTP listener.
type admin struct {
	srv  *http.Server
	addr net.Addr
}

func startAdmin(addr string, h http.Handler, log *slog.Logger) (*admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin %s: %w", addr, err)
	}
	a := &admin{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}, addr: ln.Addr()}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Error("admin listener", "err", err)
		}
	}()
	return a, nil
}

// warnOpenAdmin logs once that a loopback admin listener has no token.
func (n *Node) warnOpenAdmin() {
	if n.token == "" {
		n.log.Warn("the admin API has no admin_token: any user of this machine can change overrides", "admin", n.admin.addr.String())
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.Error{Error: fmt.Sprintf(format, args...)})
}

// Handler returns the admin HTTP handler: /metrics, /health, /api/v1/* and
// the dashboard, with the access rules above.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	var metrics http.Handler = promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg})
	var health http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	if !n.cfg.AdminOpenMetrics {
		metrics, health = n.read(metrics), n.read(health)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /health", health)
	mux.Handle("GET /api/v1/status", n.read(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Status()) })))
	mux.Handle("GET /api/v1/events", n.read(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.events()) })))
	mux.Handle("GET /api/v1/explain", n.read(ExplainHandler(n.dns.Snapshot, n.geo, n.votes, n.explainDNSSEC)))
	mux.Handle("POST /api/v1/drain", n.write(n.overrideHandler(store.ActionDrain)))
	mux.Handle("POST /api/v1/undrain", n.write(n.overrideHandler(store.ActionUndrain)))
	mux.Handle("POST /api/v1/force-up", n.write(n.overrideHandler(store.ActionForceUp)))
	mux.Handle("POST /api/v1/force-down", n.write(n.overrideHandler(store.ActionForceDown)))
	mux.Handle("POST /api/v1/leave", n.write(http.HandlerFunc(n.leaveHandler)))
	n.dnssecRoutes(mux)
	// Go's profiler, for operators (the same access rule as the API).
	mux.Handle("GET /debug/pprof/", n.read(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", n.read(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", n.read(http.HandlerFunc(pprof.Trace)))
	mux.Handle("GET /debug/pprof/symbol", n.read(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /", dashboardHandler())
	return mux
}

// read guards a read endpoint: the token, when the node has one.
func (n *Node) read(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.authorized(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// crossOrigin refuses browser requests from another origin.
var crossOrigin = http.NewCrossOriginProtection()

// write guards a state-changing endpoint: same origin only, a JSON body,
// and the token when the node has one.
func (n *Node) write(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := crossOrigin.Check(r); err != nil {
			httpError(w, http.StatusForbidden, "cross-origin request refused: %v", err)
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			httpError(w, http.StatusUnsupportedMediaType, "Content-Type: want application/json")
			return
		}
		if !n.authorized(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authorized checks the admin token (when the node has one) and answers 401
// if it is missing or wrong.
func (n *Node) authorized(w http.ResponseWriter, r *http.Request) bool {
	if n.token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(n.token)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="gslb"`)
	httpError(w, http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer TOKEN)")
	return false
}

func (n *Node) leaveHandler(w http.ResponseWriter, r *http.Request) {
	if n.store == nil {
		httpError(w, http.StatusBadRequest, "this node is not in a cluster")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := n.store.Leave(ctx); err != nil {
		httpError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	writeJSON(w, map[string]any{"ok": true, "left": n.name})
}

// overrideHandler applies an operator override: kind (region, pool,
// member), name, and an optional duration.
func (n *Node) overrideHandler(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.OverrideRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, "body: %v", err)
			return
		}
		o := store.Override{Kind: req.Kind, Name: req.Name, Action: action, At: time.Now().UTC()}
		if req.For != "" {
			d, err := time.ParseDuration(req.For)
			if err != nil || d <= 0 {
				httpError(w, http.StatusBadRequest, "for: %q is not a positive duration", req.For)
				return
			}
			o.Until = o.At.Add(d)
		}
		if err := n.applyOverride(r.Context(), o); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, store.ErrNoQuorum) {
				code = http.StatusServiceUnavailable
			}
			httpError(w, code, "%v", err)
			return
		}
		writeJSON(w, map[string]any{"ok": true, "override": toAPIOverride(o)})
	}
}

// applyOverride commits an override through the cluster, or keeps it in
// memory on a single node. The target must exist in the zones served
// (an undrain may also name an override in force for a target gone since).
func (n *Node) applyOverride(ctx context.Context, o store.Override) error {
	if err := n.checkTarget(o); err != nil {
		return err
	}
	if n.store != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return n.store.Submit(ctx, &o)
	}
	n.localOv.Lock()
	var list []store.Override
	for _, x := range n.localList {
		if x.Kind != o.Kind || x.Name != o.Name {
			list = append(list, x)
		}
	}
	if o.Action != store.ActionUndrain {
		list = append(list, o)
	}
	n.localList = list
	n.overrides.Store(newOverrideSet(list, time.Now()))
	n.localOv.Unlock()
	n.healthChanged()
	return nil
}

// checkTarget refuses an override of a region, pool or member that no
// zone being served defines, naming those that exist.
func (n *Node) checkTarget(o store.Override) error {
	if o.Name == "" {
		return errors.New("name: required")
	}
	if o.Action == store.ActionUndrain {
		if _, ok := n.overrides.Load().get(o.Kind, o.Name); ok {
			return nil
		}
	}
	regions, pools, members := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, z := range n.loader.Zones() {
		for _, r := range z.Regions {
			regions[r.Name] = true
		}
		for _, p := range z.Pools {
			pools[p.Name] = true
			for _, m := range p.Members {
				members[m.Addr.String()] = true
				members[p.Name+"/"+m.Addr.String()] = true
			}
		}
	}
	switch o.Kind {
	case store.KindRegion:
		if !regions[o.Name] {
			return fmt.Errorf("region %q: no zone defines it (regions: %s)", o.Name, names(regions))
		}
	case store.KindPool:
		if !pools[o.Name] {
			return fmt.Errorf("pool %q: no zone defines it (pools: %s)", o.Name, names(pools))
		}
	case store.KindMember:
		name := o.Name
		if pool, addr, ok := strings.Cut(name, "/"); ok {
			if a, err := netip.ParseAddr(addr); err == nil {
				name = pool + "/" + a.String()
			}
		} else if a, err := netip.ParseAddr(name); err == nil {
			name = a.String()
		}
		if !members[name] {
			return fmt.Errorf("member %q: no pool has it (give an address or POOL/ADDRESS of a member; pools: %s)", o.Name, names(pools))
		}
	default:
		return fmt.Errorf("kind: %q is not region, pool or member", o.Kind)
	}
	return nil
}

func names(m map[string]bool) string {
	if len(m) == 0 {
		return "none"
	}
	l := make([]string, 0, len(m))
	for k := range m {
		l = append(l, k)
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}

func toAPIOverride(o store.Override) api.Override {
	return api.Override{Kind: o.Kind, Name: o.Name, Action: o.Action, Until: o.Until, At: o.At}
}

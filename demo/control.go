package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// controlHandler serves the demo's own endpoints under /demo/ and passes
// everything else (the dashboard, /api/v1) to the admin listener of a live
// node, so the dashboard and its kill and start buttons share one origin.
func (d *demo) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /demo/regions", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		writeJSON(w, http.StatusOK, d.regions)
	})
	mux.Handle("POST /demo/kill", d.action(d.killRegion))
	mux.Handle("POST /demo/kill-servers", d.action(d.killServers))
	mux.Handle("POST /demo/start", d.action(d.startRegion))
	mux.Handle("/", &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&url.URL{Scheme: "http", Host: d.liveAdmin()})
		// The node sees its own origin: the browser's request was same
		// origin with this listener, which the demo checks itself.
		pr.Out.Host = ""
		pr.Out.Header.Del("Origin")
		pr.Out.Header.Del("Sec-Fetch-Site")
	}})
	return mux
}

// liveAdmin is the admin address of the first region still running.
func (d *demo) liveAdmin() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.regions {
		if r.Alive {
			return r.Admin
		}
	}
	return d.regions[0].Admin
}

var crossOrigin = http.NewCrossOriginProtection()

// action is POST /demo/kill or /demo/start with {"region": NAME}: JSON
// only, and never from another origin.
func (d *demo) action(f func(*demoRegion) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := crossOrigin.Check(req); err != nil {
			httpError(w, http.StatusForbidden, "cross-origin request refused: %v", err)
			return
		}
		if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt != "application/json" {
			httpError(w, http.StatusUnsupportedMediaType, "Content-Type: want application/json")
			return
		}
		var body struct {
			Region string `json:"region"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 4096)).Decode(&body); err != nil {
			httpError(w, http.StatusBadRequest, "body: %v", err)
			return
		}
		var names []string
		for _, r := range d.regions {
			if r.Name == body.Region {
				if err := f(r); err != nil {
					httpError(w, http.StatusConflict, "%v", err)
					return
				}
				writeJSON(w, http.StatusOK, map[string]any{"ok": true, "region": r.Name})
				return
			}
			names = append(names, r.Name)
		}
		httpError(w, http.StatusNotFound, "no region %q (regions: %s)", body.Region, strings.Join(names, ", "))
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// writePrivate writes a file only this user can read.
func writePrivate(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func ownedByMe(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Getuid()
}

// printLogTails shows the end of every region's log, so a failed start
// says why before the demo's folder is removed.
func (d *demo) printLogTails(w io.Writer) {
	for _, r := range d.regions {
		data, err := os.ReadFile(r.logFile)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		fmt.Fprintf(w, "\n%s log (last lines):\n  %s\n", r.Name, strings.Join(lines, "\n  "))
	}
}

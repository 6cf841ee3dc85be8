package node

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The dashboard: a static page (HTML, CSS, JavaScript, no framework, no
// external URL) that polls this node's /api/v1/status and /api/v1/events.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardHandler serves the dashboard page at "/" and its files under
// "/dashboard/"; every other path is 404.
func dashboardHandler() http.Handler {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded tree always has the folder
	}
	files := http.StripPrefix("/dashboard", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, sub, "index.html")
		case r.URL.Path == "/dashboard":
			http.Redirect(w, r, "/dashboard/", http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, "/dashboard/"):
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

package main

import "net/http"

// dashboardHandler serves the dashboard page (being built).
func dashboardHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>gslb</title><p>See <a href=\"/api/v1/status\">/api/v1/status</a>.</p>\n"))
	})
}

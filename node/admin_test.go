package node

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAdminToken: with admin_token set, a write without the right bearer
// token is refused with 401; with it (or with no token configured) it passes.
func TestAdminToken(t *testing.T) {
	for _, tc := range []struct {
		name, token, header string
		ok                  bool
	}{
		{"no token configured", "", "", true},
		{"token missing", "s3cret", "", false},
		{"wrong token", "s3cret", "Bearer nope", false},
		{"right token", "s3cret", "Bearer s3cret", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{cfg: &Config{}, token: tc.token}
			r := httptest.NewRequest("POST", "/api/v1/drain", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			if got := n.authorized(w, r); got != tc.ok {
				t.Fatalf("authorized = %v, want %v", got, tc.ok)
			}
			if !tc.ok && w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
		})
	}
}

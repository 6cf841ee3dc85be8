package store_test

import (
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gslbd/gslb/store"
)

func TestCheckSecret(t *testing.T) {
	for _, tc := range []struct {
		Name, Secret string
		OK           bool
	}{
		{"empty", "", false},
		{"sixteen a", "aaaaaaaaaaaaaaaa", false},
		{"thirty-two a", strings.Repeat("a", 32), false},
		{"hex sequence twice", "0123456789abcdef0123456789abcdef", false},
		{"repeated word", "passwordpasswordpasswordpassword", false},
		{"alternating", strings.Repeat("ab", 20), false},
		{"alphabet", "abcdefghijklmnopqrstuvwxyz0123456789", false},
		{"short random base64", "q2Vb9xKp0sLw3Zr", false},
		{"random hex 32", "7f3a9c0e5b12d84f6a0c3e91b7d25f48", true},
		{"random hex 32 upper", "7F3A9C0E5B12D84F6A0C3E91B7D25F48", true},
		{"random base64 32", "Xk9vQ2pL7mZs0aRt4YbW1cNe8fHu3JgD", true},
		{"gslb secret output", store.NewSecret(), true},
		{"random words and symbols", "tiger-Lamp-93!orbit-Quartz-7#velvet", true},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			err := store.CheckSecret(tc.Secret)
			if (err == nil) != tc.OK {
				t.Fatalf("CheckSecret(%q) = %v (%.0f bits), want ok=%v", tc.Secret, err, store.SecretBits(tc.Secret), tc.OK)
			}
			if err != nil && tc.Secret != "" && strings.Contains(err.Error(), tc.Secret) {
				t.Fatalf("CheckSecret(%q): the message quotes the secret: %v", tc.Secret, err)
			}
		})
	}
}

// Random secrets of 128 bits (32 hex digits, which the demo uses) and
// more are accepted: the structure penalties never hit them. Fixed seed,
// so the test is deterministic.
func TestCheckSecretAcceptsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 24)
	for i := range 20000 {
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		for _, s := range []string{hex.EncodeToString(b[:16]), base64.RawStdEncoding.EncodeToString(b)[:32], base64.RawURLEncoding.EncodeToString(b)} {
			if err := store.CheckSecret(s); err != nil {
				t.Fatalf("random secret %d %q refused: %v", i, s, err)
			}
		}
	}
}

func TestNewSecretIsNew(t *testing.T) {
	a, b := store.NewSecret(), store.NewSecret()
	if a == b || len(a) != 43 {
		t.Fatalf("NewSecret() = %q, %q; want two different 43-character secrets", a, b)
	}
}

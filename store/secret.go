package store

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"
)

// MinSecretBits is the least estimated entropy, in bits, that CheckSecret
// accepts for a cluster secret.
const MinSecretBits = 128

// NewSecret returns a new random cluster secret: 32 bytes from crypto/rand
// (256 bits) in unpadded base64url, 43 characters.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand.Read documents it)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CheckSecret refuses a cluster secret whose estimated entropy is below
// MinSecretBits. Its messages never quote the secret; callers prefix the
// configuration key ("cluster.secret: ...").
//
// The estimate is deliberately simple (see SecretBits): it catches short,
// repetitive and sequential secrets, not passphrases made of dictionary
// words. Use NewSecret (gslb secret) to make one.
func CheckSecret(secret string) error {
	if secret == "" {
		return fmt.Errorf("must be set (generate one with \"gslb secret\")")
	}
	if bits := SecretBits(secret); bits < MinSecretBits {
		return fmt.Errorf("%d characters with an estimated %.0f bits of entropy, want at least %d (generate one with \"gslb secret\")",
			len([]rune(secret)), math.Floor(bits), MinSecretBits)
	}
	return nil
}

// structureLen is how long a run ("aaaa"), a sequence ("abcd", "4321") or
// a repeat of earlier text may grow before its further characters count as
// predictable. A random string practically never has such structure that
// long (for 32 hex digits, about once in 10^7), so random secrets are not
// penalised, while "aaaa...", "0123456789abcdef..." and "passwordpassword"
// are.
const structureLen = 8

// maxAnalysed bounds the work of SecretBits: only the first maxAnalysed
// runes are looked at (far more than any secret needs).
const maxAnalysed = 512

// SecretBits estimates the entropy of secret in bits: the number of
// characters that are not predictable from the ones before them (see
// structureLen), times log2 of the alphabet they appear to be drawn from.
// The alphabet is the union of the character classes present (lower case
// 26, upper case 26, digits 10, other printable ASCII 33, anything else
// 128), or 16 when every character is a hexadecimal digit of one case.
// It is an upper bound for a secret a person made up.
func SecretBits(secret string) float64 {
	r := []rune(secret)
	if len(r) == 0 {
		return 0
	}
	if len(r) > maxAnalysed {
		r = r[:maxAnalysed]
	}
	return float64(freshRunes(r)) * math.Log2(float64(alphabetSize(secret)))
}

func alphabetSize(s string) int {
	if strings.Trim(s, "0123456789abcdef") == "" || strings.Trim(s, "0123456789ABCDEF") == "" {
		return 16
	}
	var lower, upper, digit, punct, other bool
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		case c >= 0x20 && c < 0x7f:
			punct = true
		default:
			other = true
		}
	}
	n := 0
	for _, c := range []struct {
		present bool
		size    int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {punct, 33}, {other, 128}} {
		if c.present {
			n += c.size
		}
	}
	return n
}

// freshRunes counts the runes of r that do not extend a run or a ±1
// sequence already structureLen long, and do not end a repeat of
// structureLen runes seen earlier.
func freshRunes(r []rune) int {
	fresh := 0
	run := 1 // length of the run or sequence ending at the previous rune
	step := rune(0)
	for i := range r {
		if i > 0 {
			d := r[i] - r[i-1]
			if (d >= -1 && d <= 1) && (run == 1 || d == step) {
				run++
			} else {
				run = 1
				if d >= -1 && d <= 1 {
					run = 2
				}
			}
			step = d
		}
		if run > structureLen || repeatsEarlier(r, i) {
			continue
		}
		fresh++
	}
	return fresh
}

// repeatsEarlier reports whether the structureLen runes ending at i also
// occur earlier in r (overlapping allowed).
func repeatsEarlier(r []rune, i int) bool {
	start := i - structureLen + 1
	if start <= 0 {
		return false
	}
	w := r[start : i+1]
	for j := 0; j+structureLen <= i; j++ {
		if slices.Equal(r[j:j+structureLen], w) {
			return true
		}
	}
	return false
}

package proxy

import (
	"bufio"
	"bytes"
	"strings"
)

// The HTTP/1 fast paths read a message head from the read buffer without
// consuming it, check it strictly, and act on it directly when it is the
// common case; anything else (or anything they are unsure of) goes to
// net/http's parser, which reads the same bytes again.

// peekHead returns the message head (start line through the empty line
// that ends the header block) from br's buffer, reading more as needed,
// without consuming it. It returns a nil head and no error when the head
// does not fit in the buffer.
func peekHead(br *bufio.Reader) ([]byte, error) {
	for {
		n := br.Buffered()
		buf, _ := br.Peek(n)
		if i := headEnd(buf); i >= 0 {
			return buf[:i], nil
		}
		if n >= br.Size() {
			return nil, nil
		}
		if _, err := br.Peek(n + 1); err != nil {
			return nil, err
		}
	}
}

// headEnd returns the length of the head at the start of b (through the
// empty line; a bare LF ends a line too, as in net/textproto), or -1.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// field is one header field of a head checked by nextField.
type field struct {
	name, value []byte // value without surrounding blanks
}

// nextField splits the next header field line off head (which starts
// after the start line). It returns ok=false at the empty line that ends
// the head, and bad=true for anything the fast paths leave to net/http:
// a line not ending in CRLF, obs-fold, a name that is not a token, a
// control character in the value.
func nextField(head []byte) (f field, rest []byte, ok, bad bool) {
	i := bytes.IndexByte(head, '\n')
	if i < 1 || head[i-1] != '\r' {
		return f, nil, false, true
	}
	line := head[:i-1]
	rest = head[i+1:]
	if len(line) == 0 {
		return f, rest, false, false
	}
	c := bytes.IndexByte(line, ':')
	if c < 1 {
		return f, nil, false, true
	}
	for _, b := range line[:c] {
		if !isTokenByte(b) {
			return f, nil, false, true
		}
	}
	v := line[c+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for _, b := range v {
		if b < ' ' && b != '\t' || b == 0x7f {
			return f, nil, false, true
		}
	}
	return field{name: line[:c], value: v}, rest, true, false
}

// isTokenByte reports whether b may appear in an RFC 9110 token.
func isTokenByte(b byte) bool {
	return b < 0x80 && tokenBytes[b]
}

var tokenBytes = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// equalFoldASCII reports whether b equals the lower-case ASCII s, ignoring
// case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// plainTarget reports whether an origin-form request target is made only
// of characters that net/url leaves as they are, so that it can be parsed
// by slicing and forwarded byte for byte.
func plainTarget(s string) bool {
	if len(s) == 0 || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && plainTargetBytes[c] {
			continue
		}
		return false
	}
	return true
}

var plainTargetBytes = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+,;=:@/?" {
		t[c] = true
	}
	return t
}()

// plainHost reports whether a Host value is a plain ASCII name or address
// with an optional port (nothing to normalize before forwarding it).
func plainHost(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]_", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

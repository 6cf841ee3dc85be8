package zones_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gslbd/gslb/zones"
)

// TestIncludeConfined: $INCLUDE reads files below the zone file's
// directory only, also through a symbolic link; and an error never shows
// more than 40 bytes of a file's content.
func TestIncludeConfined(t *testing.T) {
	outside := t.TempDir()
	secret := "root:$6$SECRET-HASH-THAT-MUST-NOT-BE-PRINTED-ANYWHERE:19000:0:99999:7:::"
	if err := os.WriteFile(filepath.Join(outside, "shadow"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	head := "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n"
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.Symlink(filepath.Join(outside, "shadow"), filepath.Join(dir, "link.inc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("sub/garbage.inc", secret+"\n")
	for _, tc := range []struct {
		name, include, want string
	}{
		{"absolute path outside", filepath.Join(outside, "shadow"), "outside"},
		{"relative path outside", "../" + filepath.Base(outside) + "/shadow", "outside"},
		{"symbolic link to outside", "link.inc", "outside"},
		{"a file inside with garbage: the token, cut", "sub/garbage.inc", `"root:$6$SECRET-HASH-THAT-MUST-NOT-BE-PRI..."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := write("x.zone", head+"$INCLUDE "+tc.include+"\n")
			_, err := zones.Load(f, "")
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "MUST-NOT-BE-PRINTED") {
				t.Errorf("error %q: want %q in it and no more of the file", msg, tc.want)
			}
			if !strings.HasPrefix(msg, f+":5: $INCLUDE") && tc.want == "outside" {
				t.Errorf("error %q does not name the file, line and directive", msg)
			}
		})
	}
}

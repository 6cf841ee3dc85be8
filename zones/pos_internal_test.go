package zones

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIncludePositions (ZL-01): errors name the file and line of the
// record, in the zone file and in an $INCLUDEd one, before and after the
// include and after records dropped as out of zone (record positions are
// kept as a line each and runs of records per file).
func TestIncludePositions(t *testing.T) {
	dir := t.TempDir()
	top := "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n" +
		"out.other. IN A 192.0.2.9\n$INCLUDE pos.inc\nx 60 IN A 192.0.2.3\ncn IN CNAME a\ncn IN A 192.0.2.4\n"
	inc := "a IN A 192.0.2.5\nout2.other. IN A 192.0.2.8\nx IN A 192.0.2.6\nb IN CNAME c\nb IN TXT \"t\"\n"
	for name, text := range map[string]string{"pos.example.zone": top, "pos.inc": inc} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	zf := filepath.Join(dir, "pos.example.zone")
	_, err := Load(zf, "")
	if err == nil {
		t.Fatal("loaded")
	}
	abs, _ := filepath.Abs(dir)
	abs, _ = filepath.EvalSymlinks(abs)
	got := strings.ReplaceAll(strings.ReplaceAll(err.Error(), abs, "DIR"), dir, "DIR")
	want := "DIR/pos.example.zone:5: out.other.: out of zone data (zone is pos.example.)\n" +
		"DIR/pos.inc:2: out2.other.: out of zone data (zone is pos.example.)\n" +
		"DIR/pos.inc:4: b.pos.example.: CNAME and other data (TXT) at the same name\n" +
		"DIR/pos.example.zone:8: cn.pos.example.: CNAME and other data (A) at the same name"
	if got != want {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}
}

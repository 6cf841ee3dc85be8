package zones_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gslbd/gslb/zones"
)

// FuzzParse: any input either loads or fails with errors, never a panic;
// a zone that loads has its SOA at the apex and links.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/bad/*.zone", "testdata/good/*.zone", "../dnsserver/testdata/*.zone"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		z, err := zones.Parse(data, "fuzz.example.zone", "", false)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if z.SOA == nil || z.SOA.Hdr.Name != z.Origin {
			t.Fatalf("zone loaded without an SOA at its apex %s", z.Origin)
		}
		_ = zones.Link([]*zones.Zone{z})
	})
}

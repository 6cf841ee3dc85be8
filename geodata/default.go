package geodata

import (
	_ "embed"
	"sync"
)

// The embedded default is generated from public data; see LICENSE-DATA and
// internal/gen. Regenerating needs npm and network access to its registry.
//go:generate go run ./internal/gen -o default.mmdb

//go:embed default.mmdb
var defaultMMDB []byte

var openDefault = sync.OnceValues(func() (*DB, error) {
	db, err := OpenBytes(defaultMMDB, "embedded country database")
	if err != nil {
		return nil, err
	}
	db.shared = true
	return db, nil
})

// Default returns the embedded country database: for every network of the
// registries' data, the country, its continent and the country's approximate
// centre as location. Every call returns the same *DB (and so shares its
// cache); closing it does nothing.
func Default() (*DB, error) {
	return openDefault()
}

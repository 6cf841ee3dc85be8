package geodata

import "net/netip"

// LookupUncached is Lookup without the record cache.
func LookupUncached(db *DB, a netip.Addr) (Info, error) { return db.lookup(a, false) }

// CacheLen returns how many decoded records db's cache holds.
func CacheLen(db *DB) int { return db.cache.len() }

package store

import (
	"hash/maphash"
	"iter"
)

// shardMap is an immutable map split into shards, so that the next State
// copies only the shards a batch touches instead of the whole map: applying
// a report batch costs about its size times len/nShards, not len. Shard
// placement uses a per-process seed; it is never persisted or compared.
type shardMap[K comparable, V any] struct {
	shards *[nShards]map[K]V
	n      int
}

const nShards = 64

var shardSeed = maphash.MakeSeed()

func shardOf[K comparable](k K) int { return int(maphash.Comparable(shardSeed, k) % nShards) }

func (m shardMap[K, V]) get(k K) (V, bool) {
	var zero V
	if m.shards == nil {
		return zero, false
	}
	v, ok := m.shards[shardOf(k)][k]
	return v, ok
}

func (m shardMap[K, V]) len() int { return m.n }

func (m shardMap[K, V]) all() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if m.shards == nil {
			return
		}
		for _, sh := range m.shards {
			for k, v := range sh {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// shardDraft builds the next shardMap from a base that it never modifies.
type shardDraft[K comparable, V any] struct {
	base   shardMap[K, V]
	next   shardMap[K, V]
	copied [nShards]bool
	init   bool
}

func (d *shardDraft[K, V]) shard(k K) map[K]V {
	if !d.init {
		d.init = true
		var arr [nShards]map[K]V
		if d.base.shards != nil {
			arr = *d.base.shards
		}
		d.next = shardMap[K, V]{shards: &arr, n: d.base.n}
	}
	i := shardOf(k)
	if !d.copied[i] {
		d.copied[i] = true
		d.next.shards[i] = cloneMap(d.next.shards[i])
	}
	return d.next.shards[i]
}

func (d *shardDraft[K, V]) put(k K, v V) {
	sh := d.shard(k)
	if _, ok := sh[k]; !ok {
		d.next.n++
	}
	sh[k] = v
}

// result returns the built map (the base when nothing changed).
func (d *shardDraft[K, V]) result() shardMap[K, V] {
	if !d.init {
		return d.base
	}
	return d.next
}

func (d *shardDraft[K, V]) get(k K) (V, bool) {
	if d.init {
		return d.next.get(k)
	}
	return d.base.get(k)
}

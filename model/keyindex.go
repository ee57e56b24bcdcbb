package model

import (
	"hash/maphash"
	"iter"
	"unsafe"
)

// keyIndex maps each key of a Model to its entry. It is an open-addressing
// hash table with linear probing that keeps each key's hash beside its
// entry, for what the replication path does with it, once per update on
// every replica:
//
//   - an update finds its key's slot, or the empty slot the key takes, in
//     one probe sequence and one hash (a Go map takes two: the lookup, then
//     the assignment);
//   - growing moves hashes and pointers without reading a key again (a Go
//     map hashes every key anew, each a cache miss into its payload): in a
//     profile of 100,000 new keys arriving live, the Go map's lookups,
//     assignments and growth took 40% of both replicas' CPU.
//
// A Delete is a tombstone entry; a key leaves the index only when the last
// update it keeps expires (a TTL key), by backward shift, so there is no
// deletion marker and a plain Set's probe never steps over one. The key of a slot is its entry's, read from the
// payload, and compared only where the hashes match; so an entry that
// replaces another of the same key takes its slot, and the old payload is
// not kept alive by the index. The seed is random per Model, so that keys
// from a peer cannot be chosen to collide. Model.mu guards it.
type keyIndex struct {
	seed  maphash.Seed
	slots []keySlot // len a power of two, at most 3/4 full
	n     int       // slots in use
	sink  uint64    // what peek read, so that the reads are not left out
}

type keySlot struct {
	hash uint64 // the key's hash with the top bit set; 0 for an empty slot
	e    *entry
}

// minSlots is the size of a new index.
const minSlots = 8

func newKeyIndex(n int) keyIndex {
	size := minSlots
	for size*3/4 < n {
		size *= 2
	}
	return keyIndex{seed: maphash.MakeSeed(), slots: make([]keySlot, size)}
}

// hash returns key's hash, never 0.
func (x *keyIndex) hash(key string) uint64 { return maphash.String(x.seed, key) | 1<<63 }

// find returns the slot of key, whose hash is h: the slot that holds its
// entry, or the empty slot it would take.
func (x *keyIndex) find(key string, h uint64) int {
	mask := len(x.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.hash == 0 || s.hash == h && s.e.key() == key {
			return i
		}
	}
}

// peek reads the home slot of the key whose hash is h and returns its
// hash, for nothing but to bring the slot into the cache: a few peeks in a
// row wait for memory together, where find's reads wait one at a time.
// Store the sum of what it returns in sink.
func (x *keyIndex) peek(h uint64) uint64 {
	return x.slots[int(h)&(len(x.slots)-1)].hash
}

// get returns the entry of key, or nil.
func (x *keyIndex) get(key string) *entry {
	return x.slots[x.find(key, x.hash(key))].e
}

// set puts e, whose key has hash h, in slot i, which find returned for
// that key: it replaces the key's entry, or takes the empty slot. It may
// move every slot, so i is stale after it.
func (x *keyIndex) set(i int, h uint64, e *entry) {
	s := &x.slots[i]
	if s.e != nil {
		s.e = e
		return
	}
	*s = keySlot{h, e}
	x.n++
	if x.n > len(x.slots)*3/4 {
		x.resize(2 * len(x.slots))
	}
}

// put makes e the entry of key.
func (x *keyIndex) put(key string, e *entry) {
	h := x.hash(key)
	x.set(x.find(key, h), h, e)
}

// delete removes key, if present, shifting back the slots after it that
// probed past its slot, so that every key stays reachable from its home.
func (x *keyIndex) delete(key string) {
	mask := len(x.slots) - 1
	i := x.find(key, x.hash(key))
	if x.slots[i].hash == 0 {
		return
	}
	x.n--
	for j := (i + 1) & mask; x.slots[j].hash != 0; j = (j + 1) & mask {
		// The slot at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		home := int(x.slots[j].hash) & mask
		if (j-home)&mask >= (j-i)&mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = keySlot{}
}

// resize moves the slots in use to a table of size slots.
func (x *keyIndex) resize(size int) {
	old := x.slots
	x.slots = make([]keySlot, size)
	mask := size - 1
	for _, s := range old {
		if s.hash == 0 {
			continue
		}
		i := int(s.hash) & mask
		for x.slots[i].hash != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// grow makes room for n more keys without resizing.
func (x *keyIndex) grow(n int) {
	size := len(x.slots)
	for size*3/4 < x.n+n {
		size *= 2
	}
	if size != len(x.slots) {
		x.resize(size)
	}
}

// all yields every key and its entry, in no order.
func (x *keyIndex) all() iter.Seq2[string, *entry] {
	return func(yield func(string, *entry) bool) {
		for _, s := range x.slots {
			if s.hash != 0 && !yield(s.e.key(), s.e) {
				return
			}
		}
	}
}

// key returns e's key, read from its payload, which parseUpdate has
// checked: [key, value] or [key] with the key a text string. It aliases
// the payload, which is immutable.
func (e *entry) key() string {
	p := e.payload()
	c := p[1]
	off, n := 2, int(c&0x1f)
	if n >= 24 {
		size := 1 << (n - 24)
		n = 0
		for _, b := range p[off : off+size] {
			n = n<<8 | int(b)
		}
		off += size
	}
	if n == 0 {
		return ""
	}
	return unsafe.String(&p[off], n)
}

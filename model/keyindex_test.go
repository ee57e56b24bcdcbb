package model

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// entryOf returns an entry whose payload is [key, value], or [key].
func entryOf(t *testing.T, key string, value any, del bool) *entry {
	t.Helper()
	return entryWith(t, key, value, del, options{})
}

// entryWith is entryOf with options: [key, value, options].
func entryWith(t *testing.T, key string, value any, del bool, o options) *entry {
	t.Helper()
	data, err := encodeUpdate(key, value, del, o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseUpdate(data)
	if err != nil {
		t.Fatal(err)
	}
	return &entry{data: &data[0], n: uint32(len(data)), voff: uint32(p.voff)}
}

// TestEntryKey reads keys of every head size back from payloads.
func TestEntryKey(t *testing.T) {
	for _, key := range []string{"", "k", strings.Repeat("x", 23), strings.Repeat("y", 24), strings.Repeat("z", 255), strings.Repeat("w", 256), strings.Repeat("v", 70_000), "ü€"} {
		for _, del := range []bool{false, true} {
			if got := entryOf(t, key, 1, del).key(); got != key {
				t.Errorf("key of a %d-byte key (tombstone %v) = %d bytes %.16q", len(key), del, len(got), got)
			}
			if got := entryWith(t, key, 1, false, options{ttl: 3000, tomb: del}).key(); got != key {
				t.Errorf("key of a %d-byte key with a ttl (tombstone %v) = %d bytes %.16q", len(key), del, len(got), got)
			}
		}
	}
}

// TestKeyIndex checks the index against a Go map: random inserts and
// replacements, deletions (as expiry does), lookups of present and absent
// keys, growth, iteration.
func TestKeyIndex(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		x := newKeyIndex(r.IntN(100))
		ref := map[string]*entry{}
		for i := range 2000 {
			key := fmt.Sprintf("k%d", r.IntN(700))
			if r.IntN(10) == 0 {
				key = strings.Repeat("long", r.IntN(80))
			}
			e := entryOf(t, key, i, r.IntN(5) == 0)
			h := x.hash(key)
			slot := x.find(key, h)
			if got := x.slots[slot].e; got != ref[key] {
				t.Fatalf("seed %d: find(%q) holds %p, want %p", seed, key, got, ref[key])
			}
			if r.IntN(6) == 0 {
				x.delete(key)
				delete(ref, key)
				if x.get(key) != nil {
					t.Fatalf("seed %d: get(%q) found an entry after delete", seed, key)
				}
				continue
			}
			x.set(slot, h, e)
			ref[key] = e
			if r.IntN(50) == 0 {
				x.grow(r.IntN(500))
			}
			if absent := fmt.Sprintf("absent%d", i); x.get(absent) != nil {
				t.Fatalf("seed %d: get(%q) found an entry", seed, absent)
			}
		}
		if x.n != len(ref) {
			t.Errorf("seed %d: %d keys, want %d", seed, x.n, len(ref))
		}
		got := map[string]*entry{}
		for k, e := range x.all() {
			if _, dup := got[k]; dup {
				t.Fatalf("seed %d: all yields %q twice", seed, k)
			}
			got[k] = e
		}
		if d := cmp.Diff(ref, got, cmp.Comparer(func(a, b *entry) bool { return a == b })); d != "" {
			t.Errorf("seed %d: all (-want +got):\n%s", seed, d)
		}
		for k, e := range ref {
			if x.get(k) != e {
				t.Errorf("seed %d: get(%q) is not the last entry set", seed, k)
			}
		}
		if n := x.n; n > len(x.slots)*3/4 {
			t.Errorf("seed %d: %d keys in %d slots, past 3/4", seed, n, len(x.slots))
		}
	}
}

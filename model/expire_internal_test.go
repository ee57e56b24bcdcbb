package model

import (
	"fmt"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// TestExpiriesBounded: refreshing keys with a long ttl leaves no more
// queued expiries than four times the keys, and the queue keeps its order.
func TestExpiriesBounded(t *testing.T) {
	now := time.UnixMilli(1795385884149)
	m, err := New("a", &scuttlebutt.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const keys = 10
	for i := range 20_000 {
		ttl := 365 * 24 * time.Hour
		if i%3 == 0 {
			ttl = time.Duration(1+i%7) * time.Hour // out of order: the heap
		}
		if err := m.SetTTL(fmt.Sprintf("k%d", i%keys), i, ttl); err != nil {
			t.Fatal(err)
		}
		if n := m.exp.Len(); n > 4*keys+1024 {
			t.Fatalf("after %d refreshes of %d keys, %d expiries are queued", i+1, keys, n)
		}
	}
	if n := len(m.History(nil)); n != keys {
		t.Errorf("History holds %d updates, want %d", n, keys)
	}
	now = now.Add(8 * time.Hour)
	m.Expire()
	prev := m.exp.top().at
	for m.exp.Len() > 0 {
		x := m.exp.pop()
		if x.at < prev {
			t.Fatalf("queue out of order: %v after %v", x.at, prev)
		}
		prev = x.at
	}
}

// TestExpiriesRefreshInPlace: a key refreshed on its own, the last one
// queued each time, keeps one expiry queued, none of them dead, and still
// runs out a ttl after its last refresh.
func TestExpiriesRefreshInPlace(t *testing.T) {
	now := time.UnixMilli(1795385884149)
	m, err := New("a", &scuttlebutt.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set("plain", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := m.SetTTL("me", i, 3*time.Second); err != nil {
			t.Fatal(err)
		}
		if n, dead := m.exp.Len(), m.exp.dead; n != 1 || dead != 0 {
			t.Fatalf("after %d refreshes: %d expiries queued, %d dead; want 1, 0", i+1, n, dead)
		}
		now = now.Add(time.Second)
	}
	if v, ok := m.Get("me"); !ok || v != int64(999) {
		t.Fatalf("Get(me) = %v, %v; want 999, true", v, ok)
	}
	now = now.Add(2 * time.Second) // 3 s after the last refresh
	if _, ok := m.Get("me"); ok {
		t.Error("me is still set a ttl after its last refresh")
	}
}

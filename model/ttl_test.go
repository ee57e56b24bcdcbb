package model_test

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

func mustSetTTL(t testing.TB, m *model.Model, key string, v any, ttl time.Duration) {
	t.Helper()
	if err := m.SetTTL(key, v, ttl); err != nil {
		t.Fatalf("%s: SetTTL(%q, %v, %v): %v", m.ID(), key, v, ttl, err)
	}
}

// reads checks everything m's readers see of key: Get, Keys, Len,
// Snapshot, Checkpoint.
func reads(t testing.TB, m *model.Model, key string, want any, set bool) {
	t.Helper()
	v, ok := m.Get(key)
	if ok != set || (set && !cmp.Equal(v, want)) {
		t.Errorf("%s: Get(%q) = %v, %v; want %v, %v", m.ID(), key, v, ok, want, set)
	}
	snap := m.Snapshot()
	if _, in := snap[key]; in != set {
		t.Errorf("%s: Snapshot() = %v; %q in it: %v, want %v", m.ID(), snap, key, in, set)
	}
	cp, _ := m.Checkpoint()
	if diff := cmp.Diff(snap, cp); diff != "" {
		t.Errorf("%s: Checkpoint differs from Snapshot (-snapshot +checkpoint):\n%s", m.ID(), diff)
	}
	if got := m.Len(); got != len(snap) {
		t.Errorf("%s: Len() = %d, Snapshot has %d keys", m.ID(), got, len(snap))
	}
	if got := len(m.Keys()); got != len(snap) {
		t.Errorf("%s: Keys() = %v, Snapshot has %d keys", m.ID(), m.Keys(), len(snap))
	}
}

// TestTTLExpiry: a key reads as set until its timestamp plus ttl, then as
// absent, on the writer and on a replica that got it before or after; the
// write leaves History when it runs out.
func TestTTLExpiry(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, wb := newModel(t, "b", today)
	mustSetTTL(t, a, "k", "v", 3*time.Second)
	mustSet(t, a, "plain", 1)
	pull(t, b, a)
	wa.set(today + 3*sec - 1)
	reads(t, a, "k", "v", true)
	wa.set(today + 3*sec)
	reads(t, a, "k", nil, false)
	if h := history(a, nil); len(h) != 1 || h[0].Desc != "plain=1" {
		t.Errorf("a's history after the expiry = %v, want the plain key only", h)
	}
	// b's clock is behind: the key lives there until b's clock passes.
	wb.set(today + 2*sec)
	reads(t, b, "k", "v", true)
	wb.set(today + 4*sec)
	reads(t, b, "k", nil, false)
	// c hears of it only after it ran out: it keeps nothing of it.
	c, _ := newModel(t, "c", today+5*sec)
	if _, err := c.Apply(b.History(nil)...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(scuttlebutt.Update{Source: a.Source(), Timestamp: today, Data: a.History(nil)[0].Data}); err != nil {
		t.Fatal(err)
	}
	reads(t, c, "k", nil, false)
	// The wall clock going back does not bring it back.
	wa.set(today + sec)
	reads(t, a, "k", nil, false)
}

// TestTTLRefresh: refreshing a key every second keeps it set, History
// holds one update for it, and once the refreshes stop it runs out ttl
// after the last.
func TestTTLRefresh(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, wb := newModel(t, "b", today)
	for i := range 20 {
		wa.set(today + int64(i)*sec)
		wb.set(today + int64(i)*sec)
		mustSetTTL(t, a, "presence/a", i, 3*time.Second)
		pull(t, b, a)
		reads(t, b, "presence/a", int64(i), true)
		if h := history(a, nil); len(h) != 1 {
			t.Fatalf("after %d refreshes, a's history = %v, want one update", i+1, h)
		}
	}
	last := int64(today + 19*sec)
	wb.set(last + 3*sec - 1)
	reads(t, b, "presence/a", int64(19), true)
	wb.set(last + 3*sec)
	reads(t, b, "presence/a", nil, false)
	if h := history(b, nil); len(h) != 0 {
		t.Errorf("b's history = %v, want nothing", h)
	}
}

// TestTTLWatch: a refresh is reported as any write; the expiry as a delete
// with Expired set, when Expire runs (reads do not call watchers).
func TestTTLWatch(t *testing.T) {
	a, wa := newModel(t, "a", today)
	var got changeLog
	defer a.Watch(got.add)()
	mustSetTTL(t, a, "k", "v1", 3*time.Second)
	wa.set(today + sec)
	mustSetTTL(t, a, "k", "v2", 3*time.Second)
	wa.set(today + 4*sec)
	reads(t, a, "k", nil, false)
	if n := len(got.list()); n != 2 {
		t.Errorf("a read delivered the expiry: %v", got.list())
	}
	if next := a.Expire(); !next.IsZero() {
		t.Errorf("Expire() = %v, want the zero Time: nothing left to expire", next)
	}
	h := a.History(nil) // empty: use the clock for the expired write's stamp
	if len(h) != 0 {
		t.Fatalf("history %v, want empty", h)
	}
	ts := a.Clock().Get(a.Source())
	want := []model.Change{
		{Key: "k", Value: "v1", Source: a.Source(), Timestamp: today, Local: true},
		{Key: "k", Value: "v2", Old: "v1", Source: a.Source(), Timestamp: ts, Local: true},
		{Key: "k", Old: "v2", Deleted: true, Source: a.Source(), Timestamp: ts, Local: true, Expired: true},
	}
	if diff := cmp.Diff(want, got.list()); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	// Expire reports the next expiry.
	wa.set(today + 10*sec)
	mustSetTTL(t, a, "x", 1, 2*time.Second)
	mustSetTTL(t, a, "y", 1, 5*time.Second)
	if next := a.Expire(); next.UnixMilli() != today+12*sec {
		t.Errorf("Expire() = %v, want %v", next.UnixMilli(), today+12*sec)
	}
}

// TestTTLOverPlainValue: SetTTL over a value without a ttl: once the TTL
// write runs out the key reads as deleted, not as the value before; the
// write stays as a tombstone. A key only ever written with SetTTL leaves
// nothing.
func TestTTLOverPlainValue(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, wb := newModel(t, "b", today)
	mustSet(t, a, "k", "plain")
	wa.set(today + sec)
	mustSetTTL(t, a, "k", "brief", 3*time.Second)
	wa.set(today + 2*sec)
	mustSetTTL(t, a, "k", "brief2", 3*time.Second) // inherits the tombstone
	pull(t, b, a)
	for _, m := range []*model.Model{a, b} {
		if h := history(m, nil); len(h) != 1 {
			t.Errorf("%s: history %v, want the last write only", m.ID(), h)
		}
	}
	wa.set(today + 5*sec)
	wb.set(today + 5*sec)
	for _, m := range []*model.Model{a, b} {
		reads(t, m, "k", nil, false)
		if h := history(m, nil); len(h) != 1 {
			t.Errorf("%s: history %v, want the expired write, as a tombstone", m.ID(), h)
		}
	}
	// A later plain write replaces the tombstone.
	mustSet(t, b, "k", "again")
	pull(t, a, b)
	reads(t, a, "k", "again", true)
	if h := history(a, nil); len(h) != 1 {
		t.Errorf("history %v, want the last write only", h)
	}
}

// TestTTLOlderWriteReturns: a value that the TTL write's writer did not
// know of, older than it, is the key's value again once the TTL write runs
// out: an expired write counts no more, anywhere (which is what lets it
// cost nothing). Every replica agrees.
func TestTTLOlderWriteReturns(t *testing.T) {
	a, wa := newModel(t, "a", today+sec)
	b, wb := newModel(t, "b", today)
	mustSetTTL(t, a, "k", "brief", 3*time.Second)
	mustSet(t, b, "k", "older") // concurrently, earlier
	exchange(t, a, b)
	for _, m := range []*model.Model{a, b} {
		reads(t, m, "k", "brief", true)
	}
	wa.set(today + 4*sec)
	wb.set(today + 4*sec)
	for _, m := range []*model.Model{a, b} {
		reads(t, m, "k", "older", true)
	}
}

// TestTTLRestartFromLog: a replica restarted from its log after its TTL
// keys ran out has them as expired: absent, and not in History; one that
// had not run out lives on and runs out at its time.
func TestTTLRestartFromLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	w := &manualWall{ms: today}
	open := func() (*model.Model, *filelog.Log) {
		m, err := model.New("a", &scuttlebutt.Config{Now: w.now})
		if err != nil {
			t.Fatal(err)
		}
		l, err := filelog.Open(path, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m, l
	}
	m, l := open()
	mustSetTTL(t, m, "short", "s", 3*time.Second)
	mustSetTTL(t, m, "long", "l", time.Minute)
	mustSet(t, m, "plain", "p")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	w.set(today + 10*sec)
	m, l = open()
	reads(t, m, "short", nil, false)
	reads(t, m, "long", "l", true)
	if h := history(m, nil); len(h) != 2 {
		t.Errorf("history after the restart = %v, want long and plain", h)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	w.set(today + 2*time.Minute.Milliseconds())
	m, l = open()
	defer l.Close()
	reads(t, m, "long", nil, false)
	reads(t, m, "short", nil, false)
	if diff := cmp.Diff(map[string]any{"plain": "p"}, m.Snapshot()); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

// TestSetTTLInvalid: ttls out of range are refused and change nothing.
func TestSetTTLInvalid(t *testing.T) {
	m, _ := newModel(t, "a", today)
	for _, ttl := range []time.Duration{0, -time.Second, model.MaxTTL + time.Millisecond} {
		if err := unchanged(t, m, func() error { return m.SetTTL("k", 1, ttl) }); !errors.Is(err, model.ErrInvalidValue) {
			t.Errorf("SetTTL(ttl %v) = %v, want ErrInvalidValue", ttl, err)
		}
	}
	mustSetTTL(t, m, "k", 1, time.Nanosecond) // rounds up to 1 ms
	mustSetTTL(t, m, "k", 1, model.MaxTTL)
}

// TestValidateOptions: every bound of the options is checked on updates
// from peers, before anything is applied; old payloads still decode.
func TestValidateOptions(t *testing.T) {
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", v, err)
		}
		return b
	}
	type kv = map[string]any
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"old set", enc([]any{"k", 1}), true},
		{"old tombstone", enc([]any{"k"}), true},
		{"ttl", enc([]any{"k", 1, kv{"ttl": 3000}}), true},
		{"ttl and lease", enc([]any{"k", "v", kv{"ttl": 3000, "lease": 1000}}), true},
		{"lease and since", enc([]any{"k", nil, kv{"lease": 1000, "since": float64(today) + 0.5}}), true},
		{"integral since", enc([]any{"k", 1, kv{"since": today}}), true},
		{"ttl and tomb", enc([]any{"k", 1, kv{"ttl": 1, "tomb": true}}), true},
		{"release", enc([]any{"k", nil, kv{"del": true, "since": today}}), true},
		{"max ttl", enc([]any{"k", 1, kv{"ttl": model.MaxTTL.Milliseconds()}}), true},
		{"max lease", enc([]any{"k", 1, kv{"lease": model.MaxLease.Milliseconds()}}), true},
		{"three elements", enc([]any{"k", 1, 2}), false},
		{"empty options", enc([]any{"k", 1, kv{}}), false},
		{"unknown option", enc([]any{"k", 1, kv{"ttl": 1, "color": 1}}), false},
		{"ttl zero", enc([]any{"k", 1, kv{"ttl": 0}}), false},
		{"ttl negative", enc([]any{"k", 1, kv{"ttl": -1}}), false},
		{"ttl float", enc([]any{"k", 1, kv{"ttl": 1.5}}), false},
		{"ttl over 10 years", enc([]any{"k", 1, kv{"ttl": model.MaxTTL.Milliseconds() + 1}}), false},
		{"lease over MaxLease", enc([]any{"k", 1, kv{"lease": model.MaxLease.Milliseconds() + 1}}), false},
		{"since zero", enc([]any{"k", 1, kv{"since": 0}}), false},
		{"since infinite", enc([]any{"k", 1, kv{"since": math.Inf(1)}}), false},
		{"since a string", enc([]any{"k", 1, kv{"since": "then"}}), false},
		{"tomb without ttl", enc([]any{"k", 1, kv{"tomb": true}}), false},
		{"tomb false", enc([]any{"k", 1, kv{"ttl": 1, "tomb": false}}), false},
		{"del with a value", enc([]any{"k", 1, kv{"del": true, "since": today}}), false},
		{"del without since", enc([]any{"k", nil, kv{"del": true}}), false},
		{"del with a ttl", enc([]any{"k", nil, kv{"del": true, "since": today, "ttl": 1}}), false},
		{"options not a map", enc([]any{"k", 1, []any{"ttl", 1}}), false},
		{"four elements", enc([]any{"k", 1, kv{"ttl": 1}, 2}), false},
		{"duplicate option", append(enc([]any{"k", 1})[:0:0], append([]byte{0x83, 0x61, 'k', 0x01, 0xa2, 0x63, 't', 't', 'l', 0x01}, 0x63, 't', 't', 'l', 0x02)...), false},
		{"bad value", append([]byte{0x83, 0x61, 'k', 0xf7}, enc(kv{"ttl": 1})...), false},
		// {"ttl": n} with n's head in every size, minimal or not, as the
		// general reader takes them; and what it refuses.
		{"ttl in a 1-byte head", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x18, 0x05}, true},
		{"ttl in a 2-byte head", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x19, 0x00, 0x05}, true},
		{"ttl in a 4-byte head", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x1a, 0x00, 0x00, 0x0b, 0xb8}, true},
		{"ttl in an 8-byte head", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x1b, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8}, true},
		{"ttl head cut short", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x19, 0x0b}, false},
		{"ttl then a byte", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x05, 0x00}, false},
		{"ttl indefinite", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x1f}, false},
		{"ttl reserved head", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x1c}, false},
		{"ttl missing", []byte{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l'}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newModel(t, "a", today)
			u := scuttlebutt.Update{Source: "peer", Timestamp: today + 1, Data: tt.data}
			err := m.Validator().ValidateUpdate(u)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidateUpdate(%x) = %v, want ok %v", tt.data, err, tt.ok)
			}
			if err != nil && !errors.Is(err, model.ErrInvalidValue) {
				t.Errorf("ValidateUpdate(%x) = %v, want ErrInvalidValue", tt.data, err)
			}
			if err == nil {
				if _, err := m.Apply(u); err != nil {
					t.Errorf("Apply(%x): %v", tt.data, err)
				}
			}
		})
	}
}

// TestOptionsJSON: an update with options crosses the JSON-lines codec
// (to JavaScript and back) with its options intact.
func TestOptionsJSON(t *testing.T) {
	m, _ := newModel(t, "a", today)
	mustSetTTL(t, m, "k", map[string]any{"x": 1}, 3*time.Second)
	data := m.History(nil)[0].Data
	out, err := m.DataToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	back, err := m.DataFromJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(data, back); diff != "" {
		t.Errorf("round trip (-sent +received):\n%s", diff)
	}
	// A JavaScript change with a third element that is not options: dropped.
	js, _ := cbor.Marshal([]any{"k", 1, map[string]any{"note": "js"}})
	got, err := m.DataFromJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := cbor.Marshal([]any{"k", 1}); !cmp.Equal(want, got) {
		t.Errorf("DataFromJSON(%x) = %x, want %x", js, got, want)
	}
}

// TestLocalPayloads pins the payloads that local writes make, options
// included (see Payload in the package doc): they are the wire and log
// format, which encoding them faster must not change.
func TestLocalPayloads(t *testing.T) {
	ttlKey := []byte{0x63, 't', 't', 'l'}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name  string
		write func(m *model.Model) error
		want  []byte
	}{
		{"Set", func(m *model.Model) error { return m.Set("k", 1) }, []byte{0x82, 0x61, 'k', 0x01}},
		{"Delete", func(m *model.Model) error { return m.Delete("k") }, []byte{0x81, 0x61, 'k'}},
		{"SetTTL 3s", func(m *model.Model) error { return m.SetTTL("k", 1, 3*time.Second) },
			cat([]byte{0x83, 0x61, 'k', 0x01, 0xa1}, ttlKey, []byte{0x19, 0x0b, 0xb8})},
		{"SetTTL 20ms", func(m *model.Model) error { return m.SetTTL("k", "v", 20*time.Millisecond) },
			cat([]byte{0x83, 0x61, 'k', 0x61, 'v', 0xa1}, ttlKey, []byte{0x14})},
		{"SetTTL MaxTTL", func(m *model.Model) error { return m.SetTTL("k", true, model.MaxTTL) },
			cat([]byte{0x83, 0x61, 'k', 0xf5, 0xa1}, ttlKey, []byte{0x1b, 0, 0, 0, 0x49, 0x6c, 0xeb, 0xb8, 0})},
		{"SetTTL refresh", func(m *model.Model) error {
			if err := m.SetTTL("k", 1, 3*time.Second); err != nil {
				return err
			}
			return m.SetTTL("k", 2, 3*time.Second)
		}, cat([]byte{0x83, 0x61, 'k', 0x02, 0xa1}, ttlKey, []byte{0x19, 0x0b, 0xb8})},
		{"SetTTL over a value", func(m *model.Model) error {
			if err := m.Set("k", 1); err != nil {
				return err
			}
			return m.SetTTL("k", 2, 3*time.Second)
		}, cat([]byte{0x83, 0x61, 'k', 0x02, 0xa2}, ttlKey, []byte{0x19, 0x0b, 0xb8, 0x64, 't', 'o', 'm', 'b', 0xf5})},
		{"Set over a TTL write", func(m *model.Model) error {
			if err := m.SetTTL("k", 1, 3*time.Second); err != nil {
				return err
			}
			return m.Set("k", 2)
		}, []byte{0x82, 0x61, 'k', 0x02}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newModel(t, "a", today)
			if err := tt.write(m); err != nil {
				t.Fatal(err)
			}
			h := m.History(nil)
			if len(h) != 1 {
				t.Fatalf("History() = %v, want one update", h)
			}
			if got := h[0].Data; !bytes.Equal(got, tt.want) {
				t.Errorf("payload %x, want %x", got, tt.want)
			}
		})
	}
}

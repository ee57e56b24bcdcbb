package model_test

import (
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// FuzzPayload feeds arbitrary payloads to the Validator: it never panics,
// and what it accepts applies, reads back, crosses the JSON transcoder to
// a payload it accepts too, with the same options, and expires.
//
//	go test -run '^$' -fuzz FuzzPayload -fuzztime 30s ./model
func FuzzPayload(f *testing.F) {
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	type kv = map[string]any
	for _, seed := range [][]byte{
		enc([]any{"k", 1}),
		enc([]any{"k"}),
		enc([]any{"k", "v", kv{"ttl": 3000}}),
		enc([]any{"k", []any{1, "x"}, kv{"ttl": 3000, "lease": 1000, "since": float64(today) + 0.5}}),
		enc([]any{"k", map[string]any{"a": 1}, kv{"ttl": 1, "tomb": true}}),
		enc([]any{"k", nil, kv{"del": true, "since": today}}),
		enc([]any{"k", 1, kv{"ttl": 0}}),
		enc([]any{"k", 1, 2}),
		{0x83, 0x61, 'k', 0x01, 0xa1, 0x63, 't', 't', 'l', 0x19, 0x0b, 0xb8},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &manualWall{ms: today}
		m, err := model.New("a", &scuttlebutt.Config{Now: w.now})
		if err != nil {
			t.Fatal(err)
		}
		u := scuttlebutt.Update{Source: "peer~1", Timestamp: today, Data: data}
		if m.Validator().ValidateUpdate(u) != nil {
			return
		}
		if _, err := m.Apply(u); err != nil {
			t.Fatalf("Apply of an accepted payload %x: %v", data, err)
		}
		m.Snapshot()
		m.History(nil)
		opts, err := decodeOptions(data)
		if err != nil {
			t.Fatalf("accepted payload %x does not decode: %v", data, err)
		}
		j, err := m.DataToJSON(data)
		if err != nil {
			t.Fatalf("DataToJSON(%x): %v", data, err)
		}
		back, err := m.DataFromJSON(j)
		if err != nil {
			t.Fatalf("DataFromJSON(%x): %v", j, err)
		}
		if err := m.Validator().ValidateUpdate(scuttlebutt.Update{Source: "peer~1", Timestamp: today, Data: back}); err != nil {
			t.Fatalf("payload %x came back from JSON as %x, refused: %v", data, back, err)
		}
		if got, err := decodeOptions(back); err != nil || got != opts {
			t.Fatalf("payload %x came back from JSON as %x with options %+v, want %+v (%v)", data, back, got, opts, err)
		}
		w.set(today + int64(model.MaxTTL/time.Millisecond) + 1)
		m.Expire()
		if opts.TTL != 0 && m.Len() != 0 {
			t.Fatalf("payload %x: a key with ttl %d ms is still set after MaxTTL", data, opts.TTL)
		}
	})
}

package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestKey(t *testing.T) {
	tests := []struct {
		i    int
		want string
	}{
		{0, "k0"},
		{1, "k1"},
		{99_999, "k99999"},
		{1_000_000, "k1000000"},
	}
	for _, tt := range tests {
		if got := Key(tt.i); got != tt.want {
			t.Errorf("Key(%d) = %q, want %q", tt.i, got, tt.want)
		}
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		r    string
		i    int
		want string
	}{
		{"a", 0, "a.0.abcdefghijklmnopqrstuvwxyz01"},
		{"a", 99_999, "a.99999.abcdefghijklmnopqrstuvwx"},
		{"r99", 1_234, "r99.1234.abcdefghijklmnopqrstuvw"},
	}
	for _, tt := range tests {
		got := Value(tt.r, tt.i)
		if got != tt.want || len(got) != ValueSize {
			t.Errorf("Value(%q, %d) = %q (%d bytes), want %q (%d)", tt.r, tt.i, got, len(got), tt.want, ValueSize)
		}
	}
}

// TestWorkloads runs every workload at a small size over every transport:
// the workloads check that the replicas converged, and these checks check
// what they report.
func TestWorkloads(t *testing.T) {
	const keys = 2_000
	workloads := []struct {
		name  string
		run   func(context.Context, *Options) (Result, error)
		opts  Options
		local bool // no connection involved
		check func(t *testing.T, r Result)
	}{
		{"W1", W1, Options{Keys: keys}, false, func(t *testing.T, r Result) {
			wantN(t, r, keys)
			if r.BytesPerUpdate < 20 || r.BytesPerUpdate > 200 {
				t.Errorf("%.1f bytes per update, want a small update's size", r.BytesPerUpdate)
			}
		}},
		{"W1Base", W1Base, Options{Keys: keys}, false, func(t *testing.T, r Result) {
			wantN(t, r, keys)
			if r.BytesPerUpdate < 20 || r.BytesPerUpdate > 200 {
				t.Errorf("%.1f bytes per update, want a small update's size", r.BytesPerUpdate)
			}
		}},
		{"W2", W2, Options{Keys: 100, Rounds: 20}, false, func(t *testing.T, r Result) {
			wantN(t, r, 100*20)
			if r.HistoryLen != 100 {
				t.Errorf("history of %d updates, want one per key, 100", r.HistoryLen)
			}
		}},
		{"W3", W3, Options{Keys: keys, Changes: 10}, false, func(t *testing.T, r Result) {
			wantN(t, r, 20)
			if r.Bytes <= 0 || r.Bytes > 20*200 {
				t.Errorf("%d bytes exchanged for 20 changes", r.Bytes)
			}
		}},
		{"W4", W4, Options{Keys: keys}, false, func(t *testing.T, r Result) {
			wantN(t, r, keys)
			if r.Bytes < keys*20 {
				t.Errorf("%d bytes for %d keys", r.Bytes, keys)
			}
		}},
		{"W5Local", W5Local, Options{Keys: keys}, true, func(t *testing.T, r Result) { wantN(t, r, keys) }},
		{"W5Sync", W5Sync, Options{Keys: keys}, false, func(t *testing.T, r Result) { wantN(t, r, keys) }},
		{"D1", D1, Options{Keys: keys}, false, func(t *testing.T, r Result) {
			wantN(t, r, keys)
			if r.BytesPerUpdate < 20 || r.BytesPerUpdate > 200 {
				t.Errorf("%.1f bytes per patch, want a small patch's size", r.BytesPerUpdate)
			}
			if r.DataBytes <= int64(keys*ValueSize) || r.OverheadPerUpdate <= 0 {
				t.Errorf("%d data bytes, %.1f beyond them per patch, for %d patches of %d-byte values", r.DataBytes, r.OverheadPerUpdate, keys, ValueSize)
			}
		}},
		{"D2", D2, Options{Keys: keys}, true, func(t *testing.T, r Result) {
			wantN(t, r, keys)
			if r.HeapPerKey < ValueSize || r.HeapPerKey > 4096 {
				t.Errorf("%.1f heap bytes per leaf of %d bytes", r.HeapPerKey, ValueSize)
			}
		}},
		{"D3", D3, Options{Keys: keys, Changes: 10}, false, func(t *testing.T, r Result) {
			wantN(t, r, 20)
			if r.Bytes <= r.DataBytes || r.Bytes > 20*200 {
				t.Errorf("%d bytes exchanged for 20 patches of %d data bytes", r.Bytes, r.DataBytes)
			}
		}},
	}
	for _, w := range workloads {
		for _, tr := range Transports {
			if w.local && tr != Pipe {
				continue
			}
			name := w.name + "/" + string(tr)
			if w.local {
				name = w.name
			}
			t.Run(name, func(t *testing.T) {
				o := w.opts
				o.Transport = tr
				r, err := w.run(t.Context(), &o)
				if err != nil {
					t.Fatalf("%s: %v", w.name, err)
				}
				t.Log(r)
				if r.Duration <= 0 {
					t.Errorf("duration %v, want > 0", r.Duration)
				}
				w.check(t, r)
			})
		}
	}
}

func wantN(t *testing.T, r Result, n int) {
	t.Helper()
	if r.N != n {
		t.Errorf("N = %d, want %d", r.N, n)
	}
}

// TestPairIsModelPayload checks that W1Base sends the very payload a
// Model's Set of the same key and value makes, for short and long strings.
func TestPairIsModelPayload(t *testing.T) {
	for _, kv := range [][2]string{{"k1", Value("a", 1)}, {"", ""}, {strings.Repeat("k", 300), strings.Repeat("v", 70_000)}} {
		m, err := model.New("m", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
		h := m.History(vclock.Clock{})
		if len(h) != 1 {
			t.Fatalf("history of %d updates, want 1", len(h))
		}
		if got := appendPair(nil, kv[0], kv[1]); !bytes.Equal(got, h[0].Data) {
			t.Errorf("key of %d bytes, value of %d: appendPair %x, the Model's %x", len(kv[0]), len(kv[1]), got[:min(len(got), 16)], h[0].Data[:min(len(h[0].Data), 16)])
		}
	}
}

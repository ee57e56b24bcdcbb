package doc_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestNewInvalidID(t *testing.T) {
	for _, id := range []string{"", "a\nb", "\xff", strings.Repeat("x", scuttlebutt.MaxIDLen+1)} {
		if _, err := doc.New(id, nil); !errors.Is(err, scuttlebutt.ErrInvalidID) {
			t.Errorf("New(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

// deep returns a value nested n arrays deep.
func deep(n int) any {
	var v any = "leaf"
	for range n {
		v = []any{v}
	}
	return v
}

// TestPatchErrors checks that an invalid patch is an error naming the
// cause, and changes nothing: neither the document nor its clock.
func TestPatchErrors(t *testing.T) {
	d, err := doc.New("a", &scuttlebutt.Config{MaxUpdateSize: 4096, Incarnation: "x"})
	if err != nil {
		t.Fatal(err)
	}
	patch(t, d, doc.Set("/s", "str"), doc.Set("/l", arr{1}), doc.Set("/o", obj{"x": 1}), doc.Inc("/n", 1))
	longPath := "/" + strings.Repeat("k/", doc.MaxDepth) + "k"
	tooMany := make([]doc.Op, doc.MaxOps+1)
	for i := range tooMany {
		tooMany[i] = doc.Inc("/n", 1)
	}
	for _, tc := range []struct {
		name string
		ops  []doc.Op
		want error
	}{
		{"path without a slash", []doc.Op{doc.Set("a", 1)}, doc.ErrInvalidPath},
		{"bad escape", []doc.Op{doc.Unset("/a~2")}, doc.ErrInvalidPath},
		{"path not UTF-8", []doc.Op{doc.Set("/\xff", 1)}, doc.ErrInvalidPath},
		{"write through an array", []doc.Op{doc.Set("/l/0", 1)}, doc.ErrInvalidPath},
		{"write through an array of the same patch", []doc.Op{doc.Push("/m", 1), doc.Inc("/m/0", 1)}, doc.ErrInvalidPath},
		{"value of a func", []doc.Op{doc.Set("/f", func() {})}, doc.ErrInvalidValue},
		{"NaN value", []doc.Op{doc.Set("/f", math.NaN())}, doc.ErrInvalidValue},
		{"uint64 past int64", []doc.Op{doc.Set("/f", uint64(math.MaxUint64))}, doc.ErrInvalidValue},
		{"inc by NaN", []doc.Op{doc.Inc("/n", math.NaN())}, doc.ErrInvalidValue},
		{"inc by infinity", []doc.Op{doc.Inc("/n", math.Inf(1))}, doc.ErrInvalidValue},
		{"counter overflow", []doc.Op{doc.Inc("/big", math.MaxFloat64), doc.Inc("/big", math.MaxFloat64)}, doc.ErrInvalidValue},
		{"push of a channel", []doc.Op{doc.Push("/p", make(chan int))}, doc.ErrInvalidValue},
		{"root set to a scalar", []doc.Op{doc.Set("", 1)}, doc.ErrNotObject},
		{"root set to an array", []doc.Op{doc.Set("", arr{})}, doc.ErrNotObject},
		{"inc of a string", []doc.Op{doc.Inc("/s", 1)}, doc.ErrNotNumber},
		{"inc of an object", []doc.Op{doc.Inc("/o", 1)}, doc.ErrNotNumber},
		{"inc of an array", []doc.Op{doc.Inc("/l", 1)}, doc.ErrNotNumber},
		{"inc of the root", []doc.Op{doc.Inc("", 1)}, doc.ErrNotNumber},
		{"inc of a string set in the patch", []doc.Op{doc.Set("/q", "x"), doc.Inc("/q", 1)}, doc.ErrNotNumber},
		{"inc of an object made in the patch", []doc.Op{doc.Set("/q/r", 1), doc.Inc("/q", 1)}, doc.ErrNotNumber},
		{"push to a number", []doc.Op{doc.Push("/n", 1)}, doc.ErrNotArray},
		{"push to an object", []doc.Op{doc.Push("/o", 1)}, doc.ErrNotArray},
		{"push to the root", []doc.Op{doc.Push("", 1)}, doc.ErrNotArray},
		{"pull from a string", []doc.Op{doc.Pull("/s", 1)}, doc.ErrNotArray},
		{"pull from the root", []doc.Op{doc.Pull("", 1)}, doc.ErrNotArray},
		{"path too deep", []doc.Op{doc.Set(longPath, 1)}, doc.ErrTooDeep},
		{"value too deep", []doc.Op{doc.Set("/a/b", deep(doc.MaxDepth-1))}, doc.ErrTooDeep},
		{"pushed value too deep", []doc.Op{doc.Push("/a", deep(doc.MaxDepth-1))}, doc.ErrTooDeep},
		{"too many ops", tooMany, doc.ErrTooLarge},
		{"too many bytes", []doc.Op{doc.Set("/big", strings.Repeat("x", 5000))}, doc.ErrTooLarge},
		{"a good op, then a bad one", []doc.Op{doc.Set("/good", 1), doc.Inc("/s", 1)}, doc.ErrNotNumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, clock := d.Checkpoint()
			err := d.Patch(tc.ops...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Patch = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "doc: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if c := d.Clock(); c.Compare(clock) != vclock.Equal {
				t.Errorf("the clock moved from %v to %v", clock, c)
			}
			if diff := cmp.Diff(snap, d.Snapshot()); diff != "" {
				t.Errorf("the document changed (-before +after):\n%s", diff)
			}
		})
	}
	// At the limits, patches go through.
	patch(t, d, doc.Set("/a/b", deep(doc.MaxDepth-2)), doc.Push("/p", deep(doc.MaxDepth-2)))
	patch(t, d, doc.Set("/"+strings.Repeat("k/", doc.MaxDepth-1)+"k", 1))
	big, _ := newDoc(t, "big", today)
	patch(t, big, tooMany[:doc.MaxOps]...)
	if got, _ := big.Get("/n"); got != int64(doc.MaxOps) {
		t.Errorf("/n = %v after %d increments in one patch, want %d", got, doc.MaxOps, doc.MaxOps)
	}
	// A patch that writes nothing writes no update.
	clock := d.Clock()
	patch(t, d)
	patch(t, d, doc.Pull("/nothing", 1))
	if c := d.Clock(); c.Compare(clock) != vclock.Equal {
		t.Errorf("an empty patch moved the clock from %v to %v", clock, c)
	}
}

// forged returns a payload, CBOR-encoded from v.
func forged(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestValidateUpdate checks that forged payloads are refused before
// anything is applied: a peer's session that sends one ends, and the
// good updates of its batch are not applied either.
func TestValidateUpdate(t *testing.T) {
	ts := float64(today)
	nan := math.NaN()
	long := make([]any, doc.MaxDepth+1)
	for i := range long {
		long[i] = "k"
	}
	for _, tc := range []struct {
		name string
		data any
		want error
	}{
		{"not an array", map[string]any{"a": 1}, doc.ErrInvalidValue},
		{"no op", []any{[]any{}}, doc.ErrInvalidValue},
		{"no source table", []any{[]any{0, []any{"a"}, 1}}, doc.ErrInvalidValue},
		{"source not text", []any{[]any{1}, []any{0, []any{"a"}, 1}}, doc.ErrInvalidValue},
		{"source not an id", []any{[]any{""}, []any{0, []any{"a"}, 1}}, doc.ErrInvalidValue},
		{"op not an array", []any{[]any{}, 0}, doc.ErrInvalidValue},
		{"unknown op code", []any{[]any{}, []any{9, []any{"a"}}}, doc.ErrInvalidValue},
		{"negative op code", []any{[]any{}, []any{-1, []any{"a"}}}, doc.ErrInvalidValue},
		{"path not an array", []any{[]any{}, []any{0, "/a", 1}}, doc.ErrInvalidPath},
		{"segment not text", []any{[]any{}, []any{0, []any{1}, 1}}, doc.ErrInvalidPath},
		{"segment not UTF-8", []any{[]any{}, []any{0, []any{"\xff"}, 1}}, doc.ErrInvalidPath},
		{"path too deep", []any{[]any{}, []any{0, long, 1}}, doc.ErrTooDeep},
		{"set without value", []any{[]any{}, []any{0, []any{"a"}}}, doc.ErrInvalidValue},
		{"set of NaN", []any{[]any{}, []any{0, []any{"a"}, nan}}, doc.ErrInvalidValue},
		{"set of a tag", []any{[]any{}, []any{0, []any{"a"}, cbor.Tag{Number: 1, Content: 1}}}, doc.ErrInvalidValue},
		{"set too deep", []any{[]any{}, []any{0, long[:2], deep(doc.MaxDepth - 1)}}, doc.ErrInvalidValue},
		{"root set to a scalar", []any{[]any{}, []any{0, []any{}, 1}}, doc.ErrNotObject},
		{"seen not an array", []any{[]any{"s~1"}, []any{1, []any{"a"}, 7}}, doc.ErrInvalidValue},
		{"seen entry short", []any{[]any{"s~1"}, []any{1, []any{"a"}, []any{[]any{[]any{}, 0, 1}}}}, doc.ErrInvalidValue},
		{"seen of an unknown source", []any{[]any{"s~1"}, []any{1, []any{"a"}, []any{[]any{[]any{}, 1, 1, 0}}}}, doc.ErrInvalidValue},
		{"seen of NaN", []any{[]any{"s~1"}, []any{1, []any{"a"}, []any{[]any{[]any{}, 0, nan, 0}}}}, doc.ErrInvalidValue},
		{"seen too deep", []any{[]any{"s~1"}, []any{1, []any{"a"}, []any{[]any{long, 0, 1, 0}}}}, doc.ErrTooDeep},
		{"unset with a value", []any{[]any{}, []any{1, []any{"a"}, []any{}, 1}}, doc.ErrInvalidValue},
		{"inc of the root", []any{[]any{}, []any{2, []any{}, 1, 0}}, doc.ErrInvalidValue},
		{"inc of NaN", []any{[]any{}, []any{2, []any{"n"}, nan, 0}}, doc.ErrInvalidValue},
		{"inc of infinity", []any{[]any{}, []any{2, []any{"n"}, 0, math.Inf(1)}}, doc.ErrInvalidValue},
		{"inc of a negative total", []any{[]any{}, []any{2, []any{"n"}, -1, 0}}, doc.ErrInvalidValue},
		{"inc of a string", []any{[]any{}, []any{2, []any{"n"}, "1", 0}}, doc.ErrInvalidValue},
		{"inc with one total", []any{[]any{}, []any{2, []any{"n"}, 1}}, doc.ErrInvalidValue},
		{"inc total an integer beyond 2^53", []any{[]any{}, []any{2, []any{"n"}, 0, uint64(1<<53 + 1)}}, doc.ErrInvalidValue},
		{"pull id timestamp an integer beyond 2^53", []any{[]any{"s~1"}, []any{4, []any{"l"}, []any{uint64(1 << 60), 0, 0, 0}}}, doc.ErrInvalidValue},
		{"push too deep", []any{[]any{}, []any{3, long[:doc.MaxDepth], 1}}, doc.ErrTooDeep},
		{"push of NaN", []any{[]any{}, []any{3, []any{"l"}, nan}}, doc.ErrInvalidValue},
		{"pull id not an array", []any{[]any{"s~1"}, []any{4, []any{"l"}, 1}}, doc.ErrInvalidValue},
		{"pull id of an unknown source", []any{[]any{"s~1"}, []any{4, []any{"l"}, []any{ts, 5, 0, 0}}}, doc.ErrInvalidValue},
		{"pull id with a bad timestamp", []any{[]any{"s~1"}, []any{4, []any{"l"}, []any{-1.0, 0, 0, 0}}}, doc.ErrInvalidValue},
		{"pull id with a bad op", []any{[]any{"s~1"}, []any{4, []any{"l"}, []any{ts, 0, doc.MaxOps, 0}}}, doc.ErrInvalidValue},
		{"bytes after the payload", nil, doc.ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := forged(t, tc.data)
			if tc.data == nil {
				data = append(forged(t, []any{[]any{}, []any{1, []any{"a"}}}), 0)
			}
			a, _ := newDoc(t, "a", today)
			patch(t, a, doc.Set("/good", 1))
			good := lastUpdate(t, a)
			bad := scuttlebutt.Update{Source: "mallory~1", Timestamp: vclock.Timestamp(today), Data: data}
			if err := a.Validator().ValidateUpdate(bad); !errors.Is(err, tc.want) {
				t.Errorf("ValidateUpdate = %v, want %v", err, tc.want)
			}
			// A peer sends a good update and the bad one in one message.
			b, _ := newDoc(t, "b", today)
			lb := b.NewLink(nil)
			defer lb.Close()
			lb.Ready()
			if err := lb.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "peer~1", Clock: vclock.Clock{}}}); err != nil {
				t.Fatal(err)
			}
			err := lb.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{good, bad}})
			if err == nil {
				err = lb.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}})
			}
			if !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Fatalf("the session goes on after a forged update: %v", err)
			}
			if c := b.Clock(); len(c) != 0 {
				t.Errorf("the receiver's clock moved to %v", c)
			}
			if s := b.Snapshot(); len(s) != 0 {
				t.Errorf("the receiver applied %v", s)
			}
		})
	}
}

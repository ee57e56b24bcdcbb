package doc_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// fuzzBase returns a document with something of every kind in it: the
// state a fuzzed payload lands on.
func fuzzBase(t testing.TB) *doc.Doc {
	d, _ := newDoc(t, "base", today)
	patch(t, d, doc.Set("/o", obj{"s": "x", "l": arr{1, "p"}, "e": obj{}}), doc.Inc("/n", 2), doc.Push("/l", "p", "q"))
	patch(t, d, doc.Inc("/o/c", 1), doc.Push("/o/l", 2))
	return d
}

// FuzzPayload checks the decoder of payloads: whatever the bytes, the
// Validator does not panic; a payload it accepts is one well-formed CBOR
// item of bounded nesting (what the base no longer checks itself) and
// applies without error
// and without panic; and the document stays convergent: a replica that
// applies the payload before the rest holds the same, so does a replica
// given the history, and so says the reference.
//
//	go test -run '^$' -fuzz FuzzPayload -fuzztime 60s ./doc
func FuzzPayload(f *testing.F) {
	// Seeds: a payload of every op, made on top of the base state.
	src := fuzzBase(f)
	for _, ops := range [][]doc.Op{
		{doc.Set("/o", obj{"a": arr{1, obj{"b": nil}}, "c": 1.5})},
		{doc.Set("", obj{"root": true})},
		{doc.Unset("/o")},
		{doc.Inc("/n", 3), doc.Inc("/o/c", -1)},
		{doc.Push("/l", "x", obj{"y": []byte{1}})},
		{doc.Pull("/l", "p"), doc.Pull("/o/l", 1)},
		{doc.Set("/o/s", "y"), doc.Unset("/o/e"), doc.Inc("/o/s2", 1), doc.Push("/o/l", 3)},
	} {
		patch(f, src, ops...)
		f.Add(lastUpdate(f, src).Data)
	}
	f.Add([]byte{0x82, 0x80, 0x82, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := fuzzBase(t)
		base := d.History(nil)
		u := scuttlebutt.Update{Source: "fuzz~1", Timestamp: vclock.Timestamp(today + 1), Data: data}
		if err := d.Validator().ValidateUpdate(u); err != nil {
			return
		}
		// The base leaves this scan to the Validator (WholeValidator).
		if err := cborx.Whole(data, scuttlebutt.MaxNesting); err != nil {
			t.Fatalf("the Validator accepts %x, the base's scan refuses it: %v", data, err)
		}
		if _, err := d.Apply(u); err != nil {
			t.Fatalf("the Validator accepts %x, Apply refuses it: %v", data, err)
		}
		got := d.Snapshot()
		first, _ := newDoc(t, "first", today)
		if _, err := first.Apply(u); err != nil {
			t.Fatal(err)
		}
		if _, err := first.Apply(base...); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, first.Snapshot()); diff != "" {
			t.Fatalf("the payload applied first gives another document (-after +first):\n%s", diff)
		}
		fresh, _ := newDoc(t, "fresh", today)
		if _, err := fresh.Apply(d.History(nil)...); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, fresh.Snapshot()); diff != "" {
			t.Fatalf("a replica given the history differs (-doc +fresh):\n%s", diff)
		}
		ops, err := refDecode(append(base, u))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(refEvaluate(ops), got); diff != "" {
			t.Fatalf("the document differs from the reference (-want +got):\n%s", diff)
		}
		// Every path reads without panic.
		var walk func(p string, v any)
		walk = func(p string, v any) {
			if _, ok := d.Get(p); !ok {
				t.Fatalf("Get(%q) finds nothing in %v", p, got)
			}
			if m, ok := v.(map[string]any); ok {
				for k, e := range m {
					walk(p+"/"+doc.Pointer(k)[1:], e)
				}
			}
		}
		walk("", got)
	})
}

// TestValidatorNesting forges set and push payloads whose value nests
// from shallow to past every bound, at paths of several depths: whatever
// the Validator accepts, the base's own scan accepts too, and the deepest
// value it accepts is as deep as the bounds allow (so the test is not
// passing on payloads refused for another reason).
func TestValidatorNesting(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	val := d.Validator()
	nested := func(n int) []byte { // n arrays around a 1
		b := make([]byte, 0, n+1)
		for range n {
			b = append(b, 0x81)
		}
		return append(b, 0x01)
	}
	for _, code := range []byte{0, 3} { // set, push
		for pathLen := 1; pathLen <= 3; pathLen++ {
			deepest := -1
			for n := 0; n <= scuttlebutt.MaxNesting+2; n++ {
				p := []byte{0x82, 0x80, 0x83, code, 0x80 | byte(pathLen)}
				for range pathLen {
					p = append(p, 0x61, 'k')
				}
				p = append(p, nested(n)...)
				u := scuttlebutt.Update{Source: "b~1", Timestamp: vclock.Timestamp(today), Data: p}
				if val.ValidateUpdate(u) != nil {
					continue
				}
				if err := cborx.Whole(p, scuttlebutt.MaxNesting); err != nil {
					t.Fatalf("op %d, path of %d, value nested %d: the Validator accepts it, the base's scan refuses it: %v", code, pathLen, n, err)
				}
				deepest = n
			}
			if deepest < doc.MaxDepth-pathLen-1 {
				t.Errorf("op %d, path of %d: the deepest value accepted nests %d, want at least %d", code, pathLen, deepest, doc.MaxDepth-pathLen-1)
			}
		}
	}
}

package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// bitsEqual compares updates bit for bit: a timestamp must come back as
// the same float64, not one equal to it.
var bitsEqual = cmp.Comparer(func(a, b vclock.Timestamp) bool { return sameBits(a, b) })

// TestStep pins how a timestamp is said after the last of its source:
// the form, the step, and that the decoder's arithmetic gives it back bit
// for bit.
func TestStep(t *testing.T) {
	const ms = vclock.Timestamp(1_700_000_000_000)
	js := vclock.Timestamp(1_795_385_884_149) // a JavaScript peer's timestamps: +n/1000
	tests := []struct {
		name       string
		prev, t    vclock.Timestamp
		form, step uint64
	}{
		{"one logical step", ms, ms + 1.0/1024, opTick, 1},
		{"three logical steps", ms + 5.0/1024, ms + 8.0/1024, opTick, 3},
		{"the next millisecond after logical steps", ms + 7.0/1024, ms + 1, opMilli, 1},
		{"the next millisecond", ms, ms + 1, opMilli, 1},
		{"a second later", ms + 3.0/1024, ms + 1000, opMilli, 1000},
		{"a logical step past the millisecond", ms + 1023.0/1024, ms + 1, opTick, 1},
		{"JavaScript .001 is 1/1024 at this size", js, js + 0.001, opTick, 1},
		{"JavaScript .005", js, js + 0.005, opTick, 5},
		{"JavaScript .006 is no multiple of 1/1024", js, js + 0.006, opFull, 0},
		{"JavaScript .006 to the next millisecond", js + 0.006, js + 1, opMilli, 1},
		{"JavaScript .001 at a smaller size", 1000, 1000.001, opFull, 0},
		{"the same timestamp", ms, ms, opFull, 0},
		{"back in time", ms + 1, ms, opFull, 0},
		{"half a step", ms, ms + 0.5/1024, opFull, 0},
		{"the largest step", 0.5, maxStep, opMilli, maxStep},
		{"past the largest step", 0.5, 2 * maxStep, opFull, 0},
		{"to the largest float64", math.MaxFloat64 / 2, math.MaxFloat64, opFull, 0},
		{"the next float64 at 2^60", 1 << 60, vclock.Timestamp(math.Nextafter(1<<60, math.Inf(1))), opMilli, 256},
		{"subnormal to one", vclock.Timestamp(math.SmallestNonzeroFloat64), 1, opMilli, 1},
		{"subnormal to subnormal", vclock.Timestamp(math.SmallestNonzeroFloat64), vclock.Timestamp(2 * math.SmallestNonzeroFloat64), opFull, 0},
		{"a fraction to one", 0.25, 1, opMilli, 1},
		{"a fraction in steps", 0.25, 0.25 + 3.0/1024, opTick, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form, k := step(tt.prev, tt.t)
			if form != tt.form || k != tt.step {
				t.Errorf("step(%v, %v) = form %d step %d, want form %d step %d", tt.prev, tt.t, form, k, tt.form, tt.step)
			}
			var got vclock.Timestamp
			switch form {
			case opTick:
				got = tickAfter(tt.prev, k)
			case opMilli:
				got = milliAfter(tt.prev, k)
			default:
				return
			}
			if !sameBits(got, tt.t) {
				t.Errorf("form %d step %d after %v gives %v (%#x), want %v (%#x)", form, k, tt.prev, got, math.Float64bits(float64(got)), tt.t, math.Float64bits(float64(tt.t)))
			}
		})
	}
}

// compactSession encodes batches with one encoder and decodes the frames
// with one decoder, as the two ends of a session do.
func compactSession(t testing.TB, batches [][]scuttlebutt.Update) [][]scuttlebutt.Update {
	t.Helper()
	var enc compactEncoder
	dec := newCompactDecoder(scuttlebutt.DefaultMaxSources)
	var got [][]scuttlebutt.Update
	for i, us := range batches {
		body := enc.appendUpdates(nil, us)
		dus, err := dec.updates(body)
		if err != nil {
			t.Fatalf("batch %d %v: %v\nbody %x", i, us, err, body)
		}
		got = append(got, dus)
	}
	return got
}

// randomSession returns batches of updates from a few sources whose
// timestamps go as every kind of clock makes them: an HLC's logical steps
// and milliseconds, a JavaScript peer's thousandths, jumps, and any
// float64 at all.
func randomSession(r *rand.Rand) [][]scuttlebutt.Update {
	sources := []string{"a", "replica1~k3x9p2qd", strings.Repeat("z", 128), "js", "ü"}
	last := map[string]vclock.Timestamp{}
	var batches [][]scuttlebutt.Update
	for range 1 + r.IntN(6) {
		var us []scuttlebutt.Update
		for range r.IntN(40) {
			src := sources[r.IntN(len(sources))]
			if r.IntN(4) > 0 && len(us) > 0 {
				src = us[len(us)-1].Source // runs of one source, as histories have
			}
			p, ok := last[src]
			if !ok {
				p = vclock.Timestamp(1_700_000_000_000 + r.IntN(1000))
			}
			var ts vclock.Timestamp
			switch r.IntN(8) {
			case 0, 1:
				ts = p + vclock.Timestamp(1+r.IntN(3))/1024
			case 2:
				ts = vclock.Timestamp(math.Floor(float64(p))) + vclock.Timestamp(1+r.IntN(2000))
			case 3:
				ts = p + vclock.Timestamp(1+r.IntN(9))/1000
			case 4:
				ts = vclock.Timestamp(math.Nextafter(float64(p), math.Inf(1)))
			case 5:
				ts = p - vclock.Timestamp(r.IntN(5)) // not after: full
				if !ts.Valid() {
					ts = p
				}
			case 6:
				ts = vclock.Timestamp(math.Float64frombits(r.Uint64() &^ (1 << 63)))
				if !ts.Valid() {
					ts = math.MaxFloat64
				}
			default:
				ts = vclock.Timestamp(r.Float64() * 1e-300)
				if !ts.Valid() {
					ts = math.SmallestNonzeroFloat64
				}
			}
			last[src] = ts
			u := scuttlebutt.Update{Source: src, Timestamp: ts, Data: []byte{0x82, 0x61, 'k', byte(r.IntN(24))}}
			switch r.IntN(10) {
			case 0:
				u.Signature = []byte{}
			case 1:
				u.Signature = []byte(fmt.Sprint(r.Int()))
			}
			us = append(us, u)
		}
		batches = append(batches, us)
	}
	return batches
}

// TestCompactRoundTrip: sessions of batches of every kind of timestamp
// come back bit for bit, and so does version 1's encoding of them.
func TestCompactRoundTrip(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 15))
		batches := randomSession(r)
		got := compactSession(t, batches)
		for i, us := range batches {
			if len(us) == 0 && len(got[i]) == 0 {
				continue // nil or not
			}
			if d := cmp.Diff(us, got[i], bitsEqual); d != "" {
				t.Fatalf("seed %d batch %d: compact round trip (-sent +received):\n%s", seed, i, d)
			}
			if len(us) == 0 {
				continue
			}
			v1 := cborx.AppendHead(nil, cborx.MajorArray, uint64(len(us)))
			for _, u := range us {
				v1 = wire.AppendUpdate(v1, u)
			}
			d := wire.Decoder{Copy: true}
			old, err := d.Updates(v1)
			if err != nil {
				t.Fatalf("seed %d batch %d: version 1: %v", seed, i, err)
			}
			if d := cmp.Diff(old, got[i], bitsEqual); d != "" {
				t.Fatalf("seed %d batch %d: version 2 differs from version 1 (-v1 +v2):\n%s", seed, i, d)
			}
		}
	}
}

// TestCompactShares: decoded updates share nothing with the frame.
func TestCompactShares(t *testing.T) {
	var enc compactEncoder
	us := []scuttlebutt.Update{{Source: "a", Timestamp: goodTS, Data: []byte{0x61, 'x'}, Signature: []byte{1}}}
	body := enc.appendUpdates(nil, us)
	got, err := newCompactDecoder(8).updates(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 0xff
	}
	if d := cmp.Diff(us, got); d != "" {
		t.Errorf("updates changed with the frame (-sent +received):\n%s", d)
	}
}

// TestCompactGolden pins the bytes of one compact frame (SPEC.md shows
// them): a new source with its full timestamp, a logical step, the next
// millisecond, a second source whose JavaScript-style .006 has no step,
// and the first source again by its index.
func TestCompactGolden(t *testing.T) {
	const ms = vclock.Timestamp(1_700_000_000_000)
	d := func(v byte) []byte { return []byte{0x82, 0x61, 'k', v} } // ["k", v]
	us := []scuttlebutt.Update{
		{Source: "a", Timestamp: ms, Data: d(1)},
		{Source: "a", Timestamp: ms + 1.0/1024, Data: d(2)},
		{Source: "a", Timestamp: ms + 1, Data: d(3)},
		{Source: "b", Timestamp: ms + 1.006, Data: d(4)},
		{Source: "a", Timestamp: ms + 2, Data: d(5)},
	}
	var enc compactEncoder
	got, err := appendFrame(nil, kindCompact, DefaultMaxFrameSize, func(b []byte) ([]byte, error) { return enc.appendUpdates(b, us), nil })
	if err != nil {
		t.Fatal(err)
	}
	want := cat(
		[]byte{0x07, 0x00, 0x00, 0x00, 0x31}, // kind 7, 49 bytes
		[]byte{0x05},                         // 5 updates
		[]byte{0x06, 0x61, 'a', 0xfb, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00}, d(1), // new source "a", full
		[]byte{0x10}, d(2), // tick 1
		[]byte{0x11}, d(3), // milli 1
		[]byte{0x06, 0x61, 'b', 0xfb, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x10, 0x19}, d(4), // new source "b", full
		[]byte{0x15, 0x00}, d(5), // source 0, milli 1
	)
	if !bytes.Equal(got, want) {
		t.Errorf("compact frame =\n%x, want\n%x", got, want)
	}
	dec := newCompactDecoder(8)
	back, err := dec.updates(got[headerSize:])
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(us, back, bitsEqual); d != "" {
		t.Errorf("golden frame decodes to (-want +got):\n%s", d)
	}
}

// compactOp is a hand-made op.
func compactOp(form, k uint64, source, sig bool) []byte {
	op := form | k<<opStepShift
	if source {
		op |= opSource
	}
	if sig {
		op |= opSignature
	}
	return cborx.AppendHead(nil, cborx.MajorUint, op)
}

// TestCompactDecodeErrors: every bound of the encoding, and every update
// the base would refuse, is an error of the documented kind; none panics.
func TestCompactDecodeErrors(t *testing.T) {
	data := []byte{0x82, 0x61, 'k', 0x01}
	full := wire.AppendTimestamp(nil, goodTS)
	newA := cat(compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, full, data) // defines source 0
	count := func(n uint64) []byte { return cborx.AppendHead(nil, cborx.MajorUint, n) }
	tests := []struct {
		name string
		max  int
		body []byte
		want []error
	}{
		{"empty", 8, nil, []error{cborx.ErrMalformed}},
		{"count not an integer", 8, []byte{0x80}, []error{cborx.ErrMalformed}},
		{"count past the frame", 8, cat(count(3), newA), []error{cborx.ErrMalformed}},
		{"huge count", 8, []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, []error{cborx.ErrMalformed}},
		{"bytes after the last update", 8, cat(count(1), newA, []byte{0x00}), []error{cborx.ErrMalformed}},
		{"no source and none before", 8, cat(count(1), compactOp(opFull, 0, false, false), full, data), []error{cborx.ErrMalformed}},
		{"unknown source index", 8, cat(count(2), newA, compactOp(opTick, 1, true, false), []byte{0x01}, data), []error{cborx.ErrMalformed}},
		{"huge source index", 8, cat(count(2), newA, compactOp(opTick, 1, true, false), []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, data), []error{cborx.ErrMalformed}},
		{"source neither index nor text", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x41, 'a'}, full, data), []error{cborx.ErrMalformed}},
		{"source named twice", 8, cat(count(2), newA, newA), []error{cborx.ErrMalformed}},
		{"table too large", 1, cat(count(2), newA, compactOp(opFull, 0, true, false), []byte{0x61, 'b'}, full, data), []error{scuttlebutt.ErrTooManySources}},
		{"empty table bound", 0, cat(count(1), newA), []error{scuttlebutt.ErrTooManySources}},
		{"source with a control character", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x62, 'a', 0x01}, full, data), []error{scuttlebutt.ErrInvalidUpdate}},
		{"source too long", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x78, 129}, bytes.Repeat([]byte{'a'}, 129), full, data), []error{scuttlebutt.ErrInvalidUpdate}},
		{"source past the frame", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x65, 'a'}), []error{cborx.ErrMalformed}},
		{"timestamp form 3", 8, cat(count(1), compactOp(opForm, 0, true, false), []byte{0x61, 'a'}, full, data), []error{cborx.ErrMalformed}},
		{"full timestamp with a step", 8, cat(count(1), compactOp(opFull, 1, true, false), []byte{0x61, 'a'}, full, data), []error{cborx.ErrMalformed}},
		{"step without a timestamp before", 8, cat(count(1), compactOp(opTick, 1, true, false), []byte{0x61, 'a'}, data), []error{cborx.ErrMalformed}},
		{"step of zero", 8, cat(count(2), newA, compactOp(opTick, 0, false, false), data), []error{cborx.ErrMalformed}},
		{"step past 2^53", 8, cat(count(2), newA, compactOp(opMilli, maxStep+1, false, false), data), []error{cborx.ErrMalformed}},
		{"step past 2^60", 8, cat(count(2), newA, []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0}, data), []error{cborx.ErrMalformed}},
		{"op not an integer", 8, cat(count(1), []byte{0x61, 'a'}), []error{cborx.ErrMalformed}},
		{"NaN timestamp", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, wire.AppendTimestamp(nil, vclock.Timestamp(math.NaN())), data), []error{scuttlebutt.ErrInvalidUpdate}},
		{"zero timestamp", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, []byte{0x00}, data), []error{scuttlebutt.ErrInvalidUpdate}},
		{"text timestamp", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, []byte{0x61, '1'}, data), []error{cborx.ErrMalformed}},
		{"timestamp past the frame", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, full[:4]), []error{cborx.ErrMalformed}},
		{"no data", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, full), []error{cborx.ErrMalformed}},
		{"data past the frame", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, full, data[:3]), []error{scuttlebutt.ErrInvalidUpdate}},
		{"data with a tag", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, full, []byte{0xc1, 0x01}), []error{scuttlebutt.ErrInvalidUpdate}},
		{"data nested too deep", 8, cat(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, full, deepPayload(scuttlebutt.MaxNesting+1)), []error{scuttlebutt.ErrInvalidUpdate}},
		{"signature missing", 8, cat(count(1), compactOp(opFull, 0, true, true), []byte{0x61, 'a'}, full, data), []error{cborx.ErrMalformed}},
		{"signature not bytes", 8, cat(count(1), compactOp(opFull, 0, true, true), []byte{0x61, 'a'}, full, data, []byte{0x61, 's'}), []error{cborx.ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newCompactDecoder(tt.max)
			us, err := d.updates(tt.body)
			if !isAny(err, tt.want) {
				t.Errorf("updates(%x) = %v, %v; want an error wrapping one of %v", tt.body, us, err, tt.want)
			}
			if !isAny(err, []error{cborx.ErrMalformed, scuttlebutt.ErrInvalidUpdate}) {
				t.Errorf("updates(%x): %v wraps neither cborx.ErrMalformed nor scuttlebutt.ErrInvalidUpdate", tt.body, err)
			}
		})
	}
	// A step that overflows cannot be made: the largest step from the
	// largest float64 stays finite (it rounds back), and the base's
	// checks see a valid timestamp.
	d := newCompactDecoder(8)
	body := cat(count(2), compactOp(opFull, 0, true, false), []byte{0x61, 'a'}, wire.AppendTimestamp(nil, math.MaxFloat64), data,
		compactOp(opMilli, maxStep, false, false), data)
	us, err := d.updates(body)
	if err != nil || len(us) != 2 || us[1].Timestamp != math.MaxFloat64 {
		t.Errorf("the largest step from the largest float64 = %v, %v; want it back", us, err)
	}
}

// TestCompactStateAcrossFrames: the table and the timestamps go on from
// frame to frame; an update checked whole changes nothing if it fails.
func TestCompactStateAcrossFrames(t *testing.T) {
	var enc compactEncoder
	dec := newCompactDecoder(2)
	a := scuttlebutt.Update{Source: "a", Timestamp: goodTS, Data: []byte{0xf6}}
	b := scuttlebutt.Update{Source: "b", Timestamp: goodTS + 1, Data: []byte{0xf6}}
	f1 := enc.appendUpdates(nil, []scuttlebutt.Update{a, b})
	a2 := a
	a2.Timestamp += 1.0 / 1024
	f2 := enc.appendUpdates(nil, []scuttlebutt.Update{a2})
	if want := []byte{0x01, 0x14, 0x00, 0xf6}; !bytes.Equal(f2, want) {
		t.Errorf("second frame = %x, want %x: source 0 by its index, one logical step", f2, want)
	}
	for i, f := range [][]byte{f1, f2} {
		if _, err := dec.updates(f); err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
	}
	// A third source does not fit the table of 2: refused, and the table
	// is as it was.
	bad := cat([]byte{0x01}, compactOp(opFull, 0, true, false), []byte{0x61, 'c'}, wire.AppendTimestamp(nil, goodTS), []byte{0xf6})
	if _, err := dec.updates(bad); !errors.Is(err, scuttlebutt.ErrTooManySources) {
		t.Errorf("a third source in a table of 2: %v, want ErrTooManySources", err)
	}
	if len(dec.sources) != 2 || dec.last != 0 || !sameBits(dec.prev[0], a2.Timestamp) {
		t.Errorf("a refused update changed the table: %v, last %d, prev %v", dec.sources, dec.last, dec.prev)
	}
}

// FuzzV2RoundTrip takes any body that version 1 decodes as a batch of
// updates (so any valid batch), and checks that version 2 encodes it, in
// one or two frames of a session, to frames that decode to the same
// updates bit for bit; and that the compact decoder never panics on the
// same bytes taken as a compact body.
func FuzzV2RoundTrip(f *testing.F) {
	add := func(split byte, us ...scuttlebutt.Update) {
		b := cborx.AppendHead(nil, cborx.MajorArray, uint64(len(us)))
		for _, u := range us {
			b = wire.AppendUpdate(b, u)
		}
		f.Add(b, split)
	}
	for seed := range uint64(8) {
		for _, us := range randomSession(rand.New(rand.NewPCG(seed, 1))) {
			add(byte(seed), us...)
		}
	}
	js := vclock.Timestamp(1_795_385_884_149)
	add(1, scuttlebutt.Update{Source: "js", Timestamp: js, Data: []byte{0xf6}},
		scuttlebutt.Update{Source: "js", Timestamp: js + 0.001, Data: []byte{0xf6}},
		scuttlebutt.Update{Source: "js", Timestamp: js + 0.006, Data: []byte{0xf6}},
		scuttlebutt.Update{Source: "js", Timestamp: js + 1, Data: []byte{0xf6}, Signature: []byte("s")})
	f.Add([]byte{0x81, 0x83, 0x61, 'a', 0xf9, 0x3e, 0x00, 0xf6}, byte(0)) // a half float
	f.Add([]byte{0x81, 0x83, 0x61, 'a', 0x1b, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0, 0xf6}, byte(0))
	f.Fuzz(func(t *testing.T, body []byte, split byte) {
		// The same bytes as a compact body: errors, never a panic.
		if _, err := newCompactDecoder(4).updates(body); err != nil && !isAny(err, []error{cborx.ErrMalformed, scuttlebutt.ErrInvalidUpdate}) {
			t.Fatalf("compact decode of %x: %v, neither malformed nor invalid", body, err)
		}
		d := wire.Decoder{Copy: true}
		us, err := d.Updates(body)
		if err != nil {
			return // not a valid batch
		}
		cut := 0
		if len(us) > 0 {
			cut = int(split) % (len(us) + 1)
		}
		got := compactSession(t, [][]scuttlebutt.Update{us[:cut], us[cut:]})
		if diff := cmp.Diff(us, append(got[0], got[1]...), bitsEqual, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) })); diff != "" {
			t.Fatalf("version 2 round trip of %x (-v1 +v2):\n%s", body, diff)
		}
	})
}

package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// The JSON-lines reader is hand-written. These benchmarks keep it honest:
// each reader turns the same lines into the same messages (see
// TestJSONLinesReadersAgree), one line at a time as the decoder frames
// them, on two inputs of the JavaScript interop path:
//
//   - W1: 10,000 update lines of W1's shape, key "k"+i and a 32-byte ASCII
//     string value, as JavaScript writes them;
//   - hello1k: a header whose clock names 1,000 sources.
//
// The readers: the hand-written parser (hand); encoding/json's
// Decoder.Token with UseNumber, a new Decoder per line as a drop-in would
// need (token), and one Decoder over the whole input, which cannot keep
// the per-line limits and errors but shows encoding/json's best
// (token-stream); and, built with GOEXPERIMENT=jsonv2, encoding/json/jsontext's
// ReadToken with one Decoder Reset per line (jsontext, in
// jsonlines_jsontext_bench_test.go). One op reads the whole input:
//
//	go test -run '^$' -bench JSONLinesReader -count 10 ./stream | benchstat -col /reader -
//	GOEXPERIMENT=jsonv2 go test -run '^$' -bench JSONLinesReader -count 10 ./stream | benchstat -col /reader -
func BenchmarkJSONLinesReader(b *testing.B) {
	for _, in := range jsonBenchInputs() {
		for _, r := range jsonReaders {
			b.Run("input="+in.name+"/reader="+r.name, func(b *testing.B) {
				read := r.new(in.lines)
				b.SetBytes(int64(in.size()))
				b.ReportAllocs()
				for b.Loop() {
					if err := read(func(scuttlebutt.Message) {}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in.lines)), "ns/line")
			})
		}
	}
}

// TestJSONLinesReadersAgree: the benchmarked readers all make the messages
// the hand-written one makes, so they are measured doing the same work.
func TestJSONLinesReadersAgree(t *testing.T) {
	for _, in := range jsonBenchInputs() {
		var want []scuttlebutt.Message
		for _, r := range jsonReaders {
			var got []scuttlebutt.Message
			if err := r.new(in.lines)(func(m scuttlebutt.Message) { got = append(got, m) }); err != nil {
				t.Fatalf("%s reading %s: %v", r.name, in.name, err)
			}
			if want == nil {
				want = got
				continue
			}
			if !reflect.DeepEqual(want, got) { // cmp.Diff is slow on 10,000 messages
				t.Errorf("%s reads %s otherwise than %s (-%[3]s +%[1]s):\n%s", r.name, in.name, jsonReaders[0].name, cmp.Diff(want, got))
			}
		}
	}
}

type jsonBenchInput struct {
	name  string
	lines [][]byte // without "\n"
}

func (in jsonBenchInput) size() (n int) {
	for _, l := range in.lines {
		n += len(l) + 1
	}
	return n
}

func jsonBenchInputs() []jsonBenchInput {
	const src = "ReplicaA" // 8 bytes, as W1's
	ts := vclock.Timestamp(1795385884149)
	enc := &jsonEncoder{max: DefaultMaxFrameSize}
	w1 := jsonBenchInput{name: "W1"}
	for i := range 10_000 {
		data, err := testEnc.Marshal([]any{"k" + strconv.Itoa(i), fmt.Sprintf("value-%026d", i)}) // 32 bytes
		if err != nil {
			panic(err)
		}
		ts += 1.0 / 1024 // the HLC's logical step
		b, err := enc.appendMessage(nil, scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{{Source: src, Timestamp: ts, Data: data}}})
		if err != nil {
			panic(err)
		}
		w1.lines = append(w1.lines, bytes.TrimSuffix(b, []byte("\n")))
	}
	c := make(vclock.Clock, 1000)
	for i := range 1000 {
		c[fmt.Sprintf("%08x~1", uint32(i)*2654435761)] = ts + vclock.Timestamp(i)
	}
	b, err := enc.appendMessage(nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{ID: src, Clock: c}})
	if err != nil {
		panic(err)
	}
	hello := jsonBenchInput{name: "hello1k", lines: [][]byte{bytes.TrimSuffix(b, []byte("\n"))}}
	return []jsonBenchInput{w1, hello}
}

// A jsonReader prepares to read lines; the function it returns reads them
// all, handing each message to f, each time it is called.
type jsonReader struct {
	name string
	new  func(lines [][]byte) func(f func(scuttlebutt.Message)) error
}

var jsonReaders = []jsonReader{
	{"hand", func(lines [][]byte) func(func(scuttlebutt.Message)) error {
		return func(f func(scuttlebutt.Message)) error {
			d := &jsonDecoder{}
			for _, l := range lines {
				d.lineNo++
				m, _, err := d.parseLine(l)
				if err != nil {
					return err
				}
				f(m)
			}
			return nil
		}
	}},
	{"token", func(lines [][]byte) func(func(scuttlebutt.Message)) error {
		return func(f func(scuttlebutt.Message)) error {
			var r bytes.Reader
			for _, l := range lines {
				if !utf8.Valid(l) { // encoding/json would make bad bytes U+FFFD
					return errors.New("not UTF-8")
				}
				r.Reset(l)
				dec := json.NewDecoder(&r)
				dec.UseNumber()
				m, err := tokenMessage(dec)
				if err != nil {
					return err
				}
				if _, err := dec.Token(); err != io.EOF {
					return fmt.Errorf("after the value: %v", err)
				}
				f(m)
			}
			return nil
		}
	}},
	{"token-stream", func(lines [][]byte) func(func(scuttlebutt.Message)) error {
		all := append(bytes.Join(lines, []byte("\n")), '\n')
		return func(f func(scuttlebutt.Message)) error {
			if !utf8.Valid(all) {
				return errors.New("not UTF-8")
			}
			dec := json.NewDecoder(bytes.NewReader(all))
			dec.UseNumber()
			for dec.More() {
				m, err := tokenMessage(dec)
				if err != nil {
					return err
				}
				f(m)
			}
			return nil
		}
	}},
}

// tokenMessage is jsonDecoder.parseLine written with encoding/json's
// Decoder.Token: it reads one header, update or "SYNC".
func tokenMessage(dec *json.Decoder) (scuttlebutt.Message, error) {
	tok, err := dec.Token()
	if err != nil {
		return scuttlebutt.Message{}, err
	}
	switch tok {
	case json.Delim('{'):
		item, err := tokenContainer(dec, nil, '{', 1)
		if err != nil {
			return scuttlebutt.Message{}, err
		}
		h, err := helloFromCBOR(item)
		return scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: h}, err
	case json.Delim('['):
		u, err := tokenUpdate(dec)
		return scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{u}}, err
	case "SYNC":
		return scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}, nil
	}
	return scuttlebutt.Message{}, fmt.Errorf("%v is not a header, an update or \"SYNC\"", tok)
}

// tokenUpdate reads the rest of [data, timestamp, source, signature?, ...].
func tokenUpdate(dec *json.Decoder) (u scuttlebutt.Update, err error) {
	if !dec.More() {
		return u, errors.New("an empty array")
	}
	if u.Data, err = tokenValue(dec, nil, 1); err != nil {
		return u, err
	}
	tok, err := dec.Token()
	if err != nil {
		return u, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return u, fmt.Errorf("timestamp %v is not a number", tok)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if u.Timestamp = vclock.Timestamp(f); err != nil || !u.Timestamp.Valid() {
		return u, fmt.Errorf("%s is not a positive finite number", n)
	}
	if tok, err = dec.Token(); err != nil {
		return u, err
	}
	if u.Source, ok = tok.(string); !ok {
		return u, fmt.Errorf("source %v is not a string", tok)
	}
	for i := 3; dec.More(); i++ {
		if tok, err = dec.Token(); err != nil {
			return u, err
		}
		if s, ok := tok.(string); ok && i == 3 {
			u.Signature = []byte(s)
			continue
		}
		if _, err := tokenAppend(dec, nil, tok, 1); err != nil { // extra: checked, dropped
			return u, err
		}
	}
	_, err = dec.Token() // ']'
	return u, err
}

// tokenValue appends the CBOR form of the next JSON value.
func tokenValue(dec *json.Decoder, dst []byte, depth int) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return dst, err
	}
	return tokenAppend(dec, dst, tok, depth)
}

func tokenAppend(dec *json.Decoder, dst []byte, tok json.Token, depth int) ([]byte, error) {
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			return dst, fmt.Errorf("nested deeper than %d", maxJSONDepth)
		}
		return tokenContainer(dec, dst, v, depth+1)
	case string:
		return append(cborx.AppendHead(dst, majorText, uint64(len(v))), v...), nil
	case json.Number:
		return appendJSONNumberAsCBOR(dst, []byte(v))
	case bool:
		if v {
			return append(dst, 0xf5), nil
		}
		return append(dst, 0xf4), nil
	case nil:
		return append(dst, 0xf6), nil
	}
	return dst, fmt.Errorf("unexpected token %v", tok)
}

// tokenContainer appends the array or object whose open delimiter was
// read, up to its close.
func tokenContainer(dec *json.Decoder, dst []byte, open json.Delim, depth int) ([]byte, error) {
	major := byte(majorArray)
	if open == '{' {
		major = majorMap
	}
	start := len(dst)
	dst = append(dst, make([]byte, 9)...) // room for the longest head
	var seen map[string]bool
	n := uint64(0)
	for ; dec.More(); n++ {
		if open == '{' {
			tok, err := dec.Token()
			if err != nil {
				return dst, err
			}
			k := tok.(string) // Token checks that a name is a string
			if seen[k] {
				return dst, fmt.Errorf("duplicate key %q", k)
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[k] = true
			dst = append(cborx.AppendHead(dst, majorText, uint64(len(k))), k...)
		}
		var err error
		if dst, err = tokenValue(dec, dst, depth); err != nil {
			return dst, err
		}
	}
	if _, err := dec.Token(); err != nil { // the close
		return dst, err
	}
	return patchHead(dst, start, major, n), nil
}

package stream

import (
	"context"
	"fmt"
	"io"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// JSONLines is the codec of JavaScript scuttlebutt@5.6.15 (dominictarr's):
// newline-delimited JSON, byte for byte as Node writes it, so a Go replica
// can be piped to a Node one:
//
//	c := stream.NewConn(m, conn, &stream.Options{Codec: stream.JSONLines})
//
// It is the same protocol as the native codec; only the bytes differ. Each
// message is one line of compact JSON ended by "\n":
//
//	{"id":"A","clock":{"A":1795385884149.001}}   hello ("meta" follows when set)
//	[["k","v"],1795385884149,"A"]                one line per update: [data, timestamp, source]
//	"SYNC"                                       end of the history
//
// The mapping, and where it loses something:
//
//   - hello: id, clock and meta; JavaScript sends no version, so a received
//     header is protocol version 1. Clock entries are written in sorted
//     order. A null clock entry reads as absent (JavaScript's "send
//     everything from that source").
//   - updates: [data, timestamp, source], plus the signature as a 4th
//     element when the update has one that is UTF-8 text (JavaScript's
//     security plugin puts a base64 string there). Elements after the 4th
//     are accepted and dropped; so is a 4th that is not a string.
//   - sync: the clock it carries has no JSON form and is dropped; a received
//     "SYNC" is a sync with an empty clock. A second "SYNC" on the same
//     stream (JavaScript's one-way master/slave streams send one) is
//     skipped.
//   - clock messages have no JSON form: nothing is written.
//
// Update data is CBOR; on this wire it is JSON. A Document that implements
// JSONTranscoder (model.Model does) reshapes it; otherwise the generic
// mapping below applies both ways.
//
//   - Numbers: a JSON integer literal (digits, optional minus, no fraction
//     or exponent) that fits in int64 becomes a CBOR integer, exactly;
//     every other number becomes a float64, the nearest one, as
//     JavaScript's JSON.parse does (the CBOR float is the shortest that
//     holds it exactly). Numbers are written as JavaScript writes them:
//     integers in full, floats as the shortest decimal that reads back to
//     the same float64, with an exponent below 1e-6 and from 1e21 up
//     ("1e+300", "1.5e-7"), and -0 as "0". A number from JavaScript
//     therefore goes back to JavaScript as the same text. A Go float64
//     that holds an integer (2.0) comes back as an int64, and integers
//     beyond ±2^53 do not survive JavaScript's doubles.
//   - Strings are UTF-8 and are written as JSON.stringify writes them: only
//     '"', '\\' and control characters are escaped. A lone UTF-16
//     surrogate escape (\ud800) reads as U+FFFD.
//   - CBOR byte strings have no JSON form: they are written as base64
//     strings (padded, standard alphabet) and come back as strings.
//   - Objects keep their key order, both ways; duplicate keys are an error.
//     Maps with keys that are not strings, CBOR tags, NaN and infinities
//     cannot be written: the session ends with ErrMalformed.
//
// Received input is checked more strictly than JavaScript does: a line
// that is not valid JSON or UTF-8, a blank line, a line longer than
// Options.MaxFrameSize (ErrFrameTooLarge), a header without a clock object,
// an update whose timestamp is not a positive finite number or whose source
// is not a string, and a line that is none of a header, an update or
// "SYNC", each end the session with an error wrapping ErrMalformed, and
// nothing of that line is applied. A last line without "\n" that does not
// parse is ErrTruncated. "\r\n" line ends are accepted, and a UTF-8
// character split across reads is reassembled.
var JSONLines Codec = jsonCodec{}

// JSONTranscoder is implemented by documents whose update data, which is
// CBOR, takes another shape in JavaScript's JSON than the generic mapping
// gives. Both methods work on CBOR: the codec turns JSON text into a CBOR
// item (or back) with the generic mapping, and the transcoder reshapes the
// item. Package model's Model implements it to map its tombstone [key] to
// JavaScript's [key, null].
//
// The methods may be called concurrently, from any session's goroutines;
// they must not depend on the document's state.
type JSONTranscoder interface {
	// DataToJSON returns, as one CBOR item, the value whose JSON text is the
	// change JavaScript expects for the update data.
	DataToJSON(data []byte) (item []byte, err error)
	// DataFromJSON returns the update data for a change that arrived as
	// JSON, given as the CBOR item the generic mapping made of it. An error
	// ends the session: the change is malformed.
	DataFromJSON(item []byte) (data []byte, err error)
}

// jsonCodec wires the two directions to a document's transcoder:
// jsonlines_encode.go writes messages, and CBOR as JSON text
// (jsonEncoder); jsonlines_decode.go reads lines into messages, and JSON
// values into CBOR (jsonDecoder).
type jsonCodec struct{}

func (jsonCodec) String() string { return "jsonlines" }

func (jsonCodec) newEncoder(d scuttlebutt.Document, maxFrame int, _ *negotiation) encoder {
	t, _ := d.(JSONTranscoder)
	return &jsonEncoder{t: t, max: maxFrame}
}

func (jsonCodec) newDecoder(d scuttlebutt.Document, r io.Reader, maxFrame int, _ *negotiation) decoder {
	t, _ := d.(JSONTranscoder)
	return newJSONDecoder(t, r, maxFrame)
}

// syncLine is the JavaScript end-of-history marker.
const syncLine = `"SYNC"`

// maxJSONBatch bounds how many update lines that have already arrived are
// decoded into one message.
const maxJSONBatch = 512

// maxJSONDepth bounds the nesting of arrays and objects in a line: an
// update's data may nest scuttlebutt.MaxNesting deep, inside the update.
const maxJSONDepth = scuttlebutt.MaxNesting + 1

// CBOR major types besides those of codec.go.
const (
	majorUint   = cborx.MajorUint
	majorNegInt = cborx.MajorNeg
	majorMap    = cborx.MajorMap
	majorSimple = 7 << 5 // false, true, null, undefined, floats
)

// LoadJSONLines applies to d a replica saved in JavaScript scuttlebutt's
// persistence format, which is its wire format written to a file:
//
//	model.createReadStream().pipe(fs.createWriteStream(file))  // Node
//	stream.SaveJSONLines(ctx, m, f)                             // Go
//
// It reads r to its end: the header, the updates, "SYNC" and any updates a
// tailing save appended after it. Updates are applied in batches as they
// are read, with d's validation, as Scuttlebutt.Apply does; stale and
// duplicate ones are skipped. A header's id may be d's own: this is how a
// replica is restored. applied counts the updates that advanced the clock.
//
// A bad line (see JSONLines) stops the load with an error, after the
// updates before it were applied; a torn last line, the mark of a save that
// was cut short, is an error wrapping ErrTruncated. Lines are limited to
// DefaultMaxFrameSize bytes. ctx is checked between batches.
func LoadJSONLines(ctx context.Context, d scuttlebutt.Document, r io.Reader) (applied int, err error) {
	t, _ := d.(JSONTranscoder)
	dec := newJSONDecoder(t, r, DefaultMaxFrameSize)
	for {
		if err := ctx.Err(); err != nil {
			return applied, err
		}
		m, err := dec.readMessage()
		if err == io.EOF {
			return applied, nil
		}
		if err != nil {
			return applied, err
		}
		if m.Kind == scuttlebutt.MsgUpdates { // headers and "SYNC" carry nothing to keep
			n, err := d.Base().Apply(m.Updates...)
			applied += n
			if err != nil {
				return applied, fmt.Errorf("stream: line %d: %w", dec.lineNo, err)
			}
		}
	}
}

// SaveJSONLines writes d to w in JavaScript scuttlebutt's persistence
// format, what model.createReadStream({tail: false}) writes: the header
// with d's id and clock, every update of d's history in (timestamp, source)
// order, and "SYNC". A Node replica loads it with
//
//	fs.createReadStream(file).pipe(model.createWriteStream())
//
// and LoadJSONLines reads it back. It returns once everything is written,
// or with ctx's error. With storage attached, it waits until what it writes
// is durable. To keep appending live updates, as a tailing
// createReadStream does, serve d on the file with a Conn instead:
// Options{Codec: JSONLines, Mode: scuttlebutt.SendOnly, PeerClock:
// vclock.Clock{}}.
func SaveJSONLines(ctx context.Context, d scuttlebutt.Document, w io.Writer) error {
	l := d.Base().NewLink(&scuttlebutt.LinkOptions{
		Mode:      scuttlebutt.SendOnly,
		OneShot:   true,
		PeerClock: vclock.Clock{},
	})
	defer l.Close()
	enc := JSONLines.newEncoder(d, DefaultMaxFrameSize, nil)
	var buf []byte
	for {
		msgs := l.Ready()
		buf = buf[:0]
		for _, m := range msgs {
			var err error
			if buf, err = enc.appendMessage(buf, m); err != nil {
				return err
			}
		}
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("stream: write: %w", err)
			}
		}
		l.Recycle(msgs) // written: the next batches may reuse their arrays
		if l.Done() {
			return nil
		}
		if len(msgs) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-l.Wake():
			}
		}
	}
}

package filelog

import (
	"bytes"
	"context"
	"errors"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestPayloadIsStreamEncoding pins the record payload to the encoding of
// an update in a stream frame: the updates frame package stream writes for
// a history is the CBOR array of the payloads this package writes.
func TestPayloadIsStreamEncoding(t *testing.T) {
	m := newModel(t, "a")
	fill(t, m, 0, 3)
	signed := scuttlebutt.Update{Source: "b", Timestamp: m.Now(), Data: []byte{0x81, 0x61, 'k'}, Signature: []byte{1, 2, 3}}
	if _, err := m.Apply(signed); err != nil {
		t.Fatal(err)
	}
	h := m.History(nil)

	var out bytes.Buffer
	never, _ := io.Pipe()
	rw := struct {
		io.Reader
		io.Writer
	}{never, &out}
	c := stream.NewConn(m, rw, &stream.Options{PeerClock: vclock.Clock{}, OneShot: true, Mode: scuttlebutt.SendOnly})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	<-c.Synced()
	cancel()
	<-done // out is complete

	fr := stream.NewFrameReader(bytes.NewReader(out.Bytes()), stream.DefaultMaxFrameSize)
	var body []byte
	for {
		k, b, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if k == scuttlebutt.MsgUpdates {
			body = append(body, b...)
		}
	}
	want := cborx.AppendHead(nil, majorArray, uint64(len(h)))
	for _, u := range h {
		want = wire.AppendUpdate(want, u)
	}
	if !bytes.Equal(body, want) {
		t.Errorf("stream's updates frame:\n%x\nthe log's payloads:\n%x", body, want)
	}
	// And each payload decodes back to its update.
	for _, u := range h {
		var d decoder
		got, err := d.decode(wire.AppendUpdate(nil, u))
		if err != nil {
			t.Fatalf("decode(%v): %v", u, err)
		}
		if diff := cmp.Diff(u, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

// TestFormatConstants pins the numbers of the file format.
func TestFormatConstants(t *testing.T) {
	if magic != "\x89SCTLOG\n" || formatVersion != 2 || minVersion != 1 || sizeOfRecordHeader != 12 || sizeOfFixedHeader != 16 {
		t.Errorf("the file format changed: magic %q version %d record header %d file header %d+id",
			magic, formatVersion, sizeOfRecordHeader, sizeOfFixedHeader)
	}
	for p, name := range map[SyncPolicy]string{SyncAlways: "always", SyncInterval: "interval", SyncNever: "never"} {
		if p.String() != name {
			t.Errorf("SyncPolicy(%d) = %q, want %q", int(p), p, name)
		}
	}
	if SyncAlways != 0 || SyncInterval != 1 || SyncNever != 2 {
		t.Errorf("sync policy values changed")
	}
	h := appendFileHeader(nil, "a")
	want := []byte{0x89, 'S', 'C', 'T', 'L', 'O', 'G', '\n', 0, 2, 0, 1, 'a'}
	want = append(want, h[len(h)-4:]...)
	if !bytes.Equal(h, want) {
		t.Errorf("file header %x, want %x", h, want)
	}
	rec, err := appendRecord(nil, scuttlebutt.Update{Source: "a", Timestamp: 1, Data: []byte{0xf6}}, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantRec := []byte{0, 0, 0, 13}
	wantRec = append(wantRec, rec[4:12]...)
	wantRec = append(wantRec, 0x83, 0x61, 'a', 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xf6)
	if !bytes.Equal(rec, wantRec) || checksum(rec[12:]) != recordHeader(rec).DataCRC() || !recordHeader(rec).intact() {
		t.Errorf("record %x, want %x with its checksums", rec, wantRec)
	}
	rec, n, err := appendClockRecords(nil, vclock.Clock{"b": 2, "a": 1}, 100)
	if err != nil || n != 1 {
		t.Fatalf("appendClockRecords: %d records, %v", n, err)
	}
	wantRec = []byte{0, 0, 0, 23}
	wantRec = append(wantRec, rec[4:12]...)
	wantRec = append(wantRec, 0xa2, 0x61, 'a', 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x61, 'b', 0xfb, 0x40, 0, 0, 0, 0, 0, 0, 0)
	if !bytes.Equal(rec, wantRec) || checksum(rec[12:]) != recordHeader(rec).DataCRC() || !recordHeader(rec).intact() {
		t.Errorf("clock record %x, want %x with its checksums", rec, wantRec)
	}
}

// TestPayloadTimestamps: a record's timestamp is read by the one rule
// package stream reads it by (wire.ReadTimestamp): a float of any width or
// an integer, positive and finite; records and clock records alike.
func TestPayloadTimestamps(t *testing.T) {
	for _, tt := range []struct {
		name string
		enc  []byte
		want vclock.Timestamp // 0: refused
	}{
		{"float64", wire.AppendTimestamp(nil, 1_700_000_000_000.5), 1_700_000_000_000.5},
		{"float32", []byte{0xfa, 0x3f, 0xc0, 0, 0}, 1.5},
		{"float16", []byte{0xf9, 0x3e, 0x00}, 1.5},
		{"integer", []byte{0x1b, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}, 1_700_000_000_000},
		{"zero", []byte{0x00}, 0},
		{"negative", []byte{0x20}, 0},
		{"NaN", []byte{0xf9, 0x7e, 0x00}, 0},
		{"infinity", []byte{0xfa, 0x7f, 0x80, 0, 0}, 0},
		{"text", []byte{0x61, '1'}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := append([]byte{0x83, 0x61, 'a'}, tt.enc...)
			p = append(p, 0xf6)
			var d decoder
			u, err := d.decode(p)
			if tt.want == 0 && err == nil {
				t.Errorf("decode(%x) = %v, want an error", p, u)
			}
			if tt.want != 0 && (err != nil || u.Timestamp != tt.want) {
				t.Errorf("decode(%x) = %v, %v; want timestamp %v", p, u, err, tt.want)
			}
			p = append([]byte{0xa1, 0x61, 'a'}, tt.enc...)
			c, err := decodeClock(p)
			if tt.want == 0 && err == nil {
				t.Errorf("decodeClock(%x) = %v, want an error", p, c)
			}
			if tt.want != 0 && (err != nil || c["a"] != tt.want || len(c) != 1) {
				t.Errorf("decodeClock(%x) = %v, %v; want a at %v", p, c, err, tt.want)
			}
		})
	}
}

package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/nettest"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// recordingConn records each Write it is given, or only counts them and
// their bytes, and passes it on.
type recordingConn struct {
	net.Conn
	countOnly bool
	mu        sync.Mutex
	writes    [][]byte
	n, bytes  int64
	fail      error // returned by every Write once set
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.countOnly {
		c.writes = append(c.writes, bytes.Clone(p))
	}
	c.n++
	c.bytes += int64(len(p))
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	if c.Conn == nil {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// counts returns the number of writes and their bytes so far.
func (c *recordingConn) counts() (writes, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.bytes
}

func (c *recordingConn) recorded() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// yamuxHeader returns a frame header of type typ, stream 1, with length n.
func yamuxHeader(typ byte, n uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:], 1)
	binary.BigEndian.PutUint32(h[8:], n)
	return h
}

func TestJoinedWriter(t *testing.T) {
	body := []byte("0123456789")
	big := bytes.Repeat([]byte{7}, maxJoinedBody+1)
	tests := []struct {
		name   string
		writes [][]byte
		want   [][]byte // what the connection gets
	}{
		{"data frame joined", [][]byte{yamuxHeader(yamuxTypeData, 10), body},
			[][]byte{append(yamuxHeader(yamuxTypeData, 10), body...)}},
		{"window update passes", [][]byte{yamuxHeader(1, 65536)}, [][]byte{yamuxHeader(1, 65536)}},
		{"ping passes", [][]byte{yamuxHeader(2, 9)}, [][]byte{yamuxHeader(2, 9)}},
		{"data frame without body passes", [][]byte{yamuxHeader(yamuxTypeData, 0)}, [][]byte{yamuxHeader(yamuxTypeData, 0)}},
		{"two frames", [][]byte{yamuxHeader(yamuxTypeData, 10), body, yamuxHeader(1, 5), yamuxHeader(yamuxTypeData, 3), body[:3]},
			[][]byte{append(yamuxHeader(yamuxTypeData, 10), body...), yamuxHeader(1, 5), append(yamuxHeader(yamuxTypeData, 3), body[:3]...)}},
		{"large body apart", [][]byte{yamuxHeader(yamuxTypeData, uint32(len(big))), big},
			[][]byte{yamuxHeader(yamuxTypeData, uint32(len(big))), big}},
		{"not a header", [][]byte{body, yamuxHeader(yamuxTypeData, 10)[:11]}, [][]byte{body, yamuxHeader(yamuxTypeData, 10)[:11]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recordingConn{}
			w := &joinedWriter{ReadWriteCloser: rc}
			for _, p := range tt.writes {
				if n, err := w.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write of %d bytes = %d, %v", len(p), n, err)
				}
			}
			got := rc.recorded()
			if len(got) != len(tt.want) {
				t.Fatalf("the connection got %d writes, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("write %d: % x, want % x", i, got[i][:min(len(got[i]), 32)], tt.want[i][:min(len(tt.want[i]), 32)])
				}
			}
		})
	}
}

// TestJoinedWriterError: a failed Write of a joined frame reports none of
// the body written, and the error.
func TestJoinedWriterError(t *testing.T) {
	boom := errors.New("boom")
	w := &joinedWriter{ReadWriteCloser: &recordingConn{fail: boom}}
	if n, err := w.Write(yamuxHeader(yamuxTypeData, 4)); n != yamuxHeaderSize || err != nil {
		t.Fatalf("header: %d, %v", n, err)
	}
	if n, err := w.Write([]byte("body")); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("body: %d, %v; want 0 and the connection's error", n, err)
	}
}

// TestMuxOneWritePerFrame replicates documents over a Mux on net.Pipe and
// checks the bytes each side wrote: every yamux data frame, header and
// body, went out in one Write of the connection (bodies up to
// maxJoinedBody), and the two sides converged.
func TestMuxOneWritePerFrame(t *testing.T) {
	x, y := net.Pipe()
	rx, ry := &recordingConn{Conn: x}, &recordingConn{Conn: y}
	a, b := newMuxPair(t, rx, ry)
	da, db := newCountingDoc(t, "a"), newCountingDoc(t, "b")
	for i := range 20 {
		da.write(t, fmt.Sprintf("small %d", i))
	}
	if err := a.Add("d", da); err != nil {
		t.Fatal(err)
	}
	if err := b.Add("d", db); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		da.write(t, fmt.Sprintf("live %d", i))
		db.write(t, strings.Repeat("x", 100*i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for da.Clock().Compare(db.Clock()) != vclock.Equal {
		if time.Now().After(deadline) {
			t.Fatalf("not synced: a %v, b %v", da.Clock(), db.Clock())
		}
		time.Sleep(2 * time.Millisecond)
	}
	for side, rc := range map[string]*recordingConn{"a": rx, "b": ry} {
		frames := 0
		for i, p := range rc.recorded() {
			if isDataHeader(p) {
				n := binary.BigEndian.Uint32(p[8:12])
				if n <= maxJoinedBody {
					t.Errorf("%s: write %d is a data frame's header alone, its %d bytes of body apart", side, i, n)
				}
				continue
			}
			frames += countJoined(t, p)
		}
		if frames == 0 {
			t.Errorf("%s: no data frame with its body in one write", side)
		}
	}
}

// newMuxPair runs a client Mux on x and a server Mux on y until the test
// ends.
func newMuxPair(tb testing.TB, x, y io.ReadWriteCloser) (a, b *Mux) {
	tb.Helper()
	a, err := NewMux(x, true, nil)
	if err != nil {
		tb.Fatal(err)
	}
	b, err = NewMux(y, false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { b.Run(ctx) })
	tb.Cleanup(func() { cancel(); wg.Wait() })
	return a, b
}

// countJoined counts the data frames that begin, with their body, at the
// start of p; 0 if p is not one.
func countJoined(t *testing.T, p []byte) int {
	t.Helper()
	if len(p) < yamuxHeaderSize || p[0] != yamuxVersion || p[1] != yamuxTypeData {
		return 0
	}
	n := binary.BigEndian.Uint32(p[8:12])
	if n == 0 || int(n) != len(p)-yamuxHeaderSize {
		return 0
	}
	return 1
}

// countingDoc is a document that keeps every update, for a test of what
// crosses the wire rather than of a type's rule.
type countingDoc struct {
	*scuttlebutt.Scuttlebutt
	mu sync.Mutex
	us []scuttlebutt.Update
}

func newCountingDoc(t testing.TB, id string) *countingDoc {
	t.Helper()
	d := &countingDoc{}
	sb, err := scuttlebutt.New(id, countingReplica{d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Scuttlebutt = sb
	return d
}

func (d *countingDoc) write(t testing.TB, s string) {
	t.Helper()
	if _, _, err := d.LocalUpdate(append([]byte{0x7a, 0, 0, byte(len(s) >> 8), byte(len(s))}, s...)); err != nil {
		t.Fatal(err)
	}
}

// count returns the number of updates applied.
func (d *countingDoc) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.us)
}

type countingReplica struct{ d *countingDoc }

func (r countingReplica) History(c vclock.Clock) []scuttlebutt.Update {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	var out []scuttlebutt.Update
	for _, u := range r.d.us {
		if u.Timestamp > c.Get(u.Source) {
			out = append(out, u)
		}
	}
	return out
}

func (r countingReplica) ApplyUpdate(u scuttlebutt.Update) bool {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	r.d.us = append(r.d.us, u)
	return true
}

// BenchmarkMuxPaced sets one small key at a time on a Mux over TCP
// loopback and waits until the peer holds it, so that every update is a
// frame of its own: the connection's writes and bytes per update (before
// joinedWriter, 2 writes an update).
func BenchmarkMuxPaced(b *testing.B) {
	x, y := nettest.TCPPair(b)
	rx := &recordingConn{Conn: x, countOnly: true}
	ma, mb := newMuxPair(b, rx, y)
	da, db := newCountingDoc(b, "a"), newCountingDoc(b, "b")
	if err := ma.Add("d", da); err != nil {
		b.Fatal(err)
	}
	if err := mb.Add("d", db); err != nil {
		b.Fatal(err)
	}
	w0, n0 := rx.counts()
	i := 0
	for b.Loop() {
		da.write(b, "abcdefghijklmnopqrstuvwxyz012345")
		i++
		for db.count() < i {
			time.Sleep(10 * time.Microsecond)
		}
	}
	w, n := rx.counts()
	b.ReportMetric(float64(w-w0)/float64(i), "writes/update")
	b.ReportMetric(float64(n-n0)/float64(i), "wire-B/update")
}

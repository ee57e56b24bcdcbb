package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// tapConn records what is written to a net.Conn.
type tapConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// kinds returns how many frames of each kind were written; a compressed
// frame counts as kindCompressed and as the kind it holds.
func (c *tapConn) kinds(t *testing.T) map[scuttlebutt.MessageKind]int {
	t.Helper()
	c.mu.Lock()
	b := bytes.Clone(c.out.Bytes())
	c.mu.Unlock()
	fr := stream.NewFrameReader(bytes.NewReader(b), 1<<30)
	n := map[scuttlebutt.MessageKind]int{}
	for {
		k, body, err := fr.ReadFrame()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("frames written: %v", err)
		}
		n[k]++
		if k == kindCompressed {
			n[scuttlebutt.MessageKind(body[0])]++
		}
	}
}

// Frame kinds by their wire numbers (SPEC.md): those of version 1's
// updates, version 2's and compressed frames.
const (
	kindUpdatesMore = 6
	kindCompact     = 7
	kindCompactMore = 8
	kindCompressed  = 9
)

// withJSPeer gives m updates of a source "js" whose timestamps are a
// JavaScript peer's, whole milliseconds and thousandths (.001 to .009),
// which version 2 says by a step when it can and in full when not, as if
// a JavaScript replica had synced with m.
func withJSPeer(t *testing.T, m *model.Model) {
	t.Helper()
	l := m.NewLink(nil)
	defer l.Close()
	base := vclock.Timestamp(float64(time.Now().UnixMilli() - 5_000))
	var us []scuttlebutt.Update
	for i := range 30 {
		ts := base + vclock.Timestamp(i/10) + vclock.Timestamp(i%10)/1000
		us = append(us, scuttlebutt.Update{Source: "js", Timestamp: ts, Data: mustPayload(t, fmt.Sprintf("js/%d", i), i)})
	}
	for _, msg := range []scuttlebutt.Message{
		{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "js", Clock: vclock.Clock{}}},
		{Kind: scuttlebutt.MsgUpdates, Updates: us},
		{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}},
	} {
		if err := l.Step(msg); err != nil {
			t.Fatalf("js peer: %v: %v", msg, err)
		}
	}
}

func mustPayload(t *testing.T, key string, value any) []byte {
	t.Helper()
	m, err := model.New("scratch", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(key, value); err != nil {
		t.Fatal(err)
	}
	return m.History(vclock.Clock{})[0].Data
}

// sides are the ways a Conn can speak: as a version-1 peer, version 2
// (the default), and version 2 with compression offered.
var sides = []struct {
	name string
	opts stream.Options
}{
	{"v1", stream.Options{Version: stream.Version1}},
	{"v2", stream.Options{}},
	{"v2+zstd", stream.Options{Compress: true}},
}

// TestConnVersions: replicas that speak version 1, version 2, and version
// 2 with compression converge with each other, both ways, over every
// transport: histories of several sources (JavaScript timestamps among
// them), live writes, large batches. Each direction uses version 2 only
// when both hellos offer it, and compresses only when both offer that.
func TestConnVersions(t *testing.T) {
	for _, x := range sides {
		for _, y := range sides {
			t.Run(x.name+"-"+y.name, func(t *testing.T) {
				testConnTypes(t, func(t *testing.T, ct connType) {
					leak.Check(t)
					a, b := newTestModel(t, "a"), newTestModel(t, "b")
					withJSPeer(t, a)
					for i := range 300 {
						set(t, a, fmt.Sprintf("a/%d", i), strings.Repeat("x", i%50))
						set(t, b, fmt.Sprintf("b/%d", i), i)
					}
					pa, pb := ct.pair(t)
					ta, tb := &tapConn{Conn: pa}, &tapConn{Conn: pb}
					xo, yo := x.opts, y.opts
					sa := start(t, "a", a, ta, &xo)
					sb := start(t, "b", b, tb, &yo)
					waitSynced(t, sa, sb)
					waitConverged(t, a, b)
					// Live: single writes, and a batch past the compression
					// threshold relayed at once.
					for i := range 50 {
						set(t, a, fmt.Sprintf("live/a/%d", i), i)
						set(t, b, fmt.Sprintf("live/b/%d", i), strings.Repeat("y", i))
					}
					waitConverged(t, a, b)
					for _, s := range []*session{sa, sb} {
						if err := s.stop(t); err != nil {
							t.Errorf("%s: Run = %v", s.name, err)
						}
					}
					compact := x.opts.Version != stream.Version1 && y.opts.Version != stream.Version1
					zstd := x.opts.Compress && y.opts.Compress
					for _, dir := range []struct {
						name string
						tap  *tapConn
					}{{"a to b", ta}, {"b to a", tb}} {
						k := dir.tap.kinds(t)
						v1 := k[scuttlebutt.MessageKind(kindUpdates)] + k[kindUpdatesMore]
						v2 := k[kindCompact] + k[kindCompactMore]
						if compact && (v1 > 0 || v2 == 0) || !compact && (v2 > 0 || v1 == 0) {
							t.Errorf("%s: %d version-1 and %d version-2 updates frames; version 2 agreed: %v", dir.name, v1, v2, compact)
						}
						if zstd != (k[kindCompressed] > 0) {
							t.Errorf("%s: %d compressed frames; compression agreed: %v", dir.name, k[kindCompressed], zstd)
						}
					}
				})
			})
		}
	}
}

// TestConnVersionBytes: version 2 takes fewer bytes for the same history,
// and compression fewer still.
func TestConnVersionBytes(t *testing.T) {
	var got []int64
	for _, s := range sides {
		a, b := newTestModel(t, "a"), newTestModel(t, "b")
		for i := range 2000 {
			set(t, a, fmt.Sprintf("k%d", i), fmt.Sprintf("a.%d.abcdefghijklmnopqrstuvwxyz0123456789", i)[:32])
		}
		pa, pb := pipePair(t)
		sa := start(t, "a", a, pa, &s.opts)
		sb := start(t, "b", b, pb, &s.opts)
		waitSynced(t, sa, sb)
		waitConverged(t, a, b)
		got = append(got, sa.Stats().BytesOut)
		sa.stop(t)
		sb.stop(t)
	}
	if !(got[1] < got[0] && got[2] < got[1]) {
		t.Errorf("bytes of a 2,000-key history: v1 %d, v2 %d, v2+zstd %d; want each fewer than the one before", got[0], got[1], got[2])
	}
	t.Logf("2,000 keys: v1 %d B, v2 %d B, v2+zstd %d B", got[0], got[1], got[2])
}

// TestConnBadVersion: a Version out of range is refused by Run.
func TestConnBadVersion(t *testing.T) {
	a := newTestModel(t, "a")
	pa, _ := pipePair(t)
	for _, v := range []int{-1, 3} {
		err := stream.NewConn(a, pa, &stream.Options{Version: v}).Run(t.Context())
		if !errors.Is(err, stream.ErrInvalidOptions) {
			t.Errorf("Version %d: Run = %v, want ErrInvalidOptions", v, err)
		}
	}
}

package stream_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestConnLargeClock: a replica whose clock is larger than one frame
// still opens a session and syncs. Its hello and its sync carry the clock
// in clock parts, and the receiver's clock ends up covering every entry.
//
// The sender's clock is built through Apply: one update per source, all
// of one key, so that the model keeps only the last and its history is one
// update; the receiver can learn the other sources only from the sync's
// clock.
func TestConnLargeClock(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sources  int
		idLen    int
		maxFrame int // 0: the default, 4 MiB
	}{
		{name: "3000 sources, 64 KiB frames", sources: 3000, idLen: 100, maxFrame: 64 << 10},
		{name: "35000 sources of 128 bytes, 4 MiB frames", sources: 35000, idLen: 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			if testing.Short() && tc.sources > 10000 {
				t.Skip("a 6 MB clock in -short mode")
			}
			wall := time.UnixMilli(1_700_000_000_000)
			cfg := &scuttlebutt.Config{Now: func() time.Time { return wall }, MaxSources: tc.sources + 10}
			newModel := func(id string) *model.Model {
				m, err := model.New(id, cfg)
				if err != nil {
					t.Fatalf("model.New(%q): %v", id, err)
				}
				return m
			}
			big, small := newModel("big"), newModel("small")
			us := make([]scuttlebutt.Update, tc.sources)
			for i := range us {
				src := fmt.Sprintf("writer-%06d-", i)
				us[i] = scuttlebutt.Update{
					Source:    src + strings.Repeat("x", tc.idLen-len(src)),
					Timestamp: vclock.Timestamp(wall.UnixMilli() - int64(tc.sources) + int64(i)),
					Data:      cborx.AppendHead([]byte{0x82, 0x61, 'k'}, cborx.MajorUint, uint64(i)), // [k, i]
				}
			}
			if _, err := big.Apply(us...); err != nil {
				t.Fatalf("Apply of %d updates: %v", len(us), err)
			}
			set(t, small, "s", "small's own")
			bigClock := big.Clock()
			if len(bigClock) < tc.sources {
				t.Fatalf("the sender's clock has %d sources, want %d", len(bigClock), tc.sources)
			}
			if got := len(big.History(vclock.Clock{})); got != 1 {
				t.Fatalf("the sender's history has %d updates, want 1 (the last of key k)", got)
			}

			frame := tc.maxFrame
			if frame == 0 {
				frame = stream.DefaultMaxFrameSize
			}
			size := 0 // of the clock in CBOR: text head, id, float64
			for src := range bigClock {
				size += 2 + len(src) + 9
			}
			if size <= frame {
				t.Fatalf("the clock takes %d bytes, within one %d-byte frame: the test tests nothing", size, frame)
			}

			ca, cb := pipePair(t)
			opts := &stream.Options{MaxFrameSize: tc.maxFrame}
			sb := start(t, "big", big, ca, opts)
			ss := start(t, "small", small, cb, opts)
			waitSynced(t, sb, ss)

			got := small.Clock()
			var missing []string
			for src, ts := range bigClock {
				if got[src] < ts {
					missing = append(missing, fmt.Sprintf("%.20s…: %v < %v", src, got[src], ts))
				}
			}
			if len(missing) > 0 {
				t.Errorf("the receiver's clock misses %d of the sender's %d entries, e.g. %v", len(missing), len(bigClock), missing[:min(3, len(missing))])
			}
			if peer := ss.Peer(); peer == nil || len(peer.Clock) != len(bigClock) {
				t.Errorf("the receiver got a hello of %d sources, want %d", len(ss.Peer().Clock), len(bigClock))
			}
			if v, ok := small.Get("k"); !ok || v != int64(tc.sources-1) {
				t.Errorf("small.Get(k) = %v, %v; want %d, the last write", v, ok, tc.sources-1)
			}
			waitConverged(t, big, small)
			if in := ss.Stats().BytesIn; in < 2*int64(frame) {
				t.Errorf("the receiver read %d bytes, less than two frames of %d: was the clock split at all?", in, frame)
			}
			for _, s := range []*session{sb, ss} {
				if err := s.stop(t); err != nil {
					t.Errorf("%s: Run = %v", s.name, err)
				}
			}
		})
	}
}

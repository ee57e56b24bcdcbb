package emitter_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestCompactedRestartDeliversOnce restarts a replica with a small
// retention from a compacted log, and connects it to a peer that retains
// everything, including events the replica had delivered and then dropped
// (none of the peer's events is retained any more, so the compacted
// history shows nothing of that source). The log records the clock with
// the history, so the peer sends none of them again: every event is
// delivered once across the restart.
func TestCompactedRestartDeliversOnce(t *testing.T) {
	const (
		peerEvents  = 5
		localEvents = 3 // push every peer event out of retention
	)
	path := filepath.Join(t.TempDir(), "a.log")
	cfg := &emitter.Config{MaxEvents: localEvents}
	logCfg := &filelog.Config{Sync: filelog.SyncNever, CompactRatio: -1}
	p := newEmitter(t, "p", nil) // retains everything
	rec := &recorder{}           // the application's view, across the restart

	// First run: receive the peer's events, emit our own, compact, stop.
	a := newEmitter(t, "a", cfg)
	log, err := filelog.Open(path, a, logCfg)
	if err != nil {
		t.Fatal(err)
	}
	a.OnAny(rec.add)
	for i := range peerEvents {
		if err := p.Emit("p", i); err != nil {
			t.Fatal(err)
		}
	}
	n := newNet(t, 1, false, a, p)
	if err := n.Connect(0, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Quiesce(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkCovers(t, a, p.Clock())
	if err := n.Disconnect(0, 1); err != nil {
		t.Fatal(err)
	}
	for i := range localEvents {
		if err := a.Emit("a", i); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Events(nil); len(got) != localEvents || got[0].Source != a.Source() {
		t.Fatalf("retained %d events, first from %q; the test needs only a's %d", len(got), got[0].Source, localEvents)
	}
	before := a.Clock()
	if err := log.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	// Second run: replay, listen, reconnect to the peer, hear one more.
	a2 := newEmitter(t, "a", cfg)
	log2, err := filelog.Open(path, a2, logCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer log2.Close()
	if got := a2.Clock(); got.Compare(before) != vclock.Equal {
		t.Errorf("clock after the restart %v, want %v as before it", got, before)
	}
	a2.OnAny(rec.add)
	if err := n.Replace(0, a2); err != nil {
		t.Fatal(err)
	}
	if err := n.Connect(0, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Quiesce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Emit("p", "after"); err != nil {
		t.Fatal(err)
	}
	if err := n.Quiesce(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkCovers(t, a2, p.Clock())
	// Per source, events are delivered in order: once the last one is in,
	// any repeat of an earlier one would be too.
	if rec.len() < peerEvents+localEvents+1 {
		t.Fatalf("%d events delivered, want %d", rec.len(), peerEvents+localEvents+1)
	}

	seen := make(map[string]int)
	rec.mu.Lock()
	for _, ev := range rec.events {
		seen[fmt.Sprintf("%s@%v %v", ev.Source, ev.Timestamp, ev.Args)]++
	}
	delivered := len(rec.events)
	rec.mu.Unlock()
	for ev, times := range seen {
		if times != 1 {
			t.Errorf("event %s delivered %d times", ev, times)
		}
	}
	if delivered != peerEvents+localEvents+1 {
		t.Errorf("%d deliveries, want %d (each event once)", delivered, peerEvents+localEvents+1)
	}
}

// checkCovers checks that e's clock covers c.
func checkCovers(t *testing.T, e *emitter.Emitter, c vclock.Clock) {
	t.Helper()
	if o := e.Clock().Compare(c); o != vclock.Equal && o != vclock.After {
		t.Fatalf("%s's clock %v does not cover %v", e.ID(), e.Clock(), c)
	}
}

package filelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

func TestReopen(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.log")
			cfg := &Config{Sync: p, Interval: time.Millisecond}
			m := newModel(t, "a")
			l := mustOpen(t, path, m, cfg)
			fill(t, m, 0, 100)
			if err := m.Delete(key(7)); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(key(8), map[string]any{"x": []any{int64(1), "y"}}); err != nil {
				t.Fatal(err)
			}
			mustClose(t, l)

			m2, l2 := reopen(t, path, "a", cfg)
			sameState(t, m2, m)
			if got := l2.Stats(); got.Records != 102 || got.Truncated != 0 {
				t.Errorf("Stats() = %+v, want 102 records, nothing truncated", got)
			}
			// The reopened replica goes on writing after what it logged.
			fill(t, m2, 100, 110)
			mustClose(t, l2)
			m3, _ := reopen(t, path, "a", cfg)
			sameState(t, m3, m2)
		})
	}
}

// TestRemoteUpdatesLogged checks that updates from a peer are logged too,
// and that the restarted replica catches up with what it missed.
func TestRemoteUpdatesLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	a, b := newModel(t, "a"), newModel(t, "b")
	l := mustOpen(t, path, a, nil)
	fill(t, b, 0, 50)
	ctx, cancel := context.WithCancel(t.Context())
	if err := stream.Pipe(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	fill(t, a, 50, 60)
	waitFor(t, "b to get a's keys", func() bool { return b.Len() == 60 })
	cancel()
	mustClose(t, l)

	fill(t, b, 60, 70) // while a is down
	a2, _ := reopen(t, path, "a", nil)
	if d := cmp.Diff(want(60), a2.Snapshot()); d != "" {
		t.Fatalf("after reopen (-want +got):\n%s", d)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	if err := stream.Pipe(ctx2, a2, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "convergence", func() bool { return cmp.Equal(a2.Snapshot(), b.Snapshot()) })
	if d := cmp.Diff(want(70), a2.Snapshot()); d != "" {
		t.Errorf("after catching up (-want +got):\n%s", d)
	}
}

func TestHLCRestartsAfterLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	wall := time.UnixMilli(1_800_000_000_000)
	cfg := &scuttlebutt.Config{Now: func() time.Time { return wall }}
	m, err := model.New("a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, path, m, nil)
	fill(t, m, 0, 10) // all in the same millisecond: logical steps
	last := m.Clock().Get(m.Source())
	mustClose(t, l)

	// The wall clock is now behind, by almost the bound on clock offsets,
	// past which the replica refuses its own log (TestClockBehindLog).
	behind := wall.Add(-scuttlebutt.DefaultMaxClockOffset + time.Second)
	m2, err := model.New("a", &scuttlebutt.Config{Now: func() time.Time { return behind }})
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, m2, nil)
	if got := m2.Clock().Get(m.Source()); got != last {
		t.Fatalf("replayed clock[%s] = %v, want %v", m.Source(), got, last)
	}
	u, _, err := m2.LocalUpdate([]byte{0x81, 0x61, 'z'}) // ["z"]: a delete
	if err != nil {
		t.Fatal(err)
	}
	if u.Timestamp <= last {
		t.Errorf("first timestamp after restart %v is not after the last logged %v", u.Timestamp, last)
	}
}

// TestClockBehindLog opens a log with the wall clock further behind its
// timestamps than the bound on clock offsets: the document refuses them,
// so Open fails with ErrClockOffset, not ErrCorrupt, and changes neither
// the file nor the document; with the clock right again, it opens.
func TestClockBehindLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	wall := time.UnixMilli(1_800_000_000_000)
	m, err := model.New("a", &scuttlebutt.Config{Now: func() time.Time { return wall }})
	if err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, path, m, nil)
	fill(t, m, 0, 10)
	mustClose(t, l)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	behind := wall.Add(-time.Hour)
	m2, err := model.New("a", &scuttlebutt.Config{Now: func() time.Time { return behind }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, m2, nil)
	if !errors.Is(err, scuttlebutt.ErrClockOffset) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Open with the clock an hour behind = %v, want ErrClockOffset and not ErrCorrupt", err)
	}
	if n := m2.Len(); n != 0 || len(m2.Clock()) != 0 {
		t.Errorf("the refused replay left %d keys and clock %v", n, m2.Clock())
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the refused replay changed the file (%v)", err)
	}

	m3, err := model.New("a", &scuttlebutt.Config{Now: func() time.Time { return wall }})
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, m3, nil)
	sameState(t, m3, m)
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	good := writeLog(t, path, "a", 3)
	_, _, hlen, err := parseFileHeader(good)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		data []byte
		id   string
		want error
	}{
		{"another replica", good, "b", ErrWrongReplica},
		{"bad magic", edit(func(b []byte) []byte { b[1] = 'X'; return b }), "a", ErrCorrupt},
		{"version 3", edit(func(b []byte) []byte { b[9] = 3; return b }), "a", ErrVersion},
		{"version 0", edit(func(b []byte) []byte { b[9] = 0; return b }), "a", ErrVersion},
		{"header checksum", edit(func(b []byte) []byte { b[hlen-1] ^= 1; return b }), "a", ErrCorrupt},
		{"id length", edit(func(b []byte) []byte { b[11] = 200; return b }), "a", ErrCorrupt},
		{"not a log", []byte("hello, world: this is a text file and not a log"), "a", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(p, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			m := newModel(t, tt.id)
			l, err := Open(p, m, nil)
			if !errors.Is(err, tt.want) {
				if l != nil {
					l.Close()
				}
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
			after, _ := os.ReadFile(p)
			if string(after) != string(tt.data) {
				t.Errorf("Open changed the file")
			}
			if len(m.Clock()) != 0 {
				t.Errorf("Open changed the document: clock %v", m.Clock())
			}
		})
	}
}

// TestNewLog covers files Open treats as a new log: what creating one can
// leave after a crash.
func TestNewLog(t *testing.T) {
	header := appendFileHeader(nil, "a")
	tests := []struct {
		name string
		data []byte
	}{
		{"missing", nil},
		{"empty", []byte{}},
		{"header cut short", header[:len(header)-3]},
		{"zero-filled", make([]byte, 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.log")
			if tt.data != nil {
				if err := os.WriteFile(path, tt.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := newModel(t, "a")
			l := mustOpen(t, path, m, nil)
			fill(t, m, 0, 3)
			mustClose(t, l)
			m2, _ := reopen(t, path, "a", nil)
			sameState(t, m2, m)
		})
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	mustOpen(t, path, newModel(t, "a"), nil)
	l, err := Open(path, newModel(t, "a"), nil)
	if !errors.Is(err, ErrLocked) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := newModel(t, "a")
	l := mustOpen(t, path, m, nil)
	fill(t, m, 0, 3)
	mustClose(t, l)
	if err := m.Set("x", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if _, ok := m.Get("x"); ok {
		t.Errorf("Set after Close changed the document")
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if err := l.Compact(); !errors.Is(err, ErrClosed) {
		t.Errorf("Compact after Close = %v, want ErrClosed", err)
	}
	m.Attach(nil) // go on in memory
	if err := m.Set("x", 1); err != nil {
		t.Errorf("Set after Attach(nil) = %v", err)
	}
	// The log can be opened again on the same document: it then holds "x".
	l2 := mustOpen(t, path, m, nil)
	fill(t, m, 3, 5)
	mustClose(t, l2)
	m2, _ := reopen(t, path, "a", nil)
	sameState(t, m2, m)
}

// TestWriteError checks that a failed write reaches the writer, fails the
// log for good, and is not advertised to peers.
func TestWriteError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := newModel(t, "a")
	l := mustOpen(t, path, m, nil)
	fill(t, m, 0, 3)

	// Swap the file for a read-only descriptor of it, as a filesystem
	// remounted read-only would behave.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	rw := l.f
	l.f = ro
	l.mu.Unlock()

	peer := newModel(t, "peer")
	ca, cb := net.Pipe()
	x, y := stream.NewConn(m, ca, nil), stream.NewConn(peer, cb, nil)
	errs := make(chan error, 2)
	go func() { errs <- x.Run(t.Context()); ca.Close() }()
	go func() { errs <- y.Run(t.Context()); cb.Close() }()
	<-x.Synced()
	<-y.Synced()

	durable := m.Clock().Get(m.Source()) // the last durable write
	err = m.Set("x", 1)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("Set on a read-only file = %v, want ErrFailed", err)
	}
	// x is not durable, so it is not applied either.
	if _, ok := m.Get("x"); ok {
		t.Errorf("x, which is not durable, is applied")
	}
	if got := m.Clock().Get(m.Source()); got != durable {
		t.Errorf("clock[%s] = %v after the failed Set, want %v, as before it", m.Source(), got, durable)
	}
	if err2 := m.Set("y", 2); !errors.Is(err2, ErrFailed) {
		t.Errorf("next Set = %v, want ErrFailed", err2)
	}
	if err := l.Compact(); !errors.Is(err, ErrFailed) {
		t.Errorf("Compact = %v, want ErrFailed", err)
	}
	// An update from the peer cannot be logged either: the session ends,
	// and the peer has never heard of x.
	if err := peer.Set("p", 1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-errs
	}
	if d := cmp.Diff(want(3), peer.Snapshot(), cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return k == "p" })); d != "" {
		t.Errorf("the peer's keys (-want +got):\n%s", d)
	}
	if c := peer.Clock().Get(m.Source()); c > durable {
		t.Errorf("the peer's clock[%s] = %v covers x (after %v), which is not durable", m.Source(), c, durable)
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Errorf("Close = %v, want ErrFailed", err)
	}
	rw.Close() // holds the lock
	m2, _ := reopen(t, path, "a", nil)
	if d := cmp.Diff(want(3), m2.Snapshot()); d != "" {
		t.Errorf("after reopen (-want +got):\n%s", d)
	}
}

func TestTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := newModel(t, "a")
	mustOpen(t, path, m, &Config{MaxRecordSize: 100})
	if err := m.Set("big", strings.Repeat("x", 200)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set of a 200-byte value = %v, want ErrTooLarge", err)
	}
	if _, ok := m.Get("big"); ok {
		t.Errorf("the refused update was applied")
	}
	fill(t, m, 0, 3) // the log still works
}

// TestGroupCommit checks that concurrent writers share fsyncs.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := newModel(t, "a")
	l := mustOpen(t, path, m, nil)
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := m.Set(fmt.Sprintf("w%d-%d", w, i), i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := l.Stats()
	if s.Appended != writers*each {
		t.Errorf("Appended = %d, want %d", s.Appended, writers*each)
	}
	if s.Syncs >= int64(s.Appended) {
		t.Errorf("%d fsyncs for %d appends: no group commit", s.Syncs, s.Appended)
	}
	t.Logf("%d appends, %d fsyncs", s.Appended, s.Syncs)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"sync policy", Config{Sync: 7}},
		{"negative interval", Config{Interval: -1}},
		{"ratio 1", Config{CompactRatio: 1}},
		{"negative min", Config{CompactMin: -1}},
		{"tiny records", Config{MaxRecordSize: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(filepath.Join(t.TempDir(), "a.log"), newModel(t, "a"), &tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Open = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestSyncPolicies checks when each policy fsyncs.
func TestSyncPolicies(t *testing.T) {
	tests := []struct {
		policy SyncPolicy
		want   func(s Stats) bool // once the writes have returned
		what   string
	}{
		{SyncAlways, func(s Stats) bool { return s.Syncs >= 1 }, "an fsync before Set returns"},
		{SyncInterval, func(s Stats) bool { return s.Syncs >= 1 }, "an fsync within the interval"},
		{SyncNever, func(s Stats) bool { return s.Syncs == 0 }, "no fsync"},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			m := newModel(t, "a")
			l := mustOpen(t, filepath.Join(t.TempDir(), "a.log"), m, &Config{Sync: tt.policy, Interval: 5 * time.Millisecond})
			fill(t, m, 0, 3)
			if tt.policy == SyncAlways && !tt.want(l.Stats()) {
				t.Fatalf("Stats() = %+v, want %s", l.Stats(), tt.what)
			}
			waitFor(t, tt.what, func() bool { return tt.want(l.Stats()) })
		})
	}
}

// growRecorder is a Model that records what Open asks it to make room for.
type growRecorder struct {
	*model.Model
	asked []int
}

func (g *growRecorder) Grow(n int) { g.asked = append(g.asked, n); g.Model.Grow(n) }

func TestOpenGrowsTheDocument(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m, err := model.New("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := m.Set(fmt.Sprint("k", i), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := model.New("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &growRecorder{Model: m2}
	l2, err := Open(path, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if len(g.asked) != 1 || g.asked[0] < 5 {
		t.Errorf("Open asked to grow by %v, want one call for at least the 5 records", g.asked)
	}
	if m2.Len() != 5 {
		t.Errorf("reopened model holds %d keys, want 5", m2.Len())
	}
}

package filelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// wallClock is a wall clock the test sets by hand.
type wallClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *wallClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *wallClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestCompactKeepsClock compacts the log of a Model whose own newest
// update another source has superseded, so that the history holds nothing
// of its own source, and restarts it with the wall clock far behind: the
// clock comes back whole, and the next local timestamp is after every one
// it used before.
func TestCompactKeepsClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	wall := &wallClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := &Config{Sync: SyncNever, CompactRatio: -1}
	a, err := model.New("a", &scuttlebutt.Config{Now: wall.Now})
	if err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, path, a, cfg)
	if err := a.Set("k", 1); err != nil {
		t.Fatal(err)
	}
	own := a.Clock()[a.Source()]
	// b overwrites k later: a's write is superseded, and its history holds
	// b's write only. b shares a's wall clock, which bounds the timestamps
	// it accepts.
	b, err := model.New("b", &scuttlebutt.Config{Now: wall.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RestoreClock(vclock.Clock{a.Source(): own}); err != nil { // b stamps after a
		t.Fatal(err)
	}
	if err := b.Set("k", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(b.History(nil)...); err != nil {
		t.Fatal(err)
	}
	if h := a.History(nil); len(h) != 1 || h[0].Source != b.Source() {
		t.Fatalf("history %v, want b's write only", h)
	}
	before := a.Clock()
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)

	// The wall clock goes back, as far as the bound on clock offsets lets
	// the replica still accept its own log (see TestClockBehindLog).
	wall.Set(wall.Now().Add(-scuttlebutt.DefaultMaxClockOffset + time.Second))
	a2, err := model.New("a", &scuttlebutt.Config{Now: wall.Now})
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, a2, cfg)
	sameState(t, a2, a)
	if d := cmp.Diff(before, a2.Clock()); d != "" {
		t.Errorf("clock after the restart (-want +got):\n%s", d)
	}
	if err := a2.Set("x", 3); err != nil {
		t.Fatal(err)
	}
	if next := a2.Clock()[a2.Source()]; next <= own {
		t.Errorf("first local timestamp after the restart %v is not after %v, used before", next, own)
	}
}

// TestCloseRecordsClock checks that Close records a clock that knows more
// than the log's updates (a peer's clock message advanced it), and that
// the replay restores it.
func TestCloseRecordsClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	cfg := &Config{Sync: SyncNever, CompactRatio: -1}
	m := newModel(t, "a")
	l := mustOpen(t, path, m, cfg)
	fill(t, m, 0, 3)
	mustClose(t, l)
	if got := l.Stats().Records; got != 3 {
		t.Errorf("%d records after Close with nothing to add, want 3", got)
	}

	m2, l2 := reopen(t, path, "a", cfg)
	sameState(t, m2, m)
	if err := m2.RestoreClock(vclock.Clock{"z": 1e12}); err != nil {
		t.Fatal(err)
	}
	want := m2.Clock()
	mustClose(t, l2)
	if got := l2.Stats().Records; got != 4 {
		t.Errorf("%d records after Close, want 3 and a clock record", got)
	}

	m3, l3 := reopen(t, path, "a", cfg)
	if d := cmp.Diff(want, m3.Clock()); d != "" {
		t.Errorf("clock after the restart (-want +got):\n%s", d)
	}
	if got := l3.Stats().Records; got != 4 {
		t.Errorf("%d records after replay, want 4", got)
	}
}

// setVersion rewrites the format version in the file header of the log at
// path, with its checksum.
func setVersion(t *testing.T, path string, v uint16) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, hlen, err := parseFileHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(data[sizeOfMagic:], v)
	binary.BigEndian.PutUint32(data[hlen-sizeOfCRC:], checksum(data[:hlen-sizeOfCRC]))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileVersion returns the format version of the log at path.
func fileVersion(t *testing.T, path string) uint16 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, v, _, err := parseFileHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVersion1 opens a log written in format version 1: it is read, kept
// in version 1 (no clock records) until a compaction rewrites it in
// version 2, and a clock record in a version 1 log is damage.
func TestVersion1(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	cfg := &Config{Sync: SyncNever, CompactRatio: -1}
	writeLog(t, path, "a", 5)
	setVersion(t, path, 1)

	m, l := reopen(t, path, "a", cfg)
	if d := cmp.Diff(want(5), m.Snapshot()); d != "" {
		t.Errorf("snapshot of a version 1 log (-want +got):\n%s", d)
	}
	fill(t, m, 5, 6)
	if err := m.RestoreClock(vclock.Clock{"z": 1e12}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	if v := fileVersion(t, path); v != 1 {
		t.Errorf("version %d after Close, want 1 still", v)
	}
	if got := l.Stats().Records; got != 6 {
		t.Errorf("%d records, want 6 and no clock record in a version 1 log", got)
	}

	m2, l2 := reopen(t, path, "a", cfg)
	if d := cmp.Diff(want(6), m2.Snapshot()); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
	if err := m2.RestoreClock(vclock.Clock{"z": 1e12}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Compact(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l2)
	if v := fileVersion(t, path); v != 2 {
		t.Errorf("version %d after Compact, want 2", v)
	}
	m3, _ := reopen(t, path, "a", cfg)
	if d := cmp.Diff(m2.Clock(), m3.Clock()); d != "" {
		t.Errorf("clock after the compaction and restart (-want +got):\n%s", d)
	}

	// A clock record in a version 1 log, or one that does not decode, is
	// damage, not a torn tail, even at the end.
	good := writeLog(t, filepath.Join(dir, "b.log"), "b", 2)
	withClock, _, err := appendClockRecords(append([]byte(nil), good...), vclock.Clock{"b": 1e12}, DefaultMaxRecordSize)
	if err != nil {
		t.Fatal(err)
	}
	badClock := append([]byte(nil), good...)
	badClock = append(badClock, make([]byte, sizeOfRecordHeader)...)
	badClock = append(badClock, 0xa1, 0x61, 'b', 0xfb, 0, 0, 0, 0, 0, 0, 0, 0) // timestamp 0
	sealRecord(badClock[len(good):])
	tests := []struct {
		name    string
		data    []byte
		version uint16
	}{
		{"clock in version 1", withClock, 1},
		{"timestamp zero", badClock, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, filepath.Base(t.Name())+".log")
			if err := os.WriteFile(p, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			setVersion(t, p, tt.version)
			_, err := Open(p, newModel(t, "b"), cfg)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestClockRecordsSplit checks that a clock too large for one record is
// written as several, which the reader merges.
func TestClockRecordsSplit(t *testing.T) {
	c := vclock.Clock{}
	for i := range 50 {
		c[key(i)] = vclock.Timestamp(1e12 + i)
	}
	b, n, err := appendClockRecords(nil, c, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("%d records for a clock of %d entries in 100 bytes each", n, len(c))
	}
	got := vclock.Clock{}
	s := newScanner(bytesReaderAt(b), 0, int64(len(b)), 100)
	for range n {
		p, _, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		part, err := decodeClock(p)
		if err != nil {
			t.Fatal(err)
		}
		got.Merge(part)
	}
	if d := cmp.Diff(c, got); d != "" {
		t.Errorf("clock read back (-want +got):\n%s", d)
	}
	if _, _, err := appendClockRecords(nil, vclock.Clock{string(make([]byte, 100)): 1}, 64); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an entry larger than a record: %v, want ErrTooLarge", err)
	}
}

// TestClockBehindLongLog: a log of several replay batches whose last
// updates are past the offset bound of the document's clock, though its
// first ones are not, is refused before anything is applied.
func TestClockBehindLongLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	var mu sync.Mutex
	now := time.UnixMilli(1795385884149)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m, err := model.New("a", &scuttlebutt.Config{Now: clock, Incarnation: "1"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, m, &Config{Sync: SyncNever, CompactRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3*replayBatch + 10 {
		if i == 3*replayBatch {
			mu.Lock()
			now = now.Add(time.Minute) // the last ten a minute later
			mu.Unlock()
		}
		if err := m.Set(fmt.Sprint("k", i), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened with the wall clock back at the first writes: the last ones
	// are a minute ahead, past the 30 s bound.
	back := &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(1795385884149) }, Incarnation: "2"}
	m2, err := model.New("a", back)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, m2, nil); !errors.Is(err, scuttlebutt.ErrClockOffset) {
		t.Fatalf("Open with the clock a minute behind the log's end = %v, want ErrClockOffset", err)
	}
	if n := m2.Len(); n != 0 || len(m2.Clock()) != 0 {
		t.Errorf("the refused log left %d keys and clock %v applied", n, m2.Clock())
	}
}

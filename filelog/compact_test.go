package filelog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

// TestCompactKeepsLive checks that a Model's log stays proportional to its
// live keys, not to its writes.
func TestCompactKeepsLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := newModel(t, "a")
	l := mustOpen(t, path, m, &Config{CompactMin: 100, Sync: SyncNever})
	const keys, rounds = 50, 40
	for r := range rounds {
		for k := range keys {
			if err := m.Set(key(k), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Compaction runs in the background: wait for it to have caught up.
	waitFor(t, "compaction", func() bool {
		s := l.Stats()
		return s.Compactions > 0 && s.Records <= 2*keys+keys
	})
	s := l.Stats()
	t.Logf("%d writes: %+v", keys*rounds, s)
	if s.Records > 2*100 {
		t.Errorf("%d records for %d live keys after %d writes", s.Records, keys, keys*rounds)
	}
	mustClose(t, l)
	m2, _ := reopen(t, path, "a", nil)
	sameState(t, m2, m)
}

// TestCompactConcurrent compacts over and over while writers write, and
// checks that nothing is lost.
func TestCompactConcurrent(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.log")
			m := newModel(t, "a")
			l := mustOpen(t, path, m, &Config{Sync: p, CompactMin: 10})
			const writers, each = 8, 150
			var wg sync.WaitGroup
			done := make(chan struct{})
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						// Records of many sizes: a tail copied from a wrong
						// offset then starts in the middle of a record.
						if err := m.Set(fmt.Sprintf("w%d-%d", w, i%10), strings.Repeat("x", i%13)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			compactions := make(chan int)
			go func() {
				n := 0
				for {
					select {
					case <-done:
						compactions <- n
						return
					default:
					}
					if err := l.Compact(); err != nil {
						t.Error(err)
					}
					n++
					// Jitter, so that compactions start at every point of a
					// group commit, not just after the last compaction.
					time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
				}
			}()
			wg.Wait()
			close(done)
			t.Logf("%d explicit compactions, %+v", <-compactions, l.Stats())
			mustClose(t, l)
			m2, _ := reopen(t, path, "a", nil)
			sameState(t, m2, m)
		})
	}
}

// TestCompactFailure makes each step of a compaction fail in turn, and
// checks what the log does next: before the rename, it goes on with the
// old file; from the rename on, it fails for good; either way, reopening
// finds every acknowledged write.
func TestCompactFailure(t *testing.T) {
	tests := []struct {
		step     string
		usable   bool // the log accepts writes after the failure
		replaced bool // the log file is the compacted one
	}{
		{stepCreate, true, false},
		{stepHistory, true, false},
		{stepTail, true, false},
		{stepSync, true, false},
		{stepRename, false, true},
		{stepDirSync, false, true},
		{stepSwap, true, true}, // after the swap, the compaction is done
	}
	injected := errors.New("injected failure")
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.log")
			m := newModel(t, "a")
			l := mustOpen(t, path, m, &Config{CompactRatio: -1})
			for r := range 3 {
				fill(t, m, 0, 10)
				_ = r
			}
			testHookCompact = func(step string) error {
				if step == tt.step {
					return injected
				}
				return nil
			}
			err := l.Compact()
			testHookCompact = nil
			if !errors.Is(err, injected) {
				t.Fatalf("Compact = %v, want the injected failure", err)
			}
			if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind: %v", path+compactSuffix, err)
			}
			err = m.Set("after", 1)
			if tt.usable && err != nil {
				t.Errorf("Set after the failure: %v", err)
			}
			if !tt.usable && !errors.Is(err, ErrFailed) {
				t.Errorf("Set after the failure = %v, want ErrFailed", err)
			}
			if got := l.Stats().Records; (got == 10+1) != (tt.replaced && tt.usable) && (got == 10) != (tt.replaced && !tt.usable) {
				t.Errorf("%d records after the failure", got)
			}
			l.Close()
			m2, l2 := reopen(t, path, "a", nil)
			if tt.usable {
				sameState(t, m2, m)
			} else {
				want := newModel(t, "want")
				_ = want
				if _, ok := m2.Get("after"); ok {
					t.Errorf("a write refused after the failure is in the log")
				}
				for i := range 10 {
					if v, _ := m2.Get(key(i)); v != value(i) {
						t.Errorf("%s = %v after reopening, want %v", key(i), v, value(i))
					}
				}
			}
			if got, replaced := l2.Stats().Records, tt.replaced; (got <= 11) != replaced {
				t.Errorf("%d records after reopening: want the %s log", got, map[bool]string{true: "new", false: "old"}[replaced])
			}
		})
	}
}

// TestCompactDuringFlush starts a compaction while a group commit is
// being written and more records wait in the buffer: the records after the
// compaction's mark must be copied from the right offset.
func TestCompactDuringFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := newModel(t, "a")
	l := mustOpen(t, path, m, &Config{CompactRatio: -1})
	fill(t, m, 0, 10)

	// Be a Sync leader that has taken the buffer and not written it yet.
	var wg sync.WaitGroup
	set := func(k string, v string) {
		wg.Go(func() {
			if err := m.Set(k, v); err != nil {
				t.Error(err)
			}
		})
	}
	l.mu.Lock()
	l.flushing = true
	l.mu.Unlock()
	set("in-flight", "x")
	waitFor(t, "the first append", func() bool { return l.Stats().Appended == 11 })
	l.mu.Lock()
	inflight := l.buf
	l.buf = nil
	l.mu.Unlock()
	// More records, of another size, wait behind it.
	set("buffered", "a longer value than the first")
	waitFor(t, "the second append", func() bool { return l.Stats().Appended == 12 })

	// The compaction takes its mark now, then waits for the flush.
	history := make(chan struct{})
	testHookCompact = func(step string) error {
		if step == stepHistory {
			close(history)
		}
		return nil
	}
	defer func() { testHookCompact = nil }()
	compacted := make(chan error)
	go func() { compacted <- l.Compact() }()
	<-history
	// The leader is done: its records go before the buffered ones.
	l.mu.Lock()
	l.buf = append(inflight, l.buf...)
	l.flushing = false
	l.cond.Broadcast()
	l.mu.Unlock()
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mustClose(t, l)
	m2, _ := reopen(t, path, "a", nil)
	sameState(t, m2, m)
}

// TestTailStart checks where a compaction's tail starts: at its mark, or
// at the first local record before it that the clock does not cover (a
// local update waiting for its Sync is in the log, not yet applied), or,
// if records were dropped to bound the list, at the oldest dropped one.
func TestTailStart(t *testing.T) {
	const src = "a~x"
	recs := func(tss ...vclock.Timestamp) []localRecord {
		var out []localRecord
		for i, ts := range tss {
			out = append(out, localRecord{off: int64(100 + 10*i), n: int64(i), ts: ts})
		}
		return out
	}
	tests := []struct {
		name        string
		local       []localRecord
		lost        *localRecord
		applied     vclock.Timestamp
		start, skip int64
		left        int
		keepLost    bool
	}{
		{"none", nil, nil, 0, 500, 50, 0, false},
		{"all applied", recs(1, 2, 3), nil, 3, 500, 50, 0, false},
		{"last unapplied", recs(1, 2, 3), nil, 2, 120, 2, 1, false},
		{"none applied", recs(1, 2, 3), nil, 0, 100, 0, 3, false},
		{"dropped, one applied since", recs(5, 6), &localRecord{off: 40, n: 1, ts: 1}, 5, 110, 1, 1, false},
		{"dropped, none applied since", recs(5, 6), &localRecord{off: 40, n: 1, ts: 1}, 4, 40, 1, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Log{source: src, local: tt.local, lost: tt.lost}
			start, skip := l.tailStartLocked(vclock.Clock{src: tt.applied, "b": 9}, 500, 50)
			if start != tt.start || skip != tt.skip {
				t.Errorf("tail starts at %d after %d records, want %d after %d", start, skip, tt.start, tt.skip)
			}
			if len(l.local) != tt.left || (l.lost != nil) != tt.keepLost {
				t.Errorf("%d local records left, lost %v; want %d, kept %v", len(l.local), l.lost, tt.left, tt.keepLost)
			}
		})
	}
}

// TestNoteLocalBounded checks that the list of local records stays within
// maxLocal, and that the oldest record dropped is kept as lost.
func TestNoteLocalBounded(t *testing.T) {
	l := &Log{}
	for i := range 3 * maxLocal {
		l.noteLocal(localRecord{off: int64(i), n: int64(i), ts: vclock.Timestamp(i + 1)})
		if len(l.local) > maxLocal {
			t.Fatalf("%d local records after %d", len(l.local), i+1)
		}
	}
	if l.lost == nil || l.lost.off != 0 {
		t.Errorf("lost = %+v, want the first record", l.lost)
	}
	if last := l.local[len(l.local)-1]; last.off != 3*maxLocal-1 {
		t.Errorf("newest record kept %+v", last)
	}
}

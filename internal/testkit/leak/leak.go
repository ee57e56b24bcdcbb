// Package leak finds goroutines that a test started and left running.
//
// Take a snapshot before the code under test starts its goroutines, and
// verify after it should have stopped them:
//
//	func TestX(t *testing.T) {
//		leak.Check(t) // verifies in a cleanup, after the test's own cleanups
//		...
//	}
//
// A goroutine counts as leaked if it did not exist at the snapshot and is
// still running when the deadline passes; goroutines only need to end
// eventually, so Verify polls. Goroutines started concurrently by other
// tests look leaked too: do not use Check in parallel tests.
package leak

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultTimeout is how long Check waits for goroutines to end.
const DefaultTimeout = 10 * time.Second

// Snapshot is the set of goroutines running at one moment.
type Snapshot struct {
	ids map[uint64]bool
}

// Take returns the goroutines running now.
func Take() *Snapshot {
	s := &Snapshot{ids: make(map[uint64]bool)}
	for _, g := range goroutines() {
		s.ids[g.id] = true
	}
	return s
}

// Verify polls until every goroutine started since s has ended, and returns
// an error with the stacks of those still running when timeout has passed,
// or nil.
func (s *Snapshot) Verify(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		extra := s.extra()
		if len(extra) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			fmt.Fprintf(&b, "leak: %d goroutines still running after %v:\n", len(extra), timeout)
			for _, g := range extra {
				b.WriteString("\n")
				b.WriteString(g.stack)
				b.WriteString("\n")
			}
			return fmt.Errorf("%s", b.String())
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Check takes a snapshot and registers a cleanup that fails t if goroutines
// started since are still running DefaultTimeout after the test and its
// later-registered cleanups have finished. Call it first in the test, so
// that its cleanup runs last.
func Check(t testing.TB) {
	t.Helper()
	s := Take()
	t.Cleanup(func() {
		if err := s.Verify(DefaultTimeout); err != nil {
			t.Error(err)
		}
	})
}

// extra returns the goroutines not in s, other than the runtime's and the
// testing package's own.
func (s *Snapshot) extra() []goroutine {
	var out []goroutine
	for _, g := range goroutines() {
		if !s.ids[g.id] && !ignored(g.stack) {
			out = append(out, g)
		}
	}
	return out
}

// ignored reports goroutines that belong to the runtime or the test
// framework, which start lazily and are not the test's to stop.
func ignored(stack string) bool {
	for _, fn := range []string{
		"testing.(*T).Run(",
		"testing.(*F).Fuzz(",
		"testing.tRunner.func1(",
		"testing.runFuzzTests(",
		"testing.runFuzzing(",
		"os/signal.signal_recv(",
		"runtime.ensureSigM(",
		"runtime/trace.Start.",
	} {
		if strings.Contains(stack, fn) {
			return true
		}
	}
	return false
}

type goroutine struct {
	id    uint64
	stack string
}

// goroutines returns every goroutine's id and stack but the caller's.
func goroutines() []goroutine {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for i, st := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the calling goroutine, which always exists
		}
		stack := string(st)
		// "goroutine 42 [chan receive]:"
		f := strings.Fields(stack)
		if len(f) < 2 || f[0] != "goroutine" {
			continue
		}
		id, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, goroutine{id: id, stack: stack})
	}
	return out
}

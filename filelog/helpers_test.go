package filelog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// newModel returns an empty Model with id, or fails the test.
func newModel(t testing.TB, id string) *model.Model {
	t.Helper()
	m, err := model.New(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mustOpen opens the log at path for doc and closes it when the test ends.
func mustOpen(t testing.TB, path string, doc scuttlebutt.Document, cfg *Config) *Log {
	t.Helper()
	l, err := Open(path, doc, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", filepath.Base(path), err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close(%s): %v", filepath.Base(path), err)
		}
	})
	return l
}

// mustClose closes l, failing the test on an error.
func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// reopen opens path in a fresh Model with id and returns both.
func reopen(t testing.TB, path, id string, cfg *Config) (*model.Model, *Log) {
	t.Helper()
	m := newModel(t, id)
	return m, mustOpen(t, path, m, cfg)
}

// value is the string the tests write for key i: it never ends with a zero
// byte, so that the last byte of the log is not zero.
func value(i int) string { return fmt.Sprintf("value-%d", i) }

func key(i int) string { return fmt.Sprintf("key-%04d", i) }

// fill sets key(i) to value(i) for i in [from, to).
func fill(t testing.TB, m *model.Model, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := m.Set(key(i), value(i)); err != nil {
			t.Fatalf("Set(%s): %v", key(i), err)
		}
	}
}

// want returns the snapshot fill(0, n) makes.
func want(n int) map[string]any {
	s := make(map[string]any, n)
	for i := range n {
		s[key(i)] = value(i)
	}
	return s
}

// sameState fails the test if got's keys and clock differ from want's.
func sameState(t testing.TB, got, want *model.Model) {
	t.Helper()
	if d := cmp.Diff(want.Snapshot(), got.Snapshot()); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want.Clock(), got.Clock()); d != "" {
		t.Errorf("clock (-want +got):\n%s", d)
	}
}

// layout returns the header length and the offsets of the records of the
// log in data, and their end.
func layout(t testing.TB, data []byte) (hlen int, offs []int64) {
	t.Helper()
	_, _, hlen, err := parseFileHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	s := newScanner(bytesReaderAt(data), int64(hlen), int64(len(data)), DefaultMaxRecordSize)
	for {
		_, off, err := s.next()
		if err == io.EOF {
			return hlen, offs
		}
		if err != nil {
			t.Fatalf("layout: %v", err)
		}
		offs = append(offs, off)
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// writeLog writes a log of n keys for replica id at path, closes it and
// returns its bytes.
func writeLog(t testing.TB, path, id string, n int) []byte {
	t.Helper()
	m := newModel(t, id)
	l, err := Open(path, m, &Config{Sync: SyncNever, CompactRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, m, 0, n)
	mustClose(t, l)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

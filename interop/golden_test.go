package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// goldenEntry is one line of testdata/golden-session.jsonl, which
// testdata/record-golden.js recorded from scuttlebutt@5.6.15.
type goldenEntry struct {
	Op    string          `json:"op"`  // "set" or "connect"
	Who   string          `json:"who"` // "A" or "B"
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	Now   int64           `json:"now"`
	Meta  any             `json:"meta"`
	Dir   string          `json:"dir"` // "A>B" or "B>A"
	Line  string          `json:"line"`
}

func readGolden(t *testing.T) []goldenEntry {
	t.Helper()
	f, err := os.Open("testdata/golden-session.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e goldenEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("golden line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withSource returns a recorded line with A's source id, "A", replaced
// by src: in the id and clock of A's hello, and as the source of A's
// updates (sent by A, or echoed by B). JavaScript's A stamps its updates
// with its replica id; Go's, with its source id, the replica id and the
// incarnation of this start.
func withSource(line, src string) string {
	q := strconv.Quote(src) // a source id is ASCII: JSON quotes it the same
	switch {
	case strings.HasPrefix(line, `{"id":"A",`):
		line = `{"id":` + q + strings.TrimPrefix(line, `{"id":"A"`)
		return strings.Replace(line, `"clock":{"A":`, `"clock":{`+q+`:`, 1)
	case strings.HasSuffix(line, `,"A"]`):
		return strings.TrimSuffix(line, `"A"]`) + q + "]"
	}
	return line
}

// TestGolden replays the recorded session with a Go replica in A's place,
// fed B's recorded lines, its clock stubbed as the recording's was, and
// checks that it writes exactly the lines JavaScript's A wrote, less the
// echoes (JavaScript sends each of B's live updates back to B; Go does
// not), with Go's source id in place of A's (withSource). It needs no
// Node: the recording is test data.
func TestGolden(t *testing.T) {
	entries := readGolden(t)
	var now atomic.Int64
	m, err := model.New("A", &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	ours, theirs := net.Pipe()
	defer theirs.Close()

	var mu sync.Mutex
	var got []string
	linesIn := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(theirs)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			mu.Lock()
			got = append(got, sc.Text())
			mu.Unlock()
			select {
			case linesIn <- struct{}{}:
			default:
			}
		}
	}()

	var conn *goConn
	var want []string
	// waitLines waits until Go has written as many lines as are wanted, so
	// that the replay keeps the recording's order: an echo of A's update is
	// fed only after Go has sent the update.
	waitLines := func() {
		t.Helper()
		deadline := time.After(timeout)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= len(want) {
				return
			}
			select {
			case <-linesIn:
			case <-conn.done:
				t.Fatalf("the Go session ended: %v", conn.err)
			case <-deadline:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("Go wrote %d lines, want %d (-js +go):\n%s", n, len(want), cmp.Diff(want, got))
			}
		}
	}
	live := false
	for _, e := range entries {
		switch {
		case e.Op == "connect":
			conn = runConn(ctx, stream.NewConn(m, ours, &stream.Options{Codec: stream.JSONLines, Meta: e.Meta}))
			defer func() { cancel(); <-conn.done }()
		case e.Op == "set" && e.Who == "A":
			if conn != nil && !live {
				conn.waitSynced(t) // later writes are live, as in the recording
				live = true
			}
			now.Store(e.Now)
			var v any
			if err := json.Unmarshal(e.Value, &v); err != nil {
				t.Fatal(err)
			}
			if v == nil {
				err = m.Delete(e.Key)
			} else {
				err = m.Set(e.Key, v)
			}
			if err != nil {
				t.Fatalf("A sets %s: %v", e.Key, err)
			}
		case e.Dir == "B>A":
			if _, err := theirs.Write([]byte(withSource(e.Line, m.Source()) + "\n")); err != nil {
				t.Fatalf("feeding %s: %v", e.Line, err)
			}
		case e.Dir == "A>B":
			if strings.HasSuffix(e.Line, `,"B"]`) {
				continue // JavaScript's echo of B's own update
			}
			want = append(want, withSource(e.Line, m.Source()))
			waitLines()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Go's lines differ from JavaScript's (-js +go):\n%s", d)
	}
	if len(want) < 15 {
		t.Errorf("only %d lines compared: is the recording complete?", len(want))
	}
}

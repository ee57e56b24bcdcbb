package interop

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/stream"
)

// jsEvent is an event as JavaScript's ReliableEventEmitter holds it:
// [[name, args...], timestamp, source], as generic JSON.
type jsEvent struct {
	Change []any
	TS     float64
	Source string
}

func goEvents(t *testing.T, e *emitter.Emitter) []jsEvent {
	t.Helper()
	var out []jsEvent
	for _, ev := range e.Events(nil) {
		change := append([]any{ev.Name}, ev.Args...)
		out = append(out, jsEvent{asJSON(t, change).([]any), float64(ev.Timestamp), ev.Source})
	}
	return out
}

func nodeEvents(t *testing.T, p *nodePeer) []jsEvent {
	t.Helper()
	var h [][]json.RawMessage
	if err := json.Unmarshal(p.state().History, &h); err != nil {
		t.Fatal(err)
	}
	var out []jsEvent
	for _, u := range h {
		var e jsEvent
		e.Change, _ = fromJSON(t, u[0]).([]any)
		if err := json.Unmarshal(u[1], &e.TS); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(u[2], &e.Source); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestEmitter replicates events between a Go Emitter and a Node
// ReliableEventEmitter, before and after the handshake, with the Go side
// as listener and as connector; every event reaches both sides once, with
// its arguments and its exact timestamp.
func TestEmitter(t *testing.T) {
	for _, goListens := range []bool{true, false} {
		name := map[bool]string{true: "go-listens", false: "node-listens"}[goListens]
		t.Run(name, func(t *testing.T) {
			g, err := emitter.New("go-E", nil)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var delivered []string
			g.OnAny(func(ev emitter.Event) {
				mu.Lock()
				delivered = append(delivered, fmt.Sprintf("%s@%v", ev.Source, ev.Timestamp))
				mu.Unlock()
			})
			emit := func(name string, args ...any) {
				t.Helper()
				if err := g.Emit(name, args...); err != nil {
					t.Fatal(err)
				}
			}
			emit("msg", "one")
			emit("msg", "two", map[string]any{"x": 1}, 3)
			emit("other")
			n := startNode(t, "events", "node-F")
			n.call("emit", map[string]any{"event": "msg", "args": []any{"from node", []any{1.5, nil, "é😀"}}})
			n.call("emit", map[string]any{"event": "bare"})

			var gc *goConn
			sname := "out"
			if goListens {
				srv := serveGo(t, g, stream.Options{})
				n.connect(srv.port, sname, nil)
				gc = srv.conn(t, 0)
			} else {
				gc = dialGo(t, g, n.listen(nil), stream.Options{})
				sname = "in1"
			}
			n.waitEvent("sync", sname)
			gc.waitSynced(t)
			emit("live", "go", 1e300)
			n.call("emit", map[string]any{"event": "live", "args": []any{"node", 0.1}})

			deadline := time.Now().Add(timeout)
			for {
				want, got := goEvents(t, g), nodeEvents(t, n)
				d := cmp.Diff(want, got)
				if d == "" && len(want) == 7 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("emitters do not converge (-go +node):\n%s", d)
				}
				time.Sleep(20 * time.Millisecond) // poll interval
			}
			mu.Lock()
			defer mu.Unlock()
			if len(delivered) != 7 || len(slices.Compact(slices.Sorted(slices.Values(delivered)))) != 7 {
				t.Errorf("the Go listener got %d deliveries, want each of 7 events once: %v", len(delivered), delivered)
			}
			if st := n.state(); st.OldOwn != 0 {
				t.Errorf("node got %d of its own events back", st.OldOwn)
			}
			gc.checkError(t, "Go session")
		})
	}
}

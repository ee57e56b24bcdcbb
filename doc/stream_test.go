package doc_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// TestStreams links three documents in a line over real streams (a-b
// with stream.Pipe, b-c with two stream.Conns over net.Pipe) and patches
// all three at once while they replicate: they converge to the reference
// of every patch made.
func TestStreams(t *testing.T) {
	leak.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var ds []*doc.Doc
	for _, id := range []string{"a", "b", "c"} {
		d, err := doc.New(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	a, b, c := ds[0], ds[1], ds[2]
	// Each document's log records the updates it makes, as it makes them:
	// its History may already have left one out, superseded by a peer's.
	logs := make([]*recordLog, len(ds))
	for i, d := range ds {
		logs[i] = &recordLog{source: d.Source()}
		d.Attach(logs[i])
	}
	patch(t, a, doc.Set("/before", "the link"))
	if err := stream.Pipe(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	cb, cc := net.Pipe()
	x, y := stream.NewConn(b, cb, &stream.Options{MaxBatchBytes: 64}), stream.NewConn(c, cc, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, conn := range []*stream.Conn{x, y} {
		wg.Go(func() { errs <- conn.Run(ctx) })
	}
	<-x.Synced()
	<-y.Synced()

	for i, d := range ds {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for range 150 {
				ops := []doc.Op{}
				for range 1 + r.IntN(2) {
					op, _ := randomOp(r)
					ops = append(ops, op)
				}
				if err := d.Patch(ops...); err != nil {
					if !errors.Is(err, doc.ErrNotNumber) && !errors.Is(err, doc.ErrNotArray) && !errors.Is(err, doc.ErrInvalidPath) {
						t.Error(err)
					}
				}
			}
			// Each writer's counter, with no other writer on it.
			for range 100 {
				if err := d.Patch(doc.Inc(fmt.Sprintf("/count/%s", d.ID()), 1)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	waitFor(t, func() bool {
		return a.Clock().Compare(b.Clock()) == 0 && b.Clock().Compare(c.Clock()) == 0 &&
			len(b.Clock()) == 3 && a.Clock()[c.Source()] == c.Clock()[c.Source()] && doneWriting(ds)
	})
	cancel()
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	var updates []scuttlebutt.Update
	for _, l := range logs {
		updates = append(updates, l.own()...)
	}
	ops, err := refDecode(updates)
	if err != nil {
		t.Fatal(err)
	}
	want := refEvaluate(ops)
	for _, d := range ds {
		if diff := cmp.Diff(want, d.Snapshot()); diff != "" {
			t.Errorf("%s differs from the reference (-want +got):\n%s", d.ID(), diff)
		}
		for _, w := range ds {
			if v, _ := d.Get("/count/" + w.ID()); v != int64(100) {
				t.Errorf("%s: /count/%s = %v, want 100", d.ID(), w.ID(), v)
			}
		}
	}
}

// doneWriting reports whether every writer has made its last increment.
func doneWriting(ds []*doc.Doc) bool {
	for _, d := range ds {
		if v, _ := d.Get("/count/" + d.ID()); v != int64(100) {
			return false
		}
	}
	return true
}

// recordLog is a scuttlebutt.Storage that keeps the updates of one
// source that are appended to it: a document's own patches, in order.
type recordLog struct {
	source string
	mu     sync.Mutex
	seq    uint64
	mine   []scuttlebutt.Update
}

func (l *recordLog) Append(us []scuttlebutt.Update) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range us {
		if u.Source == l.source {
			l.mine = append(l.mine, u)
		}
	}
	l.seq++
	return l.seq, nil
}

func (l *recordLog) Sync(uint64) error { return nil }

// own returns the updates recorded so far.
func (l *recordLog) own() []scuttlebutt.Update {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mine)
}

package stream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
)

// muxPair runs two Muxes over a net.Pipe until the test ends.
func muxPair(t *testing.T, optsA, optsB *stream.MuxOptions) (a, b *stream.Mux) {
	t.Helper()
	ca, cb := net.Pipe()
	return muxPairOver(t, ca, cb, optsA, optsB)
}

// muxPairOver runs a client Mux on ca and a server Mux on cb until the
// test ends.
func muxPairOver(t *testing.T, ca, cb net.Conn, optsA, optsB *stream.MuxOptions) (a, b *stream.Mux) {
	t.Helper()
	a, err := stream.NewMux(ca, true, optsA)
	if err != nil {
		t.Fatal(err)
	}
	b, err = stream.NewMux(cb, false, optsB)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Run(ctx) }()
	go func() { defer wg.Done(); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return a, b
}

func newModel(t *testing.T, id string) *model.Model {
	t.Helper()
	m, err := model.New(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitEqual(t *testing.T, x, y *model.Model) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cmp.Equal(x.Snapshot(), y.Snapshot()) && cmp.Equal(x.Clock(), y.Clock()) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s and %s did not converge: %s", x.ID(), y.ID(), cmp.Diff(x.Snapshot(), y.Snapshot()))
}

func TestMuxManyDocuments(t *testing.T) {
	const n = 100
	ma, mb := muxPair(t, nil, nil)
	as, bs := make([]*model.Model, n), make([]*model.Model, n)
	for i := range n {
		as[i], bs[i] = newModel(t, "a"), newModel(t, "b")
		as[i].Set("doc", i)
		bs[i].Set(fmt.Sprintf("b%d", i), true)
		// Half the documents are added on both sides, the rest in the
		// other order, so both sides open streams for some.
		if i%2 == 0 {
			ma.Add(fmt.Sprint("doc", i), as[i])
			mb.Add(fmt.Sprint("doc", i), bs[i])
		} else {
			mb.Add(fmt.Sprint("doc", i), bs[i])
			ma.Add(fmt.Sprint("doc", i), as[i])
		}
	}
	for i := range n {
		waitEqual(t, as[i], bs[i])
	}
	as[7].Set("live", "yes")
	waitEqual(t, as[7], bs[7])
}

func TestMuxAddWhileConnected(t *testing.T) {
	ma, mb := muxPair(t, nil, nil)
	a, b := newModel(t, "a"), newModel(t, "b")
	a.Set("k", 1)
	ma.Add("late", a)
	time.Sleep(20 * time.Millisecond) // b does not have it yet: a's stream is refused
	mb.Add("late", b)
	waitEqual(t, a, b)
}

func TestMuxTypeMismatch(t *testing.T) {
	errs := make(chan error, 4)
	ma, mb := muxPair(t, &stream.MuxOptions{OnError: func(name string, err error) { errs <- err }}, nil)
	a, b := newModel(t, "a"), newModel(t, "b")
	a2, b2 := newModel(t, "a"), newModel(t, "b")
	a2.Set("fine", 1)
	ma.Add("good", a2)
	mb.Add("good", b2)
	mb.Add("x", &typed{b})
	ma.Add("x", a)
	select {
	case err := <-errs:
		if !errors.Is(err, stream.ErrDocumentType) {
			t.Fatalf("error %v, want ErrDocumentType", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no type mismatch reported")
	}
	waitEqual(t, a2, b2) // the other document is unaffected
}

type typed struct{ *model.Model }

func (typed) DocType() string { return "other" }

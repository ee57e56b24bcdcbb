// Doc tells facsimile's own example with scuttle: a nested store mirrored
// between two replicas, a listener on one object of it, concurrent edits
// while the replicas are cut apart, and the merge when they meet again.
//
//	go run ./examples/doc
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// wall is the replicas' wall clock, moved on by the story one millisecond
// per write, so that the order of concurrent writes (and so the output) is
// the same in every run. Real replicas read time.Now.
type wall struct{ ms atomic.Int64 }

func (w *wall) now() time.Time { return time.UnixMilli(w.ms.Load()) }
func (w *wall) tick()          { w.ms.Add(1) }

// link serves two replicas to each other over net.Pipe until cut: any
// io.ReadWriter would do (facsimile leaves this tunnel to its user).
type link struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func connect(ctx context.Context, a, b *doc.Doc) *link {
	ctx, cancel := context.WithCancel(ctx)
	l := &link{cancel: cancel}
	ca, cb := net.Pipe()
	x, y := stream.NewConn(a, ca, nil), stream.NewConn(b, cb, nil)
	l.wg.Go(func() { x.Run(ctx) })
	l.wg.Go(func() { y.Run(ctx) })
	<-x.Synced() // each has applied what the other had: live from here on
	<-y.Synced()
	return l
}

func (l *link) cut() {
	l.cancel()
	l.wg.Wait()
}

// listener is facsimile's store.x.on(cb): the changes a replica observes
// at, below or above one path, local or remote. They arrive on the
// goroutine that applied them; the story prints them from its own, in
// order, so that the output reads the same every time.
type listener struct {
	name string
	ch   chan doc.Change
}

func listen(name string, d *doc.Doc, path string) (*listener, func()) {
	l := &listener{name: name, ch: make(chan doc.Change, 16)}
	return l, d.ObserveChan(path, l.ch)
}

// hear prints the next n changes l received.
func (l *listener) hear(w io.Writer, n int) {
	for range n {
		c := <-l.ch
		to := show(c.New)
		if c.Deleted {
			to = "(deleted)"
		}
		fmt.Fprintf(w, "  %s hears %s: %s -> %s (from %s)\n", l.name, c.Path, show(c.Old), to, scuttlebutt.ReplicaID(c.Source))
	}
}

// show is v as JSON, keys sorted; "(none)" for nothing.
func show(v any) string {
	if v == nil {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func run(ctx context.Context, w io.Writer) error {
	clock := &wall{}
	clock.ms.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	cfg := &scuttlebutt.Config{Now: clock.now}
	host, err := doc.New("host", cfg)
	if err != nil {
		return err
	}
	client, err := doc.New("client", cfg)
	if err != nil {
		return err
	}
	patch := func(d *doc.Doc, ops ...doc.Op) error {
		clock.tick()
		return d.Patch(ops...)
	}

	fmt.Fprintln(w, "host sets its store; client connects and mirrors it:")
	err = patch(host, doc.Set("", map[string]any{
		"elements": []any{1, 2, 3},
		"users":    map[string]any{"ada": map[string]any{"admin": true, "logins": 0}},
	}))
	if err != nil {
		return err
	}
	hostL, stop := listen("host", host, "/elements") // a.store.elements.on(cb)
	defer stop()
	l := connect(ctx, host, client)
	fmt.Fprintln(w, "  client:", show(client.Snapshot()))

	fmt.Fprintln(w, "client listens on store.users.ada; host counts a login:")
	clientL, stop := listen("client", client, "/users/ada")
	defer stop()
	if err := patch(host, doc.Inc("/users/ada/logins", 1)); err != nil {
		return err
	}
	clientL.hear(w, 1)

	fmt.Fprintln(w, "the link is cut; both edit the store:")
	l.cut()
	err = patch(host, doc.Inc("/users/ada/logins", 1), doc.Set("/users/ada/admin", false),
		doc.Set("/users/ada/role", "owner"), doc.Push("/elements", 4))
	if err != nil {
		return err
	}
	hostL.hear(w, 1)
	err = patch(client, doc.Inc("/users/ada/logins", 2), doc.Set("/users/ada/email", "ada@example.com"),
		doc.Set("/users/ada/role", "editor")) // later than host's "owner"
	if err != nil {
		return err
	}
	if err := patch(client, doc.Push("/elements", 5), doc.Set("/users/grace", map[string]any{"admin": false})); err != nil {
		return err
	}
	clientL.hear(w, 3)
	fmt.Fprintln(w, "  host:  ", show(host.Snapshot()))
	fmt.Fprintln(w, "  client:", show(client.Snapshot()))

	fmt.Fprintln(w, "the link is back; each gets what it missed, and the edits merge:")
	l = connect(ctx, host, client)
	defer l.cut()
	hostL.hear(w, 1)
	clientL.hear(w, 2)
	a, b := host.Snapshot(), client.Snapshot()
	fmt.Fprintln(w, "  host:  ", show(a))
	fmt.Fprintln(w, "  client:", show(b))
	if show(a) != show(b) {
		return fmt.Errorf("the replicas differ")
	}
	fmt.Fprintln(w, "every login counts (1 + 1 + 2), both pushes stay (by time), and of the two roles the later wins")
	return nil
}

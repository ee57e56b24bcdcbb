// Events shows the replicated event emitter: three chat replicas, a
// partition, and the heal that delivers what each side said, once, to the
// other. An event named "dispose" is just an event.
//
//	go run ./examples/events
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// room is one chat replica and the events it has received.
type room struct {
	name string
	em   *emitter.Emitter
	in   chan emitter.Event
}

// link serves two replicas to each other over net.Pipe until cut.
type link struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func connect(ctx context.Context, a, b *room) *link {
	ctx, cancel := context.WithCancel(ctx)
	l := &link{cancel: cancel}
	ca, cb := net.Pipe()
	x, y := stream.NewConn(a.em, ca, nil), stream.NewConn(b.em, cb, nil)
	l.wg.Go(func() { x.Run(ctx) })
	l.wg.Go(func() { y.Run(ctx) })
	<-x.Synced()
	<-y.Synced()
	return l
}

func (l *link) cut() {
	l.cancel()
	l.wg.Wait()
}

// hear prints the next n events each room received, sorted by sender so
// that the story reads the same every time. The sender is the replica id
// of the event's source: the source id adds the sender's incarnation, a
// random suffix ("alice~k3x9p2qd") that tells its starts apart.
func hear(w io.Writer, n int, rooms ...*room) {
	for _, r := range rooms {
		var got []emitter.Event
		for range n {
			got = append(got, <-r.in)
		}
		slices.SortFunc(got, func(a, b emitter.Event) int {
			return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Timestamp, b.Timestamp))
		})
		for _, ev := range got {
			fmt.Fprintf(w, "  %s hears %s: %s %v\n", r.name, scuttlebutt.ReplicaID(ev.Source), ev.Name, ev.Args)
		}
	}
}

func run(ctx context.Context, w io.Writer) error {
	var rooms []*room
	for _, name := range []string{"alice", "bob", "carol"} {
		em, err := emitter.New(name, nil)
		if err != nil {
			return err
		}
		r := &room{name: name, em: em, in: make(chan emitter.Event, 16)}
		defer em.Chan(r.in)() // every event, from every source, this one's too
		rooms = append(rooms, r)
	}
	alice, bob, carol := rooms[0], rooms[1], rooms[2]
	ab := connect(ctx, alice, bob)
	defer ab.cut()
	bc := connect(ctx, bob, carol)

	fmt.Fprintln(w, "alice says hello; bob relays it to carol:")
	if err := alice.em.Emit("message", "hello"); err != nil {
		return err
	}
	hear(w, 1, alice, bob, carol)

	fmt.Fprintln(w, "carol is cut off; both sides talk:")
	bc.cut()
	if err := alice.em.Emit("message", "carol, are you there?"); err != nil {
		return err
	}
	if err := carol.em.Emit("message", "my train is in a tunnel"); err != nil {
		return err
	}
	hear(w, 1, alice, bob)
	hear(w, 1, carol)

	fmt.Fprintln(w, "carol is back: each side gets what it missed, once:")
	bc = connect(ctx, bob, carol)
	defer bc.cut()
	hear(w, 1, alice, bob, carol)

	fmt.Fprintln(w, `bob emits "dispose", which ends every stream in JavaScript scuttlebutt; here it is an event:`)
	if err := bob.em.Emit("dispose"); err != nil {
		return err
	}
	if err := bob.em.Emit("message", "still here"); err != nil {
		return err
	}
	hear(w, 2, alice, carol)
	fmt.Fprintf(w, "every room holds %d, %d and %d events\n", alice.em.Len(), bob.em.Len(), carol.em.Len())
	return nil
}

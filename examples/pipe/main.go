// Pipe shows the smallest replication story: two Models joined by net.Pipe
// stay in sync. A write on one arrives on the other as a change event.
//
//	go run ./examples/pipe
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer) error {
	a, _ := model.New("a", nil) // ids are valid, so no error
	b, _ := model.New("b", nil)
	changes := make(chan model.Change, 1)
	defer b.WatchChan(changes)()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: defers run last first
	defer cancel()
	ca, cb := net.Pipe()
	x, y := stream.NewConn(a, ca, nil), stream.NewConn(b, cb, nil)
	wg.Go(func() { x.Run(ctx) })
	wg.Go(func() { y.Run(ctx) })
	<-x.Synced()
	<-y.Synced()

	if err := a.Set("hello", "world"); err != nil {
		return err
	}
	c := <-changes
	// c.Source is the writer's source id, "a~" and a random incarnation
	// that tells a's starts apart; ReplicaID gives the replica alone.
	fmt.Fprintf(w, "b saw %s = %v, written by %s\n", c.Key, c.Value, scuttlebutt.ReplicaID(c.Source))
	fmt.Fprintln(w, "a:", a.Snapshot())
	fmt.Fprintln(w, "b:", b.Snapshot())
	return nil
}

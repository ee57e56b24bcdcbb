package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strings"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// Two replicas, one on each end of a connection: each Conn sends its
// model's history, then live updates, until the context ends.
func ExampleConn() {
	alice, err := model.New("alice", nil)
	if err != nil {
		log.Fatal(err)
	}
	bob, err := model.New("bob", nil)
	if err != nil {
		log.Fatal(err)
	}
	alice.Set("greeting", "hello")
	bob.Set("answer", 42)

	ctx, cancel := context.WithCancel(context.Background())
	ca, cb := net.Pipe() // or a net.Conn from net.Dial and Accept
	a := stream.NewConn(alice, ca, nil)
	b := stream.NewConn(bob, cb, nil)
	errs := make(chan error, 2)
	go func() { errs <- a.Run(ctx) }()
	go func() { errs <- b.Run(ctx) }()

	// Synced: each side holds what the other held when it connected.
	<-a.Synced()
	<-b.Synced()
	fmt.Println("alice:", alice.Snapshot())
	fmt.Println("bob:  ", bob.Snapshot())
	// The peer's source id is its replica id and this start's incarnation.
	fmt.Println("bob's peer:", scuttlebutt.ReplicaID(b.Peer().ID))

	cancel()
	fmt.Println(<-errs, <-errs)
	// Output:
	// alice: map[answer:42 greeting:hello]
	// bob:   map[answer:42 greeting:hello]
	// bob's peer: alice
	// <nil> <nil>
}

// A one-shot, send-only session writes a replica to any io.Writer, a file
// or a buffer: PeerClock stands in for the peer nobody hears from (an empty
// clock: send everything). A receive-only one-shot session reads it back.
func ExampleConn_dump() {
	src, err := model.New("src", nil)
	if err != nil {
		log.Fatal(err)
	}
	src.Set("a", 1)
	src.Set("b", []any{"x", true})

	var file bytes.Buffer
	out := struct {
		io.Reader
		io.Writer
	}{strings.NewReader(""), &file}
	dump := stream.NewConn(src, out, &stream.Options{
		Mode: scuttlebutt.SendOnly, OneShot: true, PeerClock: vclock.Clock{},
	})
	if err := dump.Run(context.Background()); err != nil {
		log.Fatal(err)
	}

	dst, err := model.New("dst", nil)
	if err != nil {
		log.Fatal(err)
	}
	in := struct {
		io.Reader
		io.Writer
	}{&file, io.Discard}
	load := stream.NewConn(dst, in, &stream.Options{Mode: scuttlebutt.ReceiveOnly, OneShot: true})
	if err := load.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(dst.Snapshot())
	// Output:
	// map[a:1 b:[x true]]
}

// Pipe connects two replicas in one process and returns once they are
// synced; they go on replicating until the context ends.
func ExamplePipe() {
	a, err := model.New("a", nil)
	if err != nil {
		log.Fatal(err)
	}
	b, err := model.New("b", nil)
	if err != nil {
		log.Fatal(err)
	}
	a.Set("color", "red")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := stream.Pipe(ctx, a, b); err != nil {
		log.Fatal(err)
	}
	color, _ := b.Get("color")
	fmt.Println("b sees", color)

	// Live: watch a, write on b.
	changes := make(chan model.Change, 1)
	stop := a.WatchChan(changes)
	defer stop()
	b.Set("color", "blue")
	c := <-changes
	fmt.Printf("a sees %s=%v from %s\n", c.Key, c.Value, scuttlebutt.ReplicaID(c.Source))
	// Output:
	// b sees red
	// a sees color=blue from b
}

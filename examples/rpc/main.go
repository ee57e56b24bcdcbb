// Rpc calls a function by name across a scuttle cluster: one node
// registers "greet" and "add", another calls them, with no address of the
// server to configure: the node's registry, a replicated document, says
// who serves what.
//
// Both nodes in one process:
//
//	go run ./examples/rpc
//
// Or one process each: a node that serves the functions, and a node that
// joins it and calls them.
//
//	go run ./examples/rpc -serve -gossip 127.0.0.1:7946
//	go run ./examples/rpc -call -join 127.0.0.1:7946
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/rpc"
)

func main() {
	serve := flag.Bool("serve", false, "run only the node that serves the functions, until interrupted")
	call := flag.Bool("call", false, "run only the node that calls them (needs -join)")
	gossip := flag.String("gossip", "127.0.0.1:0", "the gossip address of this process's node")
	join := flag.String("join", "", "with -call: the gossip address of the serving node")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch {
	case *serve:
		err = runServer(ctx, *gossip, os.Stdout, nil)
	case *call:
		err = runCaller(ctx, *gossip, *join, os.Stdout)
	default:
		err = run(ctx, os.Stdout)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// run starts the serving node and the calling node in this process.
func run(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, "127.0.0.1:0", w, func(addr string) { ready <- addr }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		return err
	}
	err := runCaller(ctx, "127.0.0.1:0", addr, w)
	cancel()
	if serr := <-done; err == nil {
		err = serr
	}
	return err
}

func newNode(id, gossip string, join []string) (*node.Node, error) {
	return node.New(&node.Config{ID: id, BindAddr: "127.0.0.1:0", GossipAddr: gossip, Join: join})
}

// runServer runs the node "server" with its functions until ctx ends;
// ready, if not nil, gets its gossip address once it serves.
func runServer(ctx context.Context, gossip string, w io.Writer, ready func(addr string)) error {
	n, err := newNode("server", gossip, nil)
	if err != nil {
		return err
	}
	defer n.Close()
	n.Handle("greet", func(ctx context.Context, args []any) (any, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("greet takes a name, got %d arguments", len(args))
		}
		return fmt.Sprintf("hello %v, from %s", args[0], n.ID()), nil
	})
	// An idempotent method may be retried on another server if this one
	// dies before answering.
	n.HandleMethod(rpc.Method{Name: "add", Idempotent: true}, func(ctx context.Context, args []any) (any, error) {
		var sum int64
		for _, a := range args {
			i, ok := a.(int64)
			if !ok {
				return nil, fmt.Errorf("add takes integers, got %v", a)
			}
			sum += i
		}
		return sum, nil
	})
	if ready != nil {
		ready(n.GossipAddr())
	} else {
		fmt.Fprintf(w, "server: serving greet and add; join %s\n", n.GossipAddr())
	}
	<-ctx.Done()
	return nil
}

// runCaller runs the node "client", joined to join, calls the server's
// functions by name and prints what comes back.
func runCaller(ctx context.Context, gossip, join string, w io.Writer) error {
	if join == "" {
		return errors.New("-call needs -join, the gossip address of a serving node")
	}
	n, err := newNode("client", gossip, []string{join})
	if err != nil {
		return err
	}
	defer n.Close()

	// The registry reaches this node shortly after it joins: until then
	// nobody serves greet as far as it knows.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var res any
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		res, err = n.Call(ctx, "greet", "ada")
		if !errors.Is(err, rpc.ErrUnknownMethod) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no server of greet joined: %w", err)
		case <-time.After(pause):
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "client: greet(ada) = %q\n", res)
	sum, err := n.Call(ctx, "add", 1, 2, 39)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "client: add(1, 2, 39) = %v\n", sum)
	_, err = n.Call(ctx, "greet")
	fmt.Fprintf(w, "client: greet() failed: %v\n", err)
	_, err = n.Call(ctx, "nobody")
	fmt.Fprintf(w, "client: nobody() failed: %v\n", err)
	return nil
}

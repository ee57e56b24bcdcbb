package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/scuttle-go/scuttle/rpc"
)

// A server registers functions by name; a client on the other end of the
// connection calls them. Values arrive decoded as a model.Model decodes
// them: integers as int64, slices as []any.
func Example() {
	srv := rpc.NewServer(nil)
	srv.Handle("add", func(_ context.Context, args []any) (any, error) {
		var sum int64
		for _, a := range args {
			n, ok := a.(int64)
			if !ok {
				return nil, fmt.Errorf("%v is not an integer", a)
			}
			sum += n
		}
		return sum, nil
	})
	srv.Handle("words", func(_ context.Context, args []any) (any, error) {
		return strings.Fields(args[0].(string)), nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientConn, serverConn := net.Pipe() // or a net.Conn from net.Dial and Accept
	go srv.Serve(ctx, serverConn)
	cl := rpc.NewClient(clientConn, nil)
	defer cl.Close()

	sum, err := cl.Call(ctx, "add", 1, 2, 39)
	fmt.Printf("%v %T %v\n", sum, sum, err)
	words, err := cl.Call(ctx, "words", "to be or not")
	fmt.Printf("%q %T %v\n", words, words, err)
	_, err = cl.Call(ctx, "add", "one")
	fmt.Println(err)
	fmt.Println(errors.Is(err, rpc.ErrRemote))
	_, err = cl.Call(ctx, "subtract", 1, 2)
	fmt.Println(errors.Is(err, rpc.ErrUnknownMethod))
	// Output:
	// 42 int64 <nil>
	// ["to" "be" "or" "not"] []interface {} <nil>
	// rpc: remote error: add: one is not an integer
	// true
	// true
}

// The caller's deadline reaches the handler: its context ends when the
// caller stops waiting. Cancelling the caller's context does the same.
func ExampleClient_Call_deadline() {
	srv := rpc.NewServer(nil)
	handlerErr := make(chan error, 1)
	srv.Handle("wait", func(ctx context.Context, _ []any) (any, error) {
		<-ctx.Done() // a handler that would run too long watches ctx
		handlerErr <- ctx.Err()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientConn, serverConn := net.Pipe()
	go srv.Serve(ctx, serverConn)
	cl := rpc.NewClient(clientConn, nil)
	defer cl.Close()

	callCtx, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	defer stop()
	_, err := cl.Call(callCtx, "wait")
	// context.DeadlineExceeded itself, or, should the server's deadline
	// have passed first, a *RemoteError that wraps it.
	fmt.Println("caller:", errors.Is(err, context.DeadlineExceeded))
	fmt.Println("handler:", <-handlerErr)
	// Output:
	// caller: true
	// handler: context deadline exceeded
}

// A handler's error comes back with its message in a *RemoteError.
func ExampleRemoteError() {
	srv := rpc.NewServer(nil)
	srv.Handle("open", func(_ context.Context, args []any) (any, error) {
		return nil, fmt.Errorf("open %s: no such file", args[0])
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientConn, serverConn := net.Pipe()
	go srv.Serve(ctx, serverConn)
	cl := rpc.NewClient(clientConn, nil)
	defer cl.Close()

	_, err := cl.Call(ctx, "open", "/nope")
	var re *rpc.RemoteError
	if errors.As(err, &re) {
		fmt.Printf("method %q, message %q\n", re.Method, re.Message)
	}
	// Output:
	// method "open", message "open /nope: no such file"
}

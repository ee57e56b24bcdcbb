// Js-interop connects a Go replica to a JavaScript scuttlebutt@5.6.15 one
// (dominictarr's, on npm), over TCP, with the JSON-lines codec:
//
//	stream.NewConn(m, conn, &stream.Options{Codec: stream.JSONLines})
//
// Start the Node side (node.js here, or any Node service that pipes
// model.createStream() to a socket), then the Go side; either one may
// listen:
//
//	(cd interop && npm ci)                       # once: the pinned npm package
//	node examples/js-interop/node.js --listen 7000 &
//	go run ./examples/js-interop -connect 127.0.0.1:7000
//
//	go run ./examples/js-interop -listen 127.0.0.1:7001 &
//	node examples/js-interop/node.js --connect 7001
//
// The Go side sets "from-go", prints the merged state once synced, then
// prints every change the peer makes until interrupted; with -once it exits
// after the first sync. Both sides end up holding both keys.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
)

// timeout bounds a dial and a sync.
const timeout = 10 * time.Second

func main() {
	listen := flag.String("listen", "", "serve the replica on this address (Node connects)")
	connect := flag.String("connect", "", "connect to a Node replica listening on this address")
	id := flag.String("id", "go", "replica id")
	once := flag.Bool("once", false, "exit after the first sync instead of running until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *listen, *connect, *id, *once, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "js-interop:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, connect, id string, once bool, w io.Writer) error {
	if (listen == "") == (connect == "") {
		return errors.New("give -listen or -connect")
	}
	m, err := newReplica(id, once, w)
	if err != nil {
		return err
	}
	if connect != "" {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", connect)
		if err != nil {
			return err
		}
		return serve(ctx, m, conn, once, w)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "listening on", ln.Addr())
	return accept(ctx, ln, m, once, w)
}

// newReplica returns the Go replica, with "from-go" set and, unless once,
// a watcher that prints the peer's changes.
func newReplica(id string, once bool, w io.Writer) (*model.Model, error) {
	m, err := model.New(id, nil)
	if err != nil {
		return nil, err
	}
	if err := m.Set("from-go", map[string]any{"lang": "go", "pid": os.Getpid()}); err != nil {
		return nil, err
	}
	if !once {
		m.Watch(func(c model.Change) {
			if !c.Local {
				fmt.Fprintf(w, "change %s from %s: %s\n", c.Key, c.Source, jsonText(c.Value))
			}
		})
	}
	return m, nil
}

// accept serves m to every peer that connects to ln (with once, to the
// first one only) until ctx ends. It closes ln.
func accept(ctx context.Context, ln net.Listener, m *model.Model, once bool, w io.Writer) error {
	defer ln.Close()
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return ctx.Err()
		}
		if once {
			return serve(ctx, m, conn, once, w)
		}
		go serve(ctx, m, conn, once, w)
	}
}

// serve runs one session with the Node peer on conn.
func serve(ctx context.Context, m *model.Model, conn net.Conn, once bool, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := stream.NewConn(m, conn, &stream.Options{Codec: stream.JSONLines})
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Synced():
	case err := <-done:
		return fmt.Errorf("session ended before the sync: %v", err)
	case <-time.After(timeout):
		return errors.New("no sync within " + timeout.String())
	}
	fmt.Fprintf(w, "synced with %s: %s\n", c.Peer().ID, jsonText(m.Snapshot()))
	if once {
		cancel()
		<-done
		return nil
	}
	err := <-done
	fmt.Fprintf(w, "session with %s ended: %v\n", c.Peer().ID, err)
	return err
}

// jsonText formats v as JSON (encoding/json sorts map keys).
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

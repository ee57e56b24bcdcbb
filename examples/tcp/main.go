// Tcp shows a Model replicated over TCP.
//
// By default it runs both ends in one process: a server goroutine listens on
// 127.0.0.1, a client goroutine connects, each writes keys before and after
// the sync, and once both hold the same state it prints it and exits:
//
//	go run ./examples/tcp
//
// With a flag it runs one end per process. The listener serves every peer
// that connects, prints what they write, and runs until interrupted; a
// connector writes a key of its own, syncs once (each side receives what the
// other lacks), prints the merged state and exits:
//
//	go run ./examples/tcp -listen 127.0.0.1:7000
//	go run ./examples/tcp -connect 127.0.0.1:7000
//
// Run the connector several times: each run sees the keys of the ones before,
// which the listener kept.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// timeout bounds each wait: a dial, a sync, convergence.
const timeout = 10 * time.Second

func main() {
	listen := flag.String("listen", "", "serve the replica on this address until interrupted")
	connect := flag.String("connect", "", "sync once with the replica at this address and exit")
	id := flag.String("id", "", `replica id (default "listener", or "client-<pid>" with -connect)`)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := runFlags(ctx, *listen, *connect, *id, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcp:", err)
		os.Exit(1)
	}
}

func runFlags(ctx context.Context, listen, connect, id string, w io.Writer) error {
	switch {
	case listen != "" && connect != "":
		return errors.New("give -listen or -connect, not both")
	case listen != "":
		if id == "" {
			id = "listener"
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		return listenMode(ctx, ln, id, w)
	case connect != "":
		if id == "" {
			id = fmt.Sprintf("client-%d", os.Getpid())
		}
		return connectMode(ctx, connect, id, w)
	}
	return runLocal(ctx, w)
}

// runLocal runs a server and a client in this process, over TCP on
// 127.0.0.1, until both hold the same state, and prints it.
func runLocal(ctx context.Context, w io.Writer) error {
	server, _ := model.New("server", nil) // the ids are valid
	client, _ := model.New("client", nil)
	if err := server.Set("motd", "welcome"); err != nil {
		return err
	}
	if err := client.Set("greeting", "hello from the client"); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: deferred calls run last first
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { serve(ctx, ln, server, log.New(w, "server: ", 0)) })

	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	conn := stream.NewConn(client, nc, nil)
	done := make(chan error, 1)
	wg.Go(func() { done <- conn.Run(ctx) })
	select {
	case <-conn.Synced():
	case err := <-done:
		return fmt.Errorf("session ended before the sync: %v", err)
	case <-time.After(timeout):
		return errors.New("no sync within " + timeout.String())
	}
	fmt.Fprintln(w, "client: synced with the server over TCP")

	// Live updates, both ways, after the sync.
	if err := client.Set("live", "sent after the sync"); err != nil {
		return err
	}
	if err := server.Set("reply", "got it"); err != nil {
		return err
	}
	if err := waitEqual(ctx, server, client); err != nil {
		return err
	}
	fmt.Fprintln(w, "converged:")
	printState(w, "server", server)
	printState(w, "client", client)
	return nil
}

// printState prints m's keys and values, sorted, one per line.
func printState(w io.Writer, name string, m *model.Model) {
	fmt.Fprintf(w, "  %s: %d keys\n", name, m.Len())
	for _, k := range m.Keys() {
		v, _ := m.Get(k)
		fmt.Fprintf(w, "    %s = %q\n", k, v)
	}
}

// serve serves m to every peer that connects to ln until ctx ends, then
// closes ln and waits for the sessions to end. Sessions that fail are logged.
func serve(ctx context.Context, ln net.Listener, m *model.Model, logger *log.Logger) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			if err := stream.NewConn(m, nc, nil).Run(ctx); err != nil {
				logger.Printf("peer %s: %v", nc.RemoteAddr(), err)
			}
		})
	}
}

// listenMode serves a replica named id on ln and prints what peers write,
// until ctx ends.
func listenMode(ctx context.Context, ln net.Listener, id string, w io.Writer) error {
	m, err := model.New(id, nil)
	if err != nil {
		ln.Close()
		return err
	}
	if err := m.Set("hello/"+id, "hello from "+id); err != nil {
		ln.Close()
		return err
	}
	logger := log.New(w, "", 0)
	defer m.Watch(func(c model.Change) {
		if !c.Local {
			// c.Source is the writer's replica id and incarnation (a
			// random suffix per start): print the replica id alone.
			logger.Printf("got %s = %q (written by %s)", c.Key, c.Value, scuttlebutt.ReplicaID(c.Source))
		}
	})()
	logger.Printf("%s listening on %s; stop with Ctrl-C", id, ln.Addr())
	return serve(ctx, ln, m, logger)
}

// connectMode writes a key on a replica named id, syncs it once with the
// replica at addr, and prints the merged state.
func connectMode(ctx context.Context, addr, id string, w io.Writer) error {
	m, err := model.New(id, nil)
	if err != nil {
		return err
	}
	if err := m.Set("hello/"+id, "hello from "+id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn := stream.NewConn(m, nc, &stream.Options{OneShot: true})
	if err := conn.Run(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync with %s: %w", addr, err)
	}
	fmt.Fprintf(w, "synced with %s at %s\n", scuttlebutt.ReplicaID(conn.Peer().ID), addr) // the hello names the peer's source
	printState(w, id, m)
	return nil
}

// waitEqual waits until every model has the same clock, polling every
// millisecond, for at most timeout.
func waitEqual(ctx context.Context, ms ...*model.Model) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		equal := true
		for _, m := range ms[1:] {
			equal = equal && m.Clock().Compare(ms[0].Clock()) == vclock.Equal
		}
		if equal {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return errors.New("replicas did not converge within " + timeout.String())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

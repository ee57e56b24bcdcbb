// Package rpc calls functions in another process: a small request and
// response protocol over any io.ReadWriteCloser (a net.Conn, a net.Pipe,
// a yamux stream beside the documents of a session). One side registers
// handlers by name on a Server and serves a connection; the other makes
// calls on a Client of that connection. A connection carries many calls at
// once, each with its own id, and their replies come back in any order.
//
//	srv := rpc.NewServer(nil)
//	srv.Handle("add", func(ctx context.Context, args []any) (any, error) {
//		a, _ := args[0].(int64)
//		b, _ := args[1].(int64)
//		return a + b, nil
//	})
//	go srv.Serve(ctx, serverConn)
//
//	cl := rpc.NewClient(clientConn, nil)
//	defer cl.Close()
//	sum, err := cl.Call(ctx, "add", 1, 2) // int64(3), nil
//
// # Values
//
// Arguments and results are the values a model.Model holds, and are
// encoded and checked as it does (package internal/value): nil, bools,
// integers that fit in int64, finite floats, UTF-8 strings, []byte, and
// slices, arrays and string-keyed maps of these, nested at most 31 deep.
// The client checks each argument before it sends anything, and the server
// checks the result. Both are decoded as Model's Get decodes: integers as
// int64, floats as float64, maps as map[string]any, slices as []any, so
// an int argument reaches the handler as an int64 and a []string result
// comes back as a []any. Whatever a peer sends is checked, without
// decoding, before it is decoded.
//
// # Errors
//
// A call fails with
//
//   - a *RemoteError wrapping ErrRemote, with the handler's message, when
//     the handler returned an error or panicked (the server recovers and
//     serves on), or returned a result that is not a value;
//   - a *RemoteError wrapping ErrUnknownMethod when the server has no
//     handler of the name, or ErrBusy when it had as many calls running on
//     the connection as it allows (the call did not run);
//   - ctx.Err() when the caller's context ends first (context.Canceled or
//     context.DeadlineExceeded; a deadline the server's bound ended wraps
//     context.DeadlineExceeded too);
//   - an error wrapping ErrClosed when the connection ends before the
//     reply: Close, the peer going away, or the peer breaking the
//     protocol (the cause is wrapped too). A call that was sent may have
//     run.
//
// Server.Invoke calls a handler in process as a Client would over a
// connection, with the same conversions, bounds and errors, for a program
// that serves some calls itself (package node does).
//
// # Cancellation and deadlines
//
// The caller's context reaches the handler's. A call whose context is
// cancelled returns at once, and the client sends a cancel frame: the
// server cancels the handler's context (context.Cause says the caller
// cancelled). A deadline travels with the call as a timeout, so the
// handler's context ends when the caller stops waiting; the server bounds
// it by ServerConfig.MaxTimeout (1 minute by default), which also applies
// to calls without one. Handlers must watch their context for either to
// take effect: Go cannot stop a goroutine from outside.
//
// # Concurrency
//
// The methods of Client and Server are safe for concurrent use. Each
// connection has one reader and one writer goroutine, on either side: the
// writer gathers the frames queued while it was writing into one Write.
// The server runs each call in a goroutine of its own, at most
// ServerConfig.MaxInflight (1024) at once per connection, and answers
// calls past that with ErrBusy at once. The client's reader hands each
// reply to its caller without waiting, so a slow caller holds up no other.
//
// When a connection ends, the first error is the one reported: Serve
// returns it, and the client's pending calls and Err wrap it. Serve
// returns once its goroutines have ended, having cancelled the contexts of
// the calls still running; it does not wait for their handlers, whose
// results are dropped. Client.Close returns once the client's goroutines
// have ended.
//
// # Bounds
//
// Everything a peer sends is bounded before it is used: frames by
// MaxFrameSize (1 MiB by default, refused before the body is read), method
// names by MaxNameLen (256 bytes), values by the Model rules, calls running
// by MaxInflight, call ids by uniqueness among the calls running (the
// client numbers its calls 1, 2, 3, ...). A peer that breaks a bound, or
// sends a frame that does not parse, ends the connection with an error
// wrapping ErrMalformed, ErrUnknownKind, ErrProtocol,
// stream.ErrFrameTooLarge or stream.ErrTruncated. A peer that stops
// reading ends it after WriteTimeout (10 s by default), on a connection
// that has a SetWriteDeadline method.
//
// # Wire format
//
// Frames have the header of package stream (one byte of kind, a big-endian
// uint32 body length) and a CBOR array for a body: call, result, error and
// cancel. SPEC.md in this directory specifies them, with example bytes
// that the tests check.
package rpc

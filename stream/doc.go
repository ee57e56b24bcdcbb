// Package stream serves replicas over byte streams: any io.ReadWriter, such
// as a net.Conn, a net.Pipe, a pipe to a child process or a file.
//
// A Conn serves one replica to one peer:
//
//	c := stream.NewConn(m, conn, nil) // m: a *model.Model, or your own type
//	go func() { errc <- c.Run(ctx) }()
//	<-c.Synced() // both histories exchanged; live updates flow from here on
//
// Run owns the session's scuttlebutt.Link: its goroutine is the only one
// that touches it, in one select loop, as raft's node.run owns its state.
// I/O and waiting happen in three places:
//
//   - The reader goroutine blocks in Read. It decodes frames and hands the
//     messages to the loop over a channel, a few ahead.
//   - The writer goroutine blocks in Write. It encodes and writes the
//     batches the loop hands it, one at a time.
//   - The loop blocks only in Link.Step, which waits until the replica's
//     Storage has synced what the message applied and runs AfterApply.
//     Link.Ready never waits; the loop hands what it returns to the writer
//     when the writer is idle, and otherwise keeps receiving.
//
// So a Step that waits on the disk stops neither the reader nor the close
// of the connection when ctx ends, and two peers writing to each other at
// once never deadlock, even over net.Pipe, which buffers nothing.
//
// Run returns nil when ctx ends, the peer closes cleanly, or a one-shot sync
// completes; any other end is an error that wraps its cause, for errors.Is.
// Input from the peer is bounded: frames over Options.MaxFrameSize are
// refused before their body is read, and the CBOR decoder limits nesting,
// array and map sizes. A bad frame ends the session and applies nothing.
//
// Pipe connects two in-process replicas and returns once they are synced.
//
// # Wire format
//
// Each message is a frame: one byte of message kind, a big-endian uint32
// body length, and a CBOR body. A hello, sync or clock message whose clock
// is larger than a frame goes as clock parts followed by the message with
// the rest of its clock; the receiver joins them, within the replica's
// Config.MaxSources.
//
// Version 2 of the protocol, the default, sends updates in a compact
// encoding: each source id once per session, then a table index; each
// timestamp as a step from the last of its source (a logical tick or a
// millisecond), in full where no step says it exactly. A run of one
// source's updates costs one byte an update beyond its data, against 28
// in version 1 for a 17-byte source id. A hello offers it, in a field a
// version-1 peer ignores, and each side uses it once the peer's hello
// offers it too, so a version-1 peer still works (Options.Version makes a
// side speak version 1 only). Options.Compress offers zstd compression of
// large frames the same way. SPEC.md in this directory specifies the
// kinds, their fields, versioning and limits.
package stream

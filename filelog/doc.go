// Package filelog makes a replica durable: it keeps every update the
// replica applies, local or from a peer, in an append-only file, and
// replays the file when the replica restarts, so that the replica comes
// back after kill -9, a power cut or a full disk with every update it
// acknowledged, its clock, and a timestamp generator that never reuses a
// timestamp, and then catches up with its peers from where it stopped.
//
// It works with any type built on *scuttlebutt.Scuttlebutt (a model.Model,
// your own type) through the base's scuttlebutt.Storage hook.
//
// # Using it
//
//	m, err := model.New("replica-1", nil)
//	if err != nil {
//		return err
//	}
//	log, err := filelog.Open("replica-1.log", m, nil) // replays, then attaches
//	if err != nil {
//		return err
//	}
//	defer log.Close()
//	err = m.Set("k", 1) // returns once the update is on disk
//
// The caller's obligations:
//
//  1. Open the log on a new document, before writing to it or serving it
//     to peers. (If the document already holds updates, Open compacts the
//     log at once so that it holds them too.)
//  2. Give each replica its own file and keep its id: Open refuses a log
//     written by another id (ErrWrongReplica), and a log open in another
//     Log (ErrLocked).
//  3. Close the log when done. After Close, writes to the document fail
//     with ErrClosed; Attach(nil) on the document to go on without a log.
//  4. After ErrFailed (a write or fsync failed: disk full, I/O error), the
//     log accepts nothing more; Close it and Open the file again.
//
// A process with more logs than it may hold file descriptors gives them
// one Files (Config.Files): the least recently used logs past its bound
// close their files, after an fsync of what is written but not yet
// synced, and open them again at their next write. Their lock on the
// file goes with it meanwhile: use it where something else keeps other
// processes away (see Files).
//
// # What is durable when
//
// The document appends each update to the log before applying it and
// before its timestamp can appear in any clock it sends (durability before
// advertising). A local update (Model.Set...) is applied, and so visible,
// only once the log says it is durable, and LocalUpdate returns then. What
// durable means is Config.Sync:
//
//   - SyncAlways (the default): written and fsynced. Nothing acknowledged
//     is lost, even in a power cut. Writers that arrive while an fsync is
//     in progress wait for the next one, which covers them all (group
//     commit), so throughput grows with concurrent writers.
//   - SyncInterval: written to the operating system, fsynced within
//     Config.Interval. A crash of the process loses nothing; a crash of
//     the machine loses at most the last Interval of acknowledged updates,
//     which peers may already hold (the replica gets them back from them).
//   - SyncNever: written to the operating system, fsynced only by Compact
//     and Close. A crash of the process loses nothing; a crash of the
//     machine loses what the kernel had not written back.
//
// Under every policy, a write or fsync error is returned by the writes
// waiting for it, and the log fails for good (ErrFailed), so that the
// document never reports as durable an update that is not.
//
// # Recovery
//
// Open reads the whole log twice: once to check every record, once to
// apply them. It distinguishes what a crash leaves from damage:
//
//   - A torn tail (the last record cut short, a last record whose payload
//     checksum fails with nothing but zeros after it, or a zero-filled
//     tail: what a crash in the middle of a write leaves) is cut off, and
//     its size reported in Stats.Truncated and logged. Under SyncAlways it
//     holds nothing that was acknowledged.
//   - Anything else (a record header whose checksum fails, a bad record
//     followed by more data, a record that does not decode) is damage:
//     Open fails with ErrCorrupt naming the file and the offset, and
//     changes nothing, unless Config.Repair is set, in which case it cuts
//     the log there and reports the bytes it dropped.
//
// Open replays the updates with the document's Replay, which defers the
// type's AfterApply to the Attach that follows (so a type that writes from
// AfterApply, like package lock, writes nothing mid-replay and logs what
// it writes), and restores each clock record with RestoreClock where it
// stands in the log. That brings back the document's state and clock, and
// its hybrid logical clock observes every timestamp in the log, so that
// the next local timestamp is after the largest one logged, or recorded
// in a clock, even if the wall clock is now behind it. (The document
// refuses timestamps further ahead of its wall clock than its
// scuttlebutt.Config.MaxClockOffset, its own logged ones too: if the clock
// went back further than that, Open fails with an error wrapping
// scuttlebutt.ErrClockOffset and leaves the file alone.)
//
// Each start of a replica stamps its updates with a source of its own
// (the replica id and a new incarnation, see package scuttlebutt), so the
// log holds the updates of every start, each under its source, and the
// clock it restores names them all.
//
// # Compaction
//
// A log grows with every write; the document's history (History of the
// empty clock) only with what is live: for a Model, one update per key.
// Once the log holds more than Config.CompactRatio times as many records
// as the history (and at least Config.CompactMin), a background goroutine
// rewrites it: the history into "<log>.compact", then the document's clock
// (taken just before the history) if it knows more than the history shows,
// then the records appended meanwhile (from the first local update that
// was still waiting for its fsync, and so not in the history yet), fsync,
// rename over the log, fsync the directory. The clock keeps what the history leaves out (an emitter's
// events past retention, a model's superseded writes) from being asked
// for again, or its timestamps reused, after a restart. A crash at
// any point leaves either the old log or the new one; Open removes a
// leftover temporary file. Writers are held back only for the last steps
// (the tail, fsync and rename). Compact runs one on demand.
//
// # File format
//
// All integers are big-endian; checksums are CRC-32C (Castagnoli). The
// file starts with a header:
//
//	offset  size  field
//	0       8     magic "\x89SCTLOG\n"
//	8       2     format version, 2 (Open also reads 1)
//	10      2     n, length of the replica id in bytes (1 to 128)
//	12      n     replica id, UTF-8
//	12+n    4     CRC-32C of bytes 0 to 12+n
//
// Records follow, back to back, each an update or a clock:
//
//	offset  size  field
//	0       4     length of the payload in bytes, 1 to Config.MaxRecordSize
//	4       4     CRC-32C of the payload
//	8       4     CRC-32C of bytes 0 to 8 (the header's own checksum)
//	12      len   payload
//
// An update record's payload is the update as package stream encodes it
// in a frame: the CBOR array [source (text), timestamp, data (one CBOR
// item, as the replicated type wrote it), signature (bytes, only if the
// update has one)].
//
// A clock record's payload (version 2 only) is a CBOR map (major type 5)
// from source (text) to timestamp, sources in increasing order: the
// replica held everything up to that clock. A clock too large for one
// record is split over several, which replay merges. Compaction writes
// one after the history when the clock knows more than the history shows;
// Close writes one when the document's clock knows more than the log
// holds (a peer's clock message advanced it).
//
// Timestamps, in both kinds of record, follow stream/SPEC.md's one rule:
// this package writes a float64 (major type 7 with additional information
// 27), always, and reads a float of any width or an integer, positive and
// finite; a record with another timestamp does not decode.
//
// Update records appear in the order the replica applied them, so per
// source in increasing timestamp order; after a compaction, the history
// comes first, sorted by (timestamp, source), then the clock records, and
// the tail may repeat some of the records before it. Replay skips what the
// clock already covers, so duplicates are harmless. A version 1 log (no
// clock records) is read, and appended to in version 1, until a
// compaction rewrites it in version 2. A new format version will get a new
// version number; this package refuses versions it does not know
// (ErrVersion).
package filelog

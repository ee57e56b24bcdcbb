package filelog

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// compactSuffix names the temporary file a compaction writes next to the
// log before renaming it over the log.
const compactSuffix = ".compact"

// Replay batches: updates handed to Replay at once.
const (
	replayBatch      = 4096
	replayBatchBytes = 4 << 20
)

// maxSpare is the largest write buffer kept for reuse.
const maxSpare = 4 << 20

// Log is an append-only file of a replica's updates: the
// scuttlebutt.Storage that Open attaches to a document. All methods are safe
// for concurrent use.
//
// Lock order: compactMu, then the document's lock, then mu. Append runs
// under the document's lock and takes mu; nothing waits for the document's
// lock or for the disk while holding mu.
type Log struct {
	path   string
	cfg    Config
	doc    *scuttlebutt.Scuttlebutt
	source string                // doc.Source(): the source of its local updates
	val    scuttlebutt.Validator // doc's, nil if it has none
	grower Grower                // doc, if it is one
	log    *slog.Logger

	compactMu sync.Mutex // one compaction (or Close) at a time

	// files is cfg.Files, which bounds the open files (nil: no bound);
	// elem is l in files.lru, guarded by files.mu.
	files *Files
	elem  *list.Element

	mu   sync.Mutex // guards the fields below
	cond sync.Cond  // broadcast when flushing ends
	// f is the log file. Only the holder of the flushing role writes it,
	// syncs it or replaces it, and may do so without mu. It is nil while
	// Files keeps it closed (acquire opens it again).
	f        *os.File
	flushing bool   // a writer (a Sync leader, the flusher, a compaction) has the role
	size     int64  // bytes written to f: header and records
	end      int64  // size, plus the bytes being written, plus len(buf)
	buf      []byte // records appended and not yet written
	spare    []byte // a spent buf, for reuse
	seq      uint64 // sequence number of the last record appended
	written  uint64 // sequence number of the last record written to f
	synced   uint64 // sequence number of the last record fsynced
	records  int64  // records in f and buf
	version  uint16 // f's format version: clock records need 2
	// logged is the clock that replaying f and buf would restore: the
	// updates and clocks they hold. Close records the document's clock
	// if it knows more.
	logged vclock.Clock
	err    error // sticky: ErrFailed with its cause, then ErrClosed
	closed bool
	check  int64 // records at which the compactor looks again
	stats  Stats
	// local lists the document's own local updates appended since a
	// compaction last found them applied, oldest first, at most maxLocal:
	// the document applies a local update only once Sync has made it
	// durable, so a record can be in the log before the clock and history
	// show it (see compactLocked). lost is the oldest of the ones dropped
	// to keep to maxLocal since, if any.
	local []localRecord
	lost  *localRecord

	stop chan struct{} // closed by Close
	kick chan struct{} // capacity 1: wakes the compactor
	wg   sync.WaitGroup
}

var _ scuttlebutt.Storage = (*Log)(nil)

// maxLocal bounds Log.local. Only local updates whose Sync has not
// returned to their writer can be unapplied, so the entries past a few
// group commits are applied: dropping them costs a compaction only when
// more than maxLocal writers are waiting for one, and then only copying
// more of the old log than it needs to.
const maxLocal = 4096

// localRecord is where one local update's record is in the log.
type localRecord struct {
	off int64            // its offset in the file
	n   int64            // the records before it
	ts  vclock.Timestamp // its timestamp; the source is the document's
}

// Stats describes a Log.
type Stats struct {
	// Records is how many records the log holds, written or buffered,
	// superseded and duplicate ones included.
	Records int64
	// Bytes is the log's size in bytes, header and buffered records
	// included.
	Bytes int64
	// Truncated is how many bytes Open cut off the end of the file: a
	// torn tail, or with Config.Repair, everything from the damage on.
	Truncated int64
	// Appended is how many records have been appended since Open.
	Appended uint64
	// Syncs is how many times the log has been fsynced since Open. Under
	// SyncAlways, Appended/Syncs is the average group commit.
	Syncs int64
	// Compactions is how many compactions have completed since Open.
	Compactions int
}

// Grower is implemented by documents that can make room for n more
// updates at once (model.Model presizes its key index). Open calls it with
// the number of records before it replays them, so a large log is not
// replayed into a structure that grows step by step.
type Grower interface {
	Grow(n int)
}

// Open opens the log at path for doc, creating it if it does not exist,
// replays it into doc, and attaches itself as doc's storage, so that every
// update doc applies from then on is appended. Call it before doc is
// written to or served to peers. A nil cfg means DefaultConfig.
//
// Open fails with ErrLocked if the log is open elsewhere, ErrWrongReplica
// if it was written by a replica with another id, ErrVersion for a format
// it does not read, and ErrCorrupt, naming the file and offset, for damage
// a crash cannot explain; in those cases it changes neither the file nor
// doc. (It checks every update as doc will before applying any; the one
// update it cannot check is one larger than doc's MaxUpdateSize, if that
// was lowered since the update was logged: then the updates before it stay
// applied. Pass the replicated type itself, not its Base(), so that a
// Grower is found.) A torn tail, what a crash leaves, is cut off and
// reported in Stats.Truncated.
//
// Open also fails, with an error wrapping scuttlebutt.ErrClockOffset, if
// the log holds a timestamp further ahead of doc's wall clock than its
// Config.MaxClockOffset: the clock went back since the update was logged.
// It checks that before it replays anything (Scuttlebutt.CheckClock), so
// the file and doc are left as they were; set the clock right and open it
// again.
//
// If doc already held updates when Open was called, the log is then
// compacted, so that it holds them too.
func Open(path string, doc scuttlebutt.Document, cfg *Config) (*Log, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	base := doc.Base()
	l := &Log{
		path:   path,
		cfg:    c,
		doc:    base,
		source: base.Source(),
		log:    c.Logger.With("log", path),
		stop:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
	l.cond.L = &l.mu
	l.val = base.Validator()
	l.grower, _ = doc.(Grower)
	held := len(base.Clock()) > 0
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l.tighten(f)
	if err := l.load(f); err != nil {
		f.Close()
		return nil, err
	}
	l.f = f
	l.files = c.Files
	if l.files != nil {
		l.files.use(l)
	}
	l.check = int64(c.CompactMin)
	base.Attach(l)
	if c.Sync == SyncInterval {
		l.wg.Add(1)
		go l.flusher()
	}
	if c.CompactRatio > 0 {
		l.wg.Add(1)
		go l.compactor()
		if l.records >= l.check {
			l.poke()
		}
	}
	if held {
		if err := l.Compact(); err != nil {
			l.Close()
			base.Attach(nil)
			return nil, err
		}
	}
	return l, nil
}

// FileMode is the permission of the log files Open and compaction create:
// readable and writable by the owner only, for a log holds every value
// of its document.
const FileMode = 0o600

// tighten takes the permissions of group and others away from an existing
// log file that has them (it was created by an older version, or by hand),
// and warns; a file it cannot change is left as it is, with a warning.
func (l *Log) tighten(f *os.File) {
	fi, err := f.Stat()
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	old := fi.Mode().Perm()
	if err := f.Chmod(old &^ 0o077); err != nil {
		l.log.Warn("log file is readable by others and cannot be changed", "mode", old.String(), "err", err)
		return
	}
	l.log.Warn("log file was readable by others: permissions tightened", "was", old.String(), "now", (old &^ 0o077).String())
}

// openFile opens (or creates) the log file and locks it. A compaction in
// another process may rename a new file over path between the open and the
// lock: then the locked file is no longer the log, and it tries again.
func openFile(path string) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
		if err != nil {
			return nil, err
		}
		if err := lockFile(f); err != nil {
			f.Close()
			if errors.Is(err, ErrLocked) {
				return nil, fmt.Errorf("%w: %s", ErrLocked, path)
			}
			return nil, fmt.Errorf("filelog: locking %s: %w", path, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if cur, err := os.Stat(path); err == nil && os.SameFile(fi, cur) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("%w: %s keeps being replaced", ErrLocked, path)
}

// load checks the header of f, creating it for a new log, replays the
// records into the document, and cuts off a torn tail. It runs before the
// Log is shared.
func (l *Log) load(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	// A compaction that crashed before its rename leaves its temporary
	// file; the lock on the log guards that name too.
	if err := os.Remove(l.path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	want := appendFileHeader(nil, l.doc.ID())
	head := make([]byte, min(size, int64(maxHeaderSize)))
	if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
		return err
	}
	fresh := size == 0 ||
		(size < int64(len(want)) && bytes.Equal(head, want[:size])) // a torn creation
	if !fresh && allZero(head) {
		z, err := newScanner(f, 0, size, 1).zeroStart()
		if err != nil {
			return err
		}
		fresh = z == 0 // a creation the filesystem zero-filled
	}
	if fresh {
		if err := l.create(f, want); err != nil {
			return err
		}
		l.size, l.end = int64(len(want)), int64(len(want))
		l.version, l.logged = formatVersion, vclock.Clock{}
		return nil
	}
	id, version, hlen, err := parseFileHeader(head)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, l.path)
	}
	if id != l.doc.ID() {
		return fmt.Errorf("%w: %s holds the updates of %q, not %q", ErrWrongReplica, l.path, id, l.doc.ID())
	}
	l.version = version

	// First pass: find where the good records end, applying nothing, so
	// that a corrupt log leaves the document as it was.
	end, records, latest, bad, err := l.verify(f, int64(hlen), size)
	if err != nil {
		return err
	}
	if bad != nil && !bad.torn && !l.cfg.Repair {
		return fmt.Errorf("%w: %s: %v; Config.Repair truncates the log there", ErrCorrupt, l.path, bad)
	}
	// The timestamps too are checked before anything is applied: a wall
	// clock that went back by more than the document's offset bound since
	// they were written leaves the document as it was.
	if err := l.doc.CheckClock(latest); err != nil {
		return fmt.Errorf("filelog: %s: %w", l.path, err)
	}
	// Second pass: apply them, into a document that has made room.
	if l.grower != nil && records > 0 {
		l.grower.Grow(int(records))
	}
	if err := l.replay(f, int64(hlen), end); err != nil {
		return err
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("filelog: truncating %s: %w", l.path, err)
		}
		if err := fdatasync(f); err != nil {
			return fmt.Errorf("filelog: truncating %s: %w", l.path, err)
		}
		what := "torn tail"
		if !bad.torn {
			what = "damaged records (Repair)"
		}
		l.log.Warn("filelog: cut off "+what, "offset", end, "bytes", size-end, "reason", bad.reason)
		l.stats.Truncated = size - end
	}
	l.size, l.end = end, end
	l.records = records
	l.logged = l.doc.Clock() // all it holds: the document was new
	return nil
}

// create writes a new log's header and makes the file's existence durable.
func (l *Log) create(f *os.File, header []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(header, 0); err != nil {
		return err
	}
	if err := fdatasync(f); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("filelog: %s: syncing the directory: %w", l.path, err)
	}
	return nil
}

// verify reads every record from off to size and returns where the
// readable records end, how many there are, and the first bad record, if
// any. A record whose checksum holds but whose payload does not decode is
// bad and never torn.
// It also returns a clock of the timestamps to check against the
// document's bounds: every entry of the clock records, and the latest
// update (one entry is enough: the bound is the same for every source).
func (l *Log) verify(f io.ReaderAt, off, size int64) (end, records int64, latest vclock.Clock, bad *badRecord, err error) {
	s := newScanner(f, off, size, l.cfg.MaxRecordSize)
	var d decoder
	latest = vclock.Clock{}
	var top scuttlebutt.Update // the latest update
	defer func() {
		if top.Timestamp > 0 {
			latest.Advance(top.Source, top.Timestamp)
		}
	}()
	for {
		p, at, err := s.next()
		switch {
		case err == io.EOF:
			return s.off, records, latest, nil, nil
		case errors.As(err, &bad):
			return s.off, records, latest, bad, nil
		case err != nil:
			return 0, 0, nil, nil, fmt.Errorf("filelog: %s: %w", l.path, err)
		}
		if isClockRecord(p) {
			var c vclock.Clock
			if l.version < 2 {
				err = fmt.Errorf("a clock record in a version %d log", l.version)
			} else {
				c, err = decodeClock(p)
			}
			if err != nil {
				return at, records, latest, &badRecord{off: at, reason: "undecodable clock: " + err.Error()}, nil
			}
			latest.Merge(c)
			records++
			continue
		}
		u, err := d.decode(p)
		if err == nil {
			err = l.validate(u)
		}
		if err != nil {
			return at, records, latest, &badRecord{off: at, reason: "undecodable update: " + err.Error()}, nil
		}
		if u.Timestamp > top.Timestamp {
			top = scuttlebutt.Update{Source: u.Source, Timestamp: u.Timestamp}
		}
		records++
	}
}

// validate checks u as the document's Validator will, so that verify finds
// what the document would refuse before anything is applied; decode has
// checked the rest (wire.Decoder), and Replay checks sources, timestamps
// and sizes again but not Data. (Only a lower
// scuttlebutt.Config.MaxUpdateSize than when u was logged escapes verify.)
func (l *Log) validate(u scuttlebutt.Update) error {
	if l.val != nil {
		if err := l.val.ValidateUpdate(u); err != nil {
			return err
		}
	}
	return nil
}

// replay applies the records from off to end, which verify has read, to
// the document in batches, with Replay, and restores the clocks they
// record with RestoreClock, each where it stands in the log. A goroutine
// reads and decodes the next batch while the document applies the current
// one.
func (l *Log) replay(f io.ReaderAt, off, end int64) error {
	type batch struct {
		us    []scuttlebutt.Update
		offs  []int64
		clock vclock.Clock // restored after us
		err   error
	}
	batches := make(chan batch, 2)
	free := make(chan batch, 3) // spent batches, for reuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		defer close(batches)
		s := newScanner(f, off, end, l.cfg.MaxRecordSize)
		d := decoder{keep: true}
		var b batch
		size := 0
		send := func() bool {
			select {
			case batches <- b:
				b, size = batch{}, 0
				return true
			case <-done:
				return false
			}
		}
		for {
			p, at, err := s.next()
			switch {
			case err == io.EOF:
				if len(b.us) > 0 {
					send()
				}
				return
			case err != nil:
				b.err = fmt.Errorf("filelog: %s: %w", l.path, err) // the file changed under us
				send()
				return
			}
			if isClockRecord(p) {
				c, err := decodeClock(p)
				if err != nil {
					b.err = fmt.Errorf("%w: %s: offset %d: %v", ErrCorrupt, l.path, at, err)
					send()
					return
				}
				b.clock = c
				if !send() {
					return
				}
				continue
			}
			u, err := d.decode(p)
			if err != nil {
				b.err = fmt.Errorf("%w: %s: offset %d: %v", ErrCorrupt, l.path, at, err)
				send()
				return
			}
			if b.us == nil {
				select {
				case b = <-free:
				default:
					b.us = make([]scuttlebutt.Update, 0, replayBatch)
					b.offs = make([]int64, 0, replayBatch)
				}
			}
			b.us = append(b.us, u)
			b.offs = append(b.offs, at)
			if size += len(p); len(b.us) == replayBatch || size >= replayBatchBytes {
				if !send() {
					return
				}
			}
		}
	})
	for b := range batches {
		if len(b.us) > 0 {
			if _, err := l.doc.Replay(b.us...); err != nil {
				if !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
					// Not damage: the document refuses the log as it
					// stands, typically a timestamp past its bound on
					// clock offsets (ErrClockOffset: the wall clock went
					// back since it was logged).
					return fmt.Errorf("filelog: %s: replaying: %w", l.path, err)
				}
				// Replay applied none of the batch: find the culprit.
				for i, u := range b.us {
					if _, err := l.doc.Replay(u); err != nil {
						return fmt.Errorf("%w: %s: offset %d: %w", ErrCorrupt, l.path, b.offs[i], err)
					}
				}
				return err
			}
		}
		if b.clock != nil {
			if err := l.doc.RestoreClock(b.clock); err != nil {
				return fmt.Errorf("filelog: %s: a clock record: %w", l.path, err)
			}
		}
		if b.err != nil {
			return b.err
		}
		if b.us == nil {
			continue
		}
		clear(b.us) // the document keeps the updates, not the slice
		select {
		case free <- batch{us: b.us[:0], offs: b.offs[:0]}:
		default:
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Append implements scuttlebutt.Storage: it encodes updates into the
// write buffer and returns the sequence number of the last one. It does no
// I/O; Sync writes the buffer. It fails, appending nothing, with ErrClosed
// after Close, with ErrFailed after a write error, and with ErrTooLarge.
func (l *Log) Append(updates []scuttlebutt.Update) (seq uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("%w: %s", ErrClosed, l.path)
	}
	if l.err != nil {
		return 0, l.err
	}
	n := len(l.buf)
	for _, u := range updates {
		if l.buf, err = appendRecord(l.buf, u, l.cfg.MaxRecordSize); err != nil {
			l.buf = l.buf[:n]
			return 0, err
		}
	}
	at := n // the first record's place in buf; the next ones follow
	for i, u := range updates {
		l.logged.Advance(u.Source, u.Timestamp)
		if u.Source == l.source {
			l.noteLocal(localRecord{off: l.end + int64(at-n), n: l.records + int64(i), ts: u.Timestamp})
		}
		at += sizeOfRecordHeader + int(recordHeader(l.buf[at:]).Length())
	}
	l.end += int64(len(l.buf) - n)
	l.seq += uint64(len(updates))
	l.records += int64(len(updates))
	l.stats.Appended += uint64(len(updates))
	if l.records >= l.check {
		l.poke()
	}
	return l.seq, nil
}

// Sync implements scuttlebutt.Storage: it returns once every record up to
// seq is written to the file and, under SyncAlways, fsynced. Concurrent
// callers share the work: one of them (the leader) writes and fsyncs
// everything appended so far while the others wait for it, then the next
// leader takes what was appended meanwhile (group commit).
func (l *Log) Sync(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.seq {
		return fmt.Errorf("filelog: Sync(%d) past the last record appended, %d", seq, l.seq)
	}
	for {
		if l.reached(seq) {
			return nil
		}
		if l.err != nil {
			return l.err
		}
		if !l.flushing {
			l.flushLocked(l.cfg.Sync == SyncAlways)
			continue
		}
		l.cond.Wait()
	}
}

// reached reports whether seq is as durable as the policy makes writes
// before they return.
func (l *Log) reached(seq uint64) bool {
	if l.cfg.Sync == SyncAlways {
		return l.synced >= seq
	}
	return l.written >= seq
}

// flushLocked takes the flushing role, writes the buffer to the end of the
// file and, if fsync is set, fsyncs it, with mu released during the I/O. A
// failure makes the log fail for good: the records were applied but are
// not durable, so nothing after them may be either.
func (l *Log) flushLocked(fsync bool) {
	l.flushing = true
	buf, seq, off := l.buf, l.seq, l.size
	l.buf, l.spare = l.spare[:0], nil
	l.mu.Unlock()

	f, err := l.acquire()
	if err == nil && len(buf) > 0 {
		_, err = f.WriteAt(buf, off)
	}
	if err == nil && fsync {
		start := time.Now()
		err = fdatasync(f)
		if err == nil && l.cfg.OnSync != nil {
			l.cfg.OnSync(time.Since(start))
		}
	}
	if err != nil && f != nil && len(buf) > 0 {
		_ = f.Truncate(off) // best effort: drop a partial record
	}

	l.mu.Lock()
	l.flushing = false
	l.cond.Broadcast()
	if cap(buf) <= maxSpare {
		l.spare = buf[:0]
	}
	if err != nil {
		l.fail(err)
		return
	}
	l.size += int64(len(buf))
	l.written = seq
	if fsync {
		l.synced = seq
		l.stats.Syncs++
	}
}

// noteLocal adds r to l.local, dropping the oldest half if it is full.
// Called with mu held.
func (l *Log) noteLocal(r localRecord) {
	if len(l.local) == maxLocal {
		if l.lost == nil {
			lost := l.local[0]
			l.lost = &lost
		}
		l.local = l.local[:copy(l.local, l.local[maxLocal/2:])]
	}
	l.local = append(l.local, r)
}

// fail records a write error for good. Called with mu held.
func (l *Log) fail(err error) {
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrFailed, err)
		l.log.Error("filelog: write failed; the log accepts no more updates", "err", err)
	}
}

// flusher fsyncs the log every Interval under SyncInterval.
func (l *Log) flusher() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if !l.flushing && l.err == nil && l.synced < l.seq {
			l.flushLocked(true)
		}
		l.mu.Unlock()
	}
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Records = l.records
	s.Bytes = l.end
	return s
}

// Path returns the log file's path.
func (l *Log) Path() string { return l.path }

// Close writes and fsyncs what is buffered, stops the Log's goroutines and
// closes the file. It waits for a compaction in progress. If the
// document's clock knows more than the log holds (a peer's clock told it
// of updates it no longer needs), Close records the clock in the log, so
// call it while the Log is still the document's storage.
// Sync calls waiting for records Close could not write return its error. The Log stays
// attached to the document, so that writes to it fail with ErrClosed
// rather than go unlogged: attach another storage, or nil to go on in
// memory only. Close returns the error that made the log fail (ErrFailed),
// if any, and ErrClosed if the Log was already closed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrClosed, l.path)
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()

	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	// Nothing is appended from now on, so every update the clock covers is
	// in the log already, or reached the clock without an update.
	clock := l.doc.Clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.flushing {
		l.cond.Wait()
	}
	if l.err == nil && l.version >= 2 && !covers(l.logged, clock) {
		if buf, n, err := appendClockRecords(l.buf, clock, l.cfg.MaxRecordSize); err == nil {
			l.records += int64(n)
			l.end += int64(len(buf) - len(l.buf))
			l.buf = buf
			l.seq++ // so that it is flushed
			l.logged.Merge(clock)
		}
	}
	if l.err == nil && l.synced < l.seq {
		l.flushLocked(true)
	}
	err := l.err
	if l.f != nil {
		if cerr := l.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("filelog: closing %s: %w", l.path, cerr)
		}
		l.f = nil
	}
	if l.files != nil {
		l.files.forget(l)
	}
	if l.err == nil {
		l.err = fmt.Errorf("%w: %s", ErrClosed, l.path)
	}
	l.cond.Broadcast()
	return err
}

// covers reports whether clock a covers every entry of b.
func covers(a, b vclock.Clock) bool {
	for src, t := range b {
		if !a.Covers(src, t) {
			return false
		}
	}
	return true
}

// poke wakes the compactor, if it runs. Called with mu held.
func (l *Log) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

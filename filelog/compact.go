package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// The steps of a compaction, in order, as testHookCompact sees them.
const (
	stepCreate  = "create"  // the temporary file exists, empty
	stepHistory = "history" // the history is written to it, not synced
	stepTail    = "tail"    // the records appended meanwhile are written too
	stepSync    = "sync"    // it is fsynced
	stepRename  = "rename"  // it is renamed over the log
	stepDirSync = "dirsync" // the directory is fsynced
	stepSwap    = "swap"    // the Log writes to the new file
)

// testHookCompact, if set, runs at each step of a compaction; an error
// aborts the compaction there as if the step had failed. Tests use it to
// inject failures and crashes.
var testHookCompact func(step string) error

func hook(step string) error {
	if testHookCompact != nil {
		return testHookCompact(step)
	}
	return nil
}

// Compact rewrites the log as the document's history of the empty clock
// (for a Model, the latest update of each key), so that it stops growing
// with overwrites, followed by the document's clock if it knows more than
// the history shows (updates the history leaves out). Writes go on meanwhile; the records they append are
// copied to the new file at the end. A crash at any point leaves either
// the old log or the new one, each holding every durable update. Compact
// returns ErrClosed after Close, and ErrFailed once the log has failed.
func (l *Log) Compact() error {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	return l.compactLocked(false)
}

// compactor runs automatic compactions when Append pokes it.
func (l *Log) compactor() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		l.compactMu.Lock()
		err := l.compactLocked(true)
		l.compactMu.Unlock()
		if err != nil && !errors.Is(err, ErrClosed) {
			l.log.Warn("filelog: compaction failed", "err", err)
		}
	}
}

// compactLocked compacts the log; if auto is set, only if it holds more
// than CompactRatio times the history and the CompactMin records. Called
// with compactMu held.
//
// The history and the log's end are taken as follows. First, under mu, the
// offset where the next record will go (mark: past what is written, being
// written and buffered) and the record count. Then the document's clock,
// then the history, each under the document's lock. An update from a peer
// is appended and applied under one hold of the document's lock, so every
// such record before mark was applied before the clock and history were
// taken: the history holds it or something that supersedes it, or left it
// out on purpose, and the clock covers it. A local update is appended
// first and applied only once Sync has made it durable, so a local record
// before mark may not be applied yet: the tail starts at the first local
// record the clock does not cover, if that is before mark (l.local keeps
// where they are). Every update the clock covers was applied before the
// history was taken too, so the replay of the history and then the clock
// loses nothing that the tail would bring after them. Records in the tail
// may or may not be in the history; the new file gets the history
// followed by every record of the tail. A record in both is harmless:
// replay skips what the clock already covers.
func (l *Log) compactLocked(auto bool) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrClosed, l.path)
	case l.err != nil:
		l.mu.Unlock()
		return l.err
	case auto && l.records < l.check:
		l.mu.Unlock()
		return nil
	}
	mark, before := l.end, l.records
	l.mu.Unlock()

	clock := l.doc.Clock() // first: see above
	l.mu.Lock()
	start, skipped := l.tailStartLocked(clock, mark, before)
	l.mu.Unlock()
	h := l.doc.History(nil)

	if auto && float64(before) <= l.cfg.CompactRatio*float64(len(h)) {
		// Not worth it yet. Look again once the log has grown by half, or
		// reached the ratio, whichever is later: checks cost O(history),
		// paid for by as many appends.
		l.mu.Lock()
		l.check = max(l.threshold(len(h)), before+before/2)
		l.mu.Unlock()
		return nil
	}
	err := l.rewrite(h, clock, start, skipped)
	if err != nil {
		l.mu.Lock()
		l.check = max(l.check, before+before/2) // do not retry at once
		l.mu.Unlock()
		return err
	}
	return nil
}

// threshold returns the record count at which a log whose history holds
// n updates is worth compacting.
func (l *Log) threshold(n int) int64 {
	t := l.cfg.CompactRatio*float64(n) + 1
	return max(int64(l.cfg.CompactMin), int64(min(t, math.MaxInt64/2)))
}

// tailStartLocked forgets the local records clock covers, which are
// applied, and returns where the tail of a compaction whose mark is mark
// must start (mark, or the first local record before it that clock does
// not cover) and how many records are before that (before, at mark).
// Called with mu held.
func (l *Log) tailStartLocked(clock vclock.Clock, mark, before int64) (start, skipped int64) {
	applied := clock[l.source]
	i := 0
	for i < len(l.local) && l.local[i].ts <= applied {
		i++
	}
	if i > 0 {
		// Local updates are applied in order: the dropped ones too.
		l.lost = nil
		l.local = l.local[:copy(l.local, l.local[i:])]
	}
	first := l.lost
	if first == nil && len(l.local) > 0 {
		first = &l.local[0]
	}
	if first != nil && first.off < mark {
		return first.off, first.n
	}
	return mark, before
}

// rewrite writes h, clock where it knows more than h, and the records
// from offset start on (the tail) into a temporary file and renames it
// over the log. skipped is the number of records before start.
func (l *Log) rewrite(h []scuttlebutt.Update, clock vclock.Clock, start, skipped int64) (err error) {
	tmpPath := l.path + compactSuffix
	tf, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, FileMode)
	if err != nil {
		return fmt.Errorf("filelog: compacting %s: %w", l.path, err)
	}
	// Lock it before it can become the log, so that an Open racing with
	// the rename finds it locked.
	if err := lockFile(tf); err != nil {
		tf.Close()
		return fmt.Errorf("filelog: compacting %s: locking %s: %w", l.path, tmpPath, err)
	}
	swapped, role := false, false
	defer func() {
		if !swapped {
			tf.Close()
			os.Remove(tmpPath)
		}
		if role {
			l.mu.Lock()
			l.flushing = false
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		if err != nil {
			err = fmt.Errorf("filelog: compacting %s: %w", l.path, err)
		}
	}()
	if err := hook(stepCreate); err != nil {
		return err
	}

	// The history, without any lock: writers go on meanwhile.
	w := bufio.NewWriterSize(tf, 256<<10)
	size := int64(0)
	hdr := appendFileHeader(nil, l.doc.ID())
	w.Write(hdr)
	size += int64(len(hdr))
	var rec []byte
	shown := vclock.Clock{} // the clock replaying h restores
	for _, u := range h {
		if rec, err = appendRecord(rec[:0], u, l.cfg.MaxRecordSize); err != nil {
			return err
		}
		w.Write(rec)
		size += int64(len(rec))
		shown.Advance(u.Source, u.Timestamp)
	}
	records := int64(len(h))
	if !covers(shown, clock) {
		n := 0
		if rec, n, err = appendClockRecords(rec[:0], clock, l.cfg.MaxRecordSize); err != nil {
			return err
		}
		w.Write(rec)
		size += int64(len(rec))
		records += int64(n)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := hook(stepHistory); err != nil {
		return err
	}

	// Take the flushing role: from here on the log's file is ours. First
	// write what is buffered to the old file, as a Sync would, so that
	// everything after mark is in the file.
	l.mu.Lock()
	for l.flushing {
		l.cond.Wait()
	}
	if l.err != nil {
		l.mu.Unlock()
		return l.err
	}
	l.flushing, role = true, true
	pending, seq, end := l.buf, l.seq, l.size
	l.buf, l.spare = l.spare[:0], nil
	l.mu.Unlock()
	f, err := l.acquire()
	if err != nil {
		l.mu.Lock()
		l.fail(err)
		l.mu.Unlock()
		return err
	}
	if len(pending) > 0 {
		if _, err := f.WriteAt(pending, end); err != nil {
			_ = f.Truncate(end)
			l.mu.Lock()
			l.fail(err)
			l.mu.Unlock()
			return err
		}
		end += int64(len(pending))
		l.mu.Lock()
		l.size, l.written = end, seq
		l.mu.Unlock()
	}

	// The tail: every record from start on.
	head := size
	tail, err := io.Copy(w, io.NewSectionReader(f, start, end-start))
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	size += tail
	if err := hook(stepTail); err != nil {
		return err
	}
	if err := fdatasync(tf); err != nil {
		return err
	}
	if err := hook(stepSync); err != nil {
		return err
	}
	if err := os.Rename(tmpPath, l.path); err != nil {
		return err
	}

	// The new file is the log now, whatever happens next. If its rename
	// cannot be made durable, a crash could bring the old file back
	// without what is appended from now on: the log must fail.
	err = hook(stepRename)
	if err == nil {
		err = syncDir(filepath.Dir(l.path))
	}
	if err == nil {
		err = hook(stepDirSync)
	}
	l.mu.Lock()
	old := l.f
	l.f, l.size, l.end = tf, size, size+int64(len(l.buf))
	l.written, l.synced = seq, seq
	l.records = records + l.records - skipped
	// The tail moved from start to head, the local records in it too.
	move := func(r *localRecord) {
		r.off += head - start
		r.n += records - skipped
	}
	for i := range l.local {
		move(&l.local[i])
	}
	if l.lost != nil {
		move(l.lost)
	}
	l.version = formatVersion
	l.logged.Merge(clock)
	l.logged.Merge(shown)
	l.stats.Compactions++
	l.check = l.threshold(len(h))
	if err != nil {
		l.fail(err)
	}
	l.mu.Unlock()
	swapped = true
	if old != nil {
		old.Close()
	}
	if l.files != nil {
		l.files.use(l)
	}
	if err != nil {
		return err
	}
	l.log.Debug("filelog: compacted", "records", len(h), "bytes", size)
	return hook(stepSwap)
}

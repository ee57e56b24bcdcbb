package filelog

import (
	"container/list"
	"errors"
	"io/fs"
	"os"
	"sync"
)

// Files bounds how many log files a set of Logs keeps open at once, for a
// process that holds more logs than it may hold file descriptors (package
// node keeps one log per document). Give the same Files to each Log's
// Config. When a Log opens, writes, syncs or compacts its file and more
// than the bound are open, the least recently used Log of the set closes
// its file (after an fsync, if writes are not yet synced); it opens it
// again at its next write. A Log busy writing at that moment keeps its
// file, so the bound may be exceeded by the Logs writing concurrently,
// until their next turn.
//
// The lock that keeps a second Log off a file (ErrLocked) goes with the
// file: while a Log's file is closed, another process could open the log.
// A Log that finds its file locked when it opens it again fails
// (ErrFailed wrapping ErrLocked). Use Files where something else keeps
// other processes away: package node holds its catalog's log, outside any
// Files, open for as long as it runs.
//
// A Files is safe for concurrent use.
type Files struct {
	max int
	mu  sync.Mutex // guards lru and every Log's elem
	lru list.List  // *Log with an open file, most recently used first
}

// NewFiles returns a Files that keeps at most limit files open; below 1
// means 1.
func NewFiles(limit int) *Files {
	return &Files{max: max(limit, 1)}
}

// Open returns how many files of the set are open.
func (fl *Files) Open() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.lru.Len()
}

// use records that l's file is open and just used, and closes the files
// of the least recently used Logs past the bound. Called without l.mu.
func (fl *Files) use(l *Log) {
	fl.mu.Lock()
	if l.elem != nil {
		fl.lru.MoveToFront(l.elem)
	} else {
		l.elem = fl.lru.PushFront(l)
	}
	var victims []*Log
	for e := fl.lru.Back(); fl.lru.Len()-len(victims) > fl.max && e != nil && e.Value != l; e = e.Prev() {
		victims = append(victims, e.Value.(*Log))
	}
	fl.mu.Unlock()
	for _, v := range victims {
		v.release()
	}
}

// forget records that l's file is closed.
func (fl *Files) forget(l *Log) {
	fl.mu.Lock()
	if l.elem != nil {
		fl.lru.Remove(l.elem)
		l.elem = nil
	}
	fl.mu.Unlock()
}

// acquire returns the log's file, opening it again if Files closed it.
// Only the holder of the flushing role calls it, without mu.
func (l *Log) acquire() (*os.File, error) {
	if l.f == nil {
		f, err := openFile(l.path)
		if err != nil {
			return nil, err
		}
		l.f = f
	}
	if l.files != nil {
		l.files.use(l)
	}
	return l.f, nil
}

// release closes the log's file for Files, unless the log is busy with
// it (a writer, sync or compaction holds the flushing role) or closed
// (Close closes it). Writes not yet fsynced are fsynced first: an error
// the kernel reports on a later write-back would not reach a descriptor
// opened afterwards.
func (l *Log) release() {
	l.mu.Lock()
	if l.flushing || l.closed {
		l.mu.Unlock() // it stays in the set: Close or the next use decides
		return
	}
	if l.f == nil {
		l.mu.Unlock()
		l.files.forget(l)
		return
	}
	l.flushing = true
	f, seq, dirty := l.f, l.written, l.synced < l.written
	l.f = nil
	l.mu.Unlock()
	l.files.forget(l)
	var err error
	if dirty {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	l.mu.Lock()
	l.flushing = false
	if err != nil {
		l.fail(err)
	} else if dirty {
		l.synced = max(l.synced, seq)
		l.stats.Syncs++
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// Remove deletes the log file at path and what a compaction of it may have
// left (its temporary file). Close the Log first. A file that does not
// exist is not an error.
func Remove(path string) error {
	var errs []error
	for _, p := range []string{path, path + compactSuffix} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package api

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/lock"
)

// Bounds and defaults of lock sessions (Config.SessionTTL,
// Config.MaxSessions, Config.MaxSessionLocks).
const (
	DefaultSessionTTL      = 15 * time.Second
	MinSessionTTL          = time.Second
	MaxSessionTTL          = time.Hour
	DefaultMaxSessions     = 1024
	DefaultMaxSessionLocks = 64
)

// maxSessionID is the longest session id an error message repeats; the
// ids the Server makes are 26 characters (crypto/rand.Text).
const maxSessionID = 64

// errSessionEnded cancels the lock requests of a session that ended.
var errSessionEnded = errors.New("api: session ended")

// A session is a client's claim on the locks it takes through the API:
// they are the node's (package lock's owner is the replica), and the
// session is what says which client they are for and how long they stay
// held without word from it. Sessions live in the Server's memory: a
// node's restart ends them, and its leases lapse as package lock handles.

// sessions are the Server's lock sessions. Its methods are safe for
// concurrent use; mu is held across Unlock calls, so that a lock released
// for a session is never one another session has taken since.
type sessions struct {
	now      func() time.Time
	log      *slog.Logger
	maxCount int
	maxLocks int

	mu    sync.Mutex
	byID  map[string]*session
	holds map[holdKey]*hold // the locks held for sessions, by table and name

	wake    chan struct{} // capacity 1: a session's expiry moved
	done    chan struct{} // closed by close
	stopped chan struct{} // closed when run returns
	once    sync.Once
}

// holdKey names a lock of a lock table.
type holdKey struct {
	t    *lock.Table
	name string
}

// session is one client session. Its fields are guarded by sessions.mu,
// except the constant id, ttl, single and ended.
type session struct {
	id      string
	ttl     time.Duration
	single  bool // made by a lock request without a session: ends with its lock
	expires time.Time
	locks   []*hold       // in the order taken
	waiting int           // lock requests waiting for their lock
	ended   chan struct{} // closed when the session ends
	over    bool          // ended: removed from byID
}

// hold is a lock held (or lost) for a session.
type hold struct {
	key   holdKey
	table string          // the lock table's document name
	done  <-chan struct{} // the hold's lock.Table.Done
	lost  bool            // the lease was lost: the node no longer holds it
	s     *session
}

func newSessions(now func() time.Time, log *slog.Logger, maxCount, maxLocks int) *sessions {
	ss := &sessions{
		now: now, log: log, maxCount: maxCount, maxLocks: maxLocks,
		byID:    make(map[string]*session),
		holds:   make(map[holdKey]*hold),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go ss.run()
	return ss
}

// run ends the sessions whose time is up, waking at the next expiry or
// when one moves, until close. Requests also sweep before they look at a
// session, so an expired session is never served even if run is late
// (or the clock, Config.Now, is not the wall clock).
func (ss *sessions) run() {
	defer close(ss.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(ss.sweep())
		select {
		case <-ss.done:
			return
		case <-ss.wake:
		case <-timer.C:
		}
	}
}

// close stops run. Sessions are not ended: the node's own Close releases
// its locks.
func (ss *sessions) close() {
	ss.once.Do(func() { close(ss.done) })
	<-ss.stopped
}

func (ss *sessions) poke() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// count is the number of live sessions.
func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.byID)
}

// sweep ends the sessions whose time is up and returns how long until the
// next one's, at least a millisecond.
func (ss *sessions) sweep() time.Duration {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.sweepLocked(ss.now())
}

func (ss *sessions) sweepLocked(now time.Time) time.Duration {
	next := time.Hour
	for _, s := range ss.byID {
		if left := s.expires.Sub(now); left > 0 {
			next = min(next, left)
			continue
		}
		released := ss.endLocked(s)
		ss.log.Info("api: lock session expired, its locks released", "session", s.id, "ttl", s.ttl, "released", released)
	}
	return max(next, time.Millisecond)
}

// create starts a session of ttl that expires after ttl plus extra from
// now (a lock request's wait, for a single-lock session).
func (ss *sessions) create(ttl, extra time.Duration, single bool) (*session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	ss.sweepLocked(now)
	if len(ss.byID) >= ss.maxCount {
		return nil, errorf(http.StatusServiceUnavailable, "%d lock sessions open, the limit: end one or let one expire", ss.maxCount)
	}
	s := &session{id: rand.Text(), ttl: ttl, single: single, expires: now.Add(ttl + extra), ended: make(chan struct{})}
	ss.byID[s.id] = s
	ss.poke()
	return s, nil
}

// get returns the live session id.
func (ss *sessions) get(id string) (*session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.getLocked(id)
}

func (ss *sessions) getLocked(id string) (*session, error) {
	ss.sweepLocked(ss.now())
	s := ss.byID[id]
	if s == nil {
		if len(id) > maxSessionID {
			id = id[:maxSessionID] + "..."
		}
		return nil, errorf(http.StatusNotFound, "no lock session %q: ended, expired, or the node restarted", id)
	}
	return s, nil
}

// renew moves session id's expiry to its TTL from now, and describes it.
func (ss *sessions) renew(id string) (sessionBody, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, err := ss.getLocked(id)
	if err != nil {
		return sessionBody{}, err
	}
	s.expires = ss.now().Add(s.ttl)
	ss.poke()
	return ss.describeLocked(s), nil
}

// describe describes session id.
func (ss *sessions) describe(id string) (sessionBody, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, err := ss.getLocked(id)
	if err != nil {
		return sessionBody{}, err
	}
	return ss.describeLocked(s), nil
}

// list describes every live session, sorted by id.
func (ss *sessions) list() []sessionBody {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweepLocked(ss.now())
	out := make([]sessionBody, 0, len(ss.byID))
	for _, id := range slices.Sorted(maps.Keys(ss.byID)) {
		out = append(out, ss.describeLocked(ss.byID[id]))
	}
	return out
}

// end ends session id, releasing its locks, and describes it as it was.
func (ss *sessions) end(id string) (sessionBody, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, err := ss.getLocked(id)
	if err != nil {
		return sessionBody{}, err
	}
	b := ss.describeLocked(s)
	ss.endLocked(s)
	return b, nil
}

// endLocked ends s: it releases the locks s holds and returns their
// names ("table/lock").
func (ss *sessions) endLocked(s *session) (released []string) {
	ss.checkLocked(s)
	for _, h := range s.locks {
		if !h.lost {
			ss.unlockLocked(h)
			released = append(released, h.table+"/"+h.key.name)
		}
	}
	s.locks = nil
	s.over = true
	delete(ss.byID, s.id)
	close(s.ended)
	return released
}

// unlockLocked releases h, which is not lost, and forgets it.
func (ss *sessions) unlockLocked(h *hold) {
	if err := h.key.t.Unlock(h.key.name); err != nil && !errors.Is(err, lock.ErrNotOwner) {
		ss.log.Warn("api: releasing a session's lock", "session", h.s.id, "table", h.table, "lock", h.key.name, "err", err)
	}
	h.lost = true // released: not held any more, whatever the reason
	if ss.holds[h.key] == h {
		delete(ss.holds, h.key)
	}
}

// checkLocked marks the holds of s that the node has lost (their Done is
// closed while the session still holds them) and forgets them.
func (ss *sessions) checkLocked(s *session) {
	for _, h := range s.locks {
		if h.lost {
			continue
		}
		select {
		case <-h.done:
			h.lost = true
			if ss.holds[h.key] == h {
				delete(ss.holds, h.key)
			}
		default:
		}
	}
}

// reserve checks, before a lock request waits, that s is live, does not
// hold name already and has room for one more lock.
func (ss *sessions) reserve(s *session, key holdKey) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.over {
		return errorf(http.StatusNotFound, "lock session %q ended", s.id)
	}
	ss.checkLocked(s)
	return ss.roomLocked(s, key)
}

func (ss *sessions) roomLocked(s *session, key holdKey) error {
	n := 0
	for _, h := range s.locks {
		if h.key == key && !h.lost {
			return errorf(http.StatusConflict, "lock session %q holds lock %q already", s.id, key.name)
		}
		if h.key != key {
			n++ // a lost hold of key is replaced
		}
	}
	if n >= ss.maxLocks {
		return errorf(http.StatusConflict, "lock session %q holds %d locks, the limit", s.id, ss.maxLocks)
	}
	return nil
}

// waits counts a lock request of s that starts (+1) or stops (-1)
// waiting.
func (ss *sessions) waits(s *session, delta int) {
	ss.mu.Lock()
	s.waiting += delta
	ss.mu.Unlock()
}

// attach records that the node now holds key for s, a lock of the table
// called table. If s has ended in the meantime, or has no room left, the
// lock is released again and the error returned.
func (ss *sessions) attach(s *session, key holdKey, table string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	h := &hold{key: key, table: table, done: key.t.Done(key.name), s: s}
	err := ss.roomLocked(s, key)
	if s.over {
		err = errorf(http.StatusNotFound, "lock session %q ended while its lock request waited", s.id)
	}
	if err != nil {
		ss.unlockLocked(h)
		return err
	}
	if old := ss.holds[key]; old != nil { // lost by its session, which has not looked since
		old.lost = true
	}
	ss.holds[key] = h
	s.locks = slices.DeleteFunc(s.locks, func(o *hold) bool { return o.key == key })
	s.locks = append(s.locks, h)
	if s.single {
		s.expires = ss.now().Add(s.ttl) // the wait is over: the TTL runs from the grant
		ss.poke()
	}
	return nil
}

// abandon ends s if it is a single-lock session whose lock request
// failed: it holds nothing.
func (ss *sessions) abandon(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.single && !s.over && len(s.locks) == 0 {
		ss.endLocked(s)
	}
}

// release releases key for session id, which must hold it; or, for id
// "", whoever holds it: for a session (which then no longer holds it) or
// not. A single-lock session left holding nothing ends.
func (ss *sessions) release(id string, key holdKey) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var h *hold
	if id != "" {
		s, err := ss.getLocked(id)
		if err != nil {
			return err
		}
		ss.checkLocked(s)
		for _, o := range s.locks {
			if o.key == key && !o.lost {
				h = o
			}
		}
		if h == nil {
			return errorf(http.StatusForbidden, "%v: lock session %q does not hold %q", lock.ErrNotOwner, id, key.name)
		}
	} else if h = ss.holds[key]; h != nil {
		ss.checkLocked(h.s)
		if h.lost {
			h = nil
		}
	}
	if h == nil {
		return key.t.Unlock(key.name) // a hold of no session: the node's
	}
	ss.unlockLocked(h)
	s := h.s
	s.locks = slices.DeleteFunc(s.locks, func(o *hold) bool { return o == h })
	if s.single && len(s.locks) == 0 {
		ss.endLocked(s)
	}
	return nil
}

// sessionBody describes a session.
type sessionBody struct {
	ID string `json:"id"`
	// TTL is how long the session lives without renewal.
	TTL string `json:"ttl"`
	// Expires is when the session ends unless renewed, by the node's
	// clock.
	Expires time.Time `json:"expires"`
	// Locks are the locks taken for the session, with whether the node
	// still holds them: held false means the lease was lost.
	Locks []sessionLock `json:"locks"`
	// Waiting counts the session's lock requests waiting for their lock.
	Waiting int `json:"waiting"`
}

// sessionLock is one lock of a session.
type sessionLock struct {
	Table string `json:"table"`
	Lock  string `json:"lock"`
	Held  bool   `json:"held"`
}

func (ss *sessions) describeLocked(s *session) sessionBody {
	ss.checkLocked(s)
	b := sessionBody{ID: s.id, TTL: s.ttl.String(), Expires: s.expires, Locks: []sessionLock{}, Waiting: s.waiting}
	for _, h := range s.locks {
		b.Locks = append(b.Locks, sessionLock{h.table, h.key.name, !h.lost})
	}
	return b
}

// sessionContext returns ctx, cancelled also (with errSessionEnded as
// the cause) when s ends. The caller calls cancel once done with it.
func sessionContext(ctx context.Context, s *session) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-s.ended:
			cancel(errSessionEnded)
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// readTTL reads the body of POST /v1/sessions, {"ttl": "15s"} or empty,
// and returns the TTL, def if the body gives none.
func (s *Server) readTTL(w http.ResponseWriter, r *http.Request, def time.Duration) (time.Duration, error) {
	v, err := s.readValue(w, r)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && strings.HasPrefix(he.msg, "empty body") {
			return def, nil
		}
		return 0, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return 0, errorf(http.StatusBadRequest, `body must be an object {"ttl": "15s"}`)
	}
	ttl := def
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if k != "ttl" {
			return 0, errorf(http.StatusBadRequest, "unknown field %q", k)
		}
		str, ok := obj[k].(string)
		if !ok {
			return 0, errorf(http.StatusBadRequest, `"ttl" must be a duration string like "15s"`)
		}
		if ttl, err = parseTTL(str); err != nil {
			return 0, err
		}
	}
	return ttl, nil
}

// parseTTL parses a session TTL and checks its bounds.
func parseTTL(q string) (time.Duration, error) {
	ttl, err := time.ParseDuration(q)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "ttl %q is not a duration like 15s", q)
	}
	if ttl < MinSessionTTL || ttl > MaxSessionTTL {
		return 0, errorf(http.StatusBadRequest, "ttl %s is not in [%s, %s]", ttl, MinSessionTTL, MaxSessionTTL)
	}
	return ttl, nil
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	ttl, err := s.readTTL(w, r, s.cfg.SessionTTL)
	if err != nil {
		return err
	}
	sess, err := s.sessions.create(ttl, 0, false)
	if err != nil {
		return err
	}
	b, err := s.sessions.describe(sess.id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, struct {
		Sessions []sessionBody `json:"sessions"`
	}{s.sessions.list()})
	return nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	b, err := s.sessions.describe(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) renewSession(w http.ResponseWriter, r *http.Request) error {
	// A body, if any, is ignored; drain a little of it for keep-alive.
	io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	b, err := s.sessions.renew(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) endSession(w http.ResponseWriter, r *http.Request) error {
	b, err := s.sessions.end(r.PathValue("id"))
	if err != nil {
		return err
	}
	for i := range b.Locks {
		b.Locks[i].Held = false // released
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

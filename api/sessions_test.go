package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testClock is a clock that moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sessionServer returns a Server whose lock sessions run on a test clock.
func sessionServer(t *testing.T, cfg Config) (*testClock, *Server) {
	t.Helper()
	clk := newTestClock()
	cfg.Now = clk.now
	_, s := newServer(t, &cfg)
	return clk, s
}

type testSession struct {
	ID      string
	TTL     string
	Expires time.Time
	Locks   []struct {
		Table, Lock string
		Held        bool
	}
	Waiting int
}

type testTake struct {
	Lock    string
	Holders []string
	Session testSession
}

// newSession creates a session with body, failing t unless it is a 200.
func newSession(t *testing.T, s *Server, body string) testSession {
	t.Helper()
	r := doString(t, s, "POST", "/v1/sessions", body)
	wantOK(t, r, "POST /v1/sessions "+body)
	return decode[testSession](t, r)
}

// holders returns the holders of table/name as the API reports them.
func holders(t *testing.T, s *Server, table, name string) []string {
	t.Helper()
	r := doString(t, s, "GET", "/v1/locks/"+table+"/"+name, "")
	wantOK(t, r, "GET lock")
	return decode[testTake](t, r).Holders
}

// heldLocks lists a session's locks as "table/lock" with "!" for a lost
// one.
func heldLocks(b testSession) []string {
	out := []string{}
	for _, l := range b.Locks {
		s := l.Table + "/" + l.Lock
		if !l.Held {
			s += "!"
		}
		out = append(out, s)
	}
	return out
}

// TestSessionExpiryReleases lets a session go unrenewed past its TTL: the
// node releases its locks, the session is gone, and another session takes
// the lock at once.
func TestSessionExpiryReleases(t *testing.T) {
	clk, s := sessionServer(t, Config{})
	a := newSession(t, s, `{"ttl": "2s"}`)
	if a.TTL != "2s" || !a.Expires.Equal(clk.now().Add(2*time.Second)) {
		t.Errorf("new session: ttl %s expires %v, want 2s and %v", a.TTL, a.Expires, clk.now().Add(2*time.Second))
	}
	for _, l := range []string{"x", "y"} {
		wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/"+l+"?session="+a.ID, ""), "take "+l)
	}
	clk.advance(1999 * time.Millisecond)
	if got := holders(t, s, "jobs", "x"); !cmp.Equal(got, []string{"self"}) {
		t.Fatalf("holders of x before the TTL: %v, want [self]", got)
	}
	clk.advance(time.Millisecond)
	if r := doString(t, s, "GET", "/v1/sessions/"+a.ID, ""); r.code != http.StatusNotFound || !strings.Contains(r.body, "expired") {
		t.Errorf("GET of an expired session: %d %s, want 404", r.code, r.body)
	}
	for _, l := range []string{"x", "y"} {
		if got := holders(t, s, "jobs", l); len(got) != 0 {
			t.Errorf("holders of %s after the session expired: %v, want none", l, got)
		}
	}
	if r := doString(t, s, "PUT", "/v1/sessions/"+a.ID, ""); r.code != http.StatusNotFound {
		t.Errorf("renewal of an expired session: %d %s, want 404", r.code, r.body)
	}
	b := newSession(t, s, "")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+b.ID, ""), "another session takes x")
}

// TestSessionRenewKeeps renews a session for several TTLs: its locks stay
// held, and each renewal moves its expiry to a TTL from then.
func TestSessionRenewKeeps(t *testing.T) {
	clk, s := sessionServer(t, Config{SessionTTL: 2 * time.Second})
	a := newSession(t, s, "")
	if a.TTL != "2s" {
		t.Errorf("session TTL %s, want the configured 2s", a.TTL)
	}
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+a.ID, ""), "take x")
	for i := range 6 {
		clk.advance(1500 * time.Millisecond)
		r := doString(t, s, "PUT", "/v1/sessions/"+a.ID, "")
		wantOK(t, r, "renewal")
		got := decode[testSession](t, r)
		if !got.Expires.Equal(clk.now().Add(2 * time.Second)) {
			t.Errorf("renewal %d: expires %v, want %v", i, got.Expires, clk.now().Add(2*time.Second))
		}
		if diff := cmp.Diff([]string{"jobs/x"}, heldLocks(got)); diff != "" {
			t.Errorf("renewal %d: locks (-want +got):\n%s", i, diff)
		}
	}
	if got := holders(t, s, "jobs", "x"); !cmp.Equal(got, []string{"self"}) {
		t.Errorf("holders of x after 9 s of renewals: %v, want [self]", got)
	}
}

// TestSessionDeleteReleases ends a session: its locks are released, it is
// gone, and a lock request for it is 404.
func TestSessionDeleteReleases(t *testing.T) {
	_, s := sessionServer(t, Config{})
	a := newSession(t, s, "")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+a.ID, ""), "take x")
	r := doString(t, s, "DELETE", "/v1/sessions/"+a.ID, "")
	wantOK(t, r, "end the session")
	if diff := cmp.Diff([]string{"jobs/x!"}, heldLocks(decode[testSession](t, r))); diff != "" {
		t.Errorf("ended session's locks, all released (-want +got):\n%s", diff)
	}
	if got := holders(t, s, "jobs", "x"); len(got) != 0 {
		t.Errorf("holders of x after the session ended: %v, want none", got)
	}
	for _, req := range []struct{ method, path string }{
		{"DELETE", "/v1/sessions/" + a.ID},
		{"GET", "/v1/sessions/" + a.ID},
		{"POST", "/v1/locks/jobs/x?session=" + a.ID},
		{"DELETE", "/v1/locks/jobs/x?session=" + a.ID},
	} {
		if r := doString(t, s, req.method, req.path, ""); r.code != http.StatusNotFound {
			t.Errorf("%s %s of an ended session: %d %s, want 404", req.method, req.path, r.code, r.body)
		}
	}
}

// TestSessionEndsWaitingRequest ends a session while a lock request for
// it waits: the request returns 404 at once, and the holder keeps the
// lock.
func TestSessionEndsWaitingRequest(t *testing.T) {
	_, s := sessionServer(t, Config{})
	a, b := newSession(t, s, ""), newSession(t, s, "")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+a.ID, ""), "a takes x")
	waited := make(chan response, 1)
	go func() { waited <- doString(t, s, "POST", "/v1/locks/jobs/x?timeout=4m&session="+b.ID, "") }()
	deadline := time.Now().Add(time.Minute)
	for decode[testSession](t, doString(t, s, "GET", "/v1/sessions/"+b.ID, "")).Waiting != 1 {
		if time.Now().After(deadline) {
			t.Fatal("b's lock request is not listed as waiting after a minute")
		}
		time.Sleep(time.Millisecond) // poll: the request has no other sign that it waits
	}
	wantOK(t, doString(t, s, "DELETE", "/v1/sessions/"+b.ID, ""), "end b")
	if r := <-waited; r.code != http.StatusNotFound || !strings.Contains(r.body, "ended while its lock request waited") {
		t.Errorf("b's waiting request after b ended: %d %s, want 404", r.code, r.body)
	}
	if got := holders(t, s, "jobs", "x"); !cmp.Equal(got, []string{"self"}) {
		t.Errorf("holders of x: %v, want [self] (a)", got)
	}
	r := doString(t, s, "GET", "/v1/sessions", "")
	wantOK(t, r, "GET the sessions")
	list := decode[struct{ Sessions []testSession }](t, r).Sessions
	if len(list) != 1 || list[0].ID != a.ID || list[0].Waiting != 0 {
		t.Fatalf("sessions: %+v, want only a, waiting for nothing", list)
	}
	if diff := cmp.Diff([]string{"jobs/x"}, heldLocks(list[0])); diff != "" {
		t.Errorf("a's locks (-want +got):\n%s", diff)
	}
}

// TestLockWithoutSession takes a lock without a session: the answer
// carries the one-lock session made for it, which expires unless renewed,
// and which ends when the lock is released.
func TestLockWithoutSession(t *testing.T) {
	clk, s := sessionServer(t, Config{})
	r := doString(t, s, "POST", "/v1/locks/jobs/x?ttl=3s", "")
	wantOK(t, r, "take x")
	got := decode[testTake](t, r)
	if got.Session.ID == "" || got.Session.TTL != "3s" || !got.Session.Expires.Equal(clk.now().Add(3*time.Second)) ||
		!cmp.Equal(heldLocks(got.Session), []string{"jobs/x"}) {
		t.Fatalf("session of a lock request without one: %+v, want a 3s session holding jobs/x", got.Session)
	}
	clk.advance(2 * time.Second)
	wantOK(t, doString(t, s, "PUT", "/v1/sessions/"+got.Session.ID, ""), "renew")
	clk.advance(2 * time.Second)
	if h := holders(t, s, "jobs", "x"); !cmp.Equal(h, []string{"self"}) {
		t.Fatalf("holders of x after a renewal: %v, want [self]", h)
	}
	clk.advance(time.Second)
	if h := holders(t, s, "jobs", "x"); len(h) != 0 {
		t.Errorf("holders of x past the TTL: %v, want none", h)
	}

	// Released: the session ends with its lock.
	r = doString(t, s, "POST", "/v1/locks/jobs/x", "")
	wantOK(t, r, "take x again")
	got = decode[testTake](t, r)
	if got.Session.TTL != DefaultSessionTTL.String() {
		t.Errorf("default TTL %s, want %s", got.Session.TTL, DefaultSessionTTL)
	}
	wantOK(t, doString(t, s, "DELETE", "/v1/locks/jobs/x?session="+got.Session.ID, ""), "release x")
	if r := doString(t, s, "GET", "/v1/sessions/"+got.Session.ID, ""); r.code != http.StatusNotFound {
		t.Errorf("one-lock session after its release: %d %s, want 404", r.code, r.body)
	}

	// A failed request leaves no session behind.
	b := newSession(t, s, "")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+b.ID, ""), "b takes x")
	if r := doString(t, s, "POST", "/v1/locks/jobs/x", ""); r.code != http.StatusConflict {
		t.Errorf("taking a held lock: %d %s, want 409", r.code, r.body)
	}
	if n := s.sessions.count(); n != 1 {
		t.Errorf("%d sessions after a failed request, want 1 (b)", n)
	}
	// A release without a session releases whichever session holds it.
	wantOK(t, doString(t, s, "DELETE", "/v1/locks/jobs/x", ""), "release x without a session")
	r = doString(t, s, "GET", "/v1/sessions/"+b.ID, "")
	wantOK(t, r, "GET b")
	if diff := cmp.Diff([]string{}, heldLocks(decode[testSession](t, r))); diff != "" {
		t.Errorf("b's locks after an operator's release (-want +got):\n%s", diff)
	}
}

// TestSessionLostLock has the node lose a session's lock (its lease runs
// out: the lock table's clock jumps): the session reports it not held,
// and releasing it is 403.
func TestSessionLostLock(t *testing.T) {
	lockClk := newTestClock()
	f := newFakeNode(t)
	f.lockNow = lockClk.now
	s, err := New(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newSession(t, s, "")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+a.ID, ""), "take x")
	tab, _ := f.Locks("jobs")
	done := tab.Done("x")
	lockClk.advance(time.Hour)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the hold did not end after its lease")
	}
	r := doString(t, s, "PUT", "/v1/sessions/"+a.ID, "")
	wantOK(t, r, "renew")
	if diff := cmp.Diff([]string{"jobs/x!"}, heldLocks(decode[testSession](t, r))); diff != "" {
		t.Errorf("locks of a session whose lock was lost (-want +got):\n%s", diff)
	}
	if r := doString(t, s, "DELETE", "/v1/locks/jobs/x?session="+a.ID, ""); r.code != http.StatusForbidden {
		t.Errorf("release of a lost lock: %d %s, want 403", r.code, r.body)
	}
	// The session takes it again, once the table has withdrawn the lost
	// claim.
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?timeout=1m&session="+a.ID, ""), "take x again")
	r = doString(t, s, "GET", "/v1/sessions/"+a.ID, "")
	if diff := cmp.Diff([]string{"jobs/x"}, heldLocks(decode[testSession](t, r))); diff != "" {
		t.Errorf("locks after taking x again (-want +got):\n%s", diff)
	}
}

// TestSessionBounds checks the bounds on sessions: TTLs, counts, locks
// per session, and who may release what.
func TestSessionBounds(t *testing.T) {
	_, s := sessionServer(t, Config{MaxSessions: 3, MaxSessionLocks: 2})
	a := newSession(t, s, "")
	b := newSession(t, s, `{"ttl": "1h"}`)
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/x?session="+a.ID, ""), "a takes x")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/y?session="+a.ID, ""), "a takes y")
	for _, c := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"TTL too short", "POST", "/v1/sessions", `{"ttl": "999ms"}`, 400, "not in [1s, 1h0m0s]"},
		{"TTL too long", "POST", "/v1/sessions", `{"ttl": "1h1s"}`, 400, "not in [1s, 1h0m0s]"},
		{"TTL not a duration", "POST", "/v1/sessions", `{"ttl": "soon"}`, 400, "not a duration"},
		{"TTL a number", "POST", "/v1/sessions", `{"ttl": 15}`, 400, "duration string"},
		{"unknown field", "POST", "/v1/sessions", `{"ttl": "5s", "name": "x"}`, 400, `unknown field "name"`},
		{"body not an object", "POST", "/v1/sessions", `[]`, 400, "must be an object"},
		{"malformed body", "POST", "/v1/sessions", `{`, 400, "malformed JSON"},
		{"lock TTL too short", "POST", "/v1/locks/jobs/z?ttl=10ms", "", 400, "not in [1s"},
		{"lock TTL with a session", "POST", "/v1/locks/jobs/z?ttl=5s&session=" + a.ID, "", 400, "POST /v1/sessions"},
		{"too many locks", "POST", "/v1/locks/jobs/z?session=" + a.ID, "", 409, "holds 2 locks, the limit"},
		{"a lock twice", "POST", "/v1/locks/jobs/x?session=" + a.ID, "", 409, "holds lock \"x\" already"},
		{"unknown session", "POST", "/v1/locks/jobs/z?session=NOPE", "", 404, `no lock session "NOPE"`},
		{"long unknown session", "GET", "/v1/sessions/" + strings.Repeat("A", 5000), "", 404, strings.Repeat("A", 64) + "...\""},
		{"release by another session", "DELETE", "/v1/locks/jobs/x?session=" + b.ID, "", 403, "does not hold"},
		{"release by an unknown session", "DELETE", "/v1/locks/jobs/x?session=NOPE", "", 404, "no lock session"},
		{"renew with a body", "PUT", "/v1/sessions/" + b.ID, `{"ignored": true}`, 200, b.ID},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := doString(t, s, c.method, c.path, c.body)
			var e struct{ Error string }
			json.Unmarshal([]byte(r.body), &e)
			if r.code != c.code || !strings.Contains(r.body, c.msg) && !strings.Contains(e.Error, c.msg) {
				t.Errorf("%s %.80s %s: %d %.200s, want %d with %q", c.method, c.path, c.body, r.code, r.body, c.code, c.msg)
			}
		})
	}
	newSession(t, s, "")
	if r := doString(t, s, "POST", "/v1/sessions", ""); r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "3 lock sessions open") {
		t.Errorf("a fourth session: %d %s, want 503", r.code, r.body)
	}
	if r := doString(t, s, "POST", "/v1/locks/jobs/z", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("a lock request without a session past the limit: %d %s, want 503", r.code, r.body)
	}
	if got := holders(t, s, "jobs", "z"); len(got) != 0 {
		t.Errorf("holders of z after refused requests: %v, want none", got)
	}
	wantOK(t, doString(t, s, "DELETE", "/v1/sessions/"+b.ID, ""), "end b")
	newSession(t, s, "") // room again
}

// TestSessionConfig checks the bounds of the session fields of Config.
func TestSessionConfig(t *testing.T) {
	f := newFakeNode(t)
	for _, c := range []Config{
		{SessionTTL: time.Millisecond},
		{SessionTTL: 2 * time.Hour},
		{MaxSessions: -1},
		{MaxSessionLocks: -1},
	} {
		if _, err := New(f, &c); err == nil {
			t.Errorf("New with SessionTTL %v MaxSessions %d MaxSessionLocks %d: no error", c.SessionTTL, c.MaxSessions, c.MaxSessionLocks)
		}
	}
}

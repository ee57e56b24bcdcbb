package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/lock"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Node is what a Server serves: the documents of one node, and its status.
// *node.Node implements it. Its methods are called concurrently, from the
// goroutines of the HTTP server.
type Node interface {
	// Model, Emitter, Locks and Doc return the document called name,
	// creating it if there is none (package node's semantics).
	Model(name string) (*model.Model, error)
	Emitter(name string) (*emitter.Emitter, error)
	Locks(name string) (*lock.Table, error)
	Doc(name string) (*doc.Doc, error)
	// Documents lists the documents the node holds; the Server reads it to
	// tell a missing document (404) without creating it.
	Documents() []node.DocumentInfo
	// Status is the node's status, served as /v1/status and /metrics.
	Status() node.Status
}

var _ Node = (*node.Node)(nil)

// Defaults of Config's fields.
const (
	DefaultMaxBodySize = 1 << 20
	DefaultMaxLockWait = 5 * time.Minute
	DefaultLockAckWait = 10 * time.Second
	DefaultHeartbeat   = 15 * time.Second
	DefaultWatchBuffer = 1024
	DefaultWriteWait   = 10 * time.Second
	// DefaultWatchMaxBytes is Config.WatchMaxBytes's default, 16 MiB.
	DefaultWatchMaxBytes = 16 << 20
	// MaxWatchIDSize is the longest watch position (an SSE id, the
	// Last-Event-ID header, the since parameter) in bytes: longer is 400.
	// A position past it (a clock of hundreds of sources) is not sent as
	// an id, and a resumption repeats events rather than miss any.
	MaxWatchIDSize = 8192
	// MaxKeySize is the longest key, event name or lock name, in bytes.
	MaxKeySize = 1024
)

// Errors returned by this package.
var (
	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("api: invalid config")
	// ErrNilNode means New was given no Node.
	ErrNilNode = errors.New("api: nil node")
)

// Config configures a Server. A nil *Config and every zero field mean the
// default; New copies it.
type Config struct {
	// MaxBodySize is the largest request body, in bytes; a larger one is
	// refused with 413 before it is read past the limit. 0 means
	// DefaultMaxBodySize (1 MiB), which is also package model's default
	// limit on one update.
	MaxBodySize int64

	// MaxLockWait caps the timeout parameter of POST /v1/locks: a request
	// holds a goroutine and a connection while it waits. 0 means
	// DefaultMaxLockWait (5 min).
	MaxLockWait time.Duration

	// LockAckWait bounds a take without a timeout (a TryLock), which still
	// waits one round trip for every member's acknowledgement. 0 means
	// DefaultLockAckWait (10 s); past it the answer is 503.
	LockAckWait time.Duration

	// Heartbeat is how often a watch stream sends a comment line when it
	// has nothing else to send. 0 means DefaultHeartbeat (15 s).
	Heartbeat time.Duration

	// WatchBuffer is how many changes a watch stream queues for a client
	// that reads slower than the document changes; past it the stream
	// ends as past WatchMaxBytes, so that a slow client neither blocks
	// writers nor grows memory. 0 means DefaultWatchBuffer (1024).
	WatchBuffer int

	// WatchMaxBytes bounds the bytes a watch stream holds for a client
	// that reads slower than the document changes: the JSON of the events
	// queued and being written. Past it, or past WatchBuffer events, the
	// queue is dropped and the stream ends with an "error" event whose
	// "resume" is true: reconnecting with the last id received resumes the
	// stream without a gap (the resumption reads the document, so a model
	// sends each key changed since once, at its latest value). One event is
	// always queued, however large. 0 means DefaultWatchMaxBytes (16 MiB);
	// memory per stalled watcher is at most about that, plus one event.
	WatchMaxBytes int64

	// WriteWait bounds each write of a watch stream to its client: a
	// client that stops reading is dropped after it. 0 means
	// DefaultWriteWait (10 s).
	WriteWait time.Duration

	// Token, if set, is the bearer token every request must carry
	// ("Authorization: Bearer TOKEN"), except those for PublicPaths; a
	// request without it, or with another, is answered 401 with a JSON
	// error before it is routed. Tokens are compared in constant time.
	// Leading and trailing white space is not part of a token. nil means
	// no authentication: keep the API on a trusted interface.
	Token []byte

	// PublicPaths are the URL paths served without the token (exact
	// matches). nil means DefaultPublicPaths (/healthz, /readyz); an
	// empty non-nil slice makes every path need the token.
	PublicPaths []string

	// Logger receives the errors the Server answers with 500, and the
	// lock sessions that expire (Info). nil means no logging.
	Logger *slog.Logger

	// SessionTTL is the TTL of a lock session created without one, and of
	// the session a lock request without a session makes: how long the
	// session's locks stay held after the client's last renewal. 0 means
	// DefaultSessionTTL (15 s); it must be within [MinSessionTTL,
	// MaxSessionTTL] (1 s, 1 h), as must a TTL a client asks for. Shorter
	// frees the locks of a client that died sooner, and needs renewals
	// more often (a client renews every third of it).
	SessionTTL time.Duration

	// MaxSessions bounds the lock sessions open at once; past it, creating
	// one is 503. 0 means DefaultMaxSessions (1024).
	MaxSessions int

	// MaxSessionLocks bounds the locks one session holds; past it, a lock
	// request for the session is 409. 0 means DefaultMaxSessionLocks (64).
	MaxSessionLocks int

	// Now is the clock of lock sessions' expiry. nil means time.Now; tests
	// inject a clock here. (Locks' leases run on the node's clock.)
	Now func() time.Time

	// Metrics are what GET /metrics serves; give the same to the node
	// (node.Config.Observer) for fsync latency and replication lag. nil
	// means NewMetrics(), without those two. A Metrics serves one Server:
	// a second is ErrMetricsInUse.
	Metrics *Metrics
}

func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	if out.MaxBodySize < 0 || out.MaxLockWait < 0 || out.LockAckWait < 0 || out.Heartbeat < 0 || out.WatchBuffer < 0 || out.WriteWait < 0 || out.WatchMaxBytes < 0 {
		// Not %+v of out: it would print the token.
		return out, fmt.Errorf("%w: negative field (MaxBodySize %d, MaxLockWait %v, LockAckWait %v, Heartbeat %v, WatchBuffer %d, WatchMaxBytes %d, WriteWait %v)",
			ErrInvalidConfig, out.MaxBodySize, out.MaxLockWait, out.LockAckWait, out.Heartbeat, out.WatchBuffer, out.WatchMaxBytes, out.WriteWait)
	}
	if out.MaxSessions < 0 || out.MaxSessionLocks < 0 {
		return out, fmt.Errorf("%w: negative MaxSessions %d or MaxSessionLocks %d", ErrInvalidConfig, out.MaxSessions, out.MaxSessionLocks)
	}
	if out.SessionTTL == 0 {
		out.SessionTTL = DefaultSessionTTL
	}
	if out.SessionTTL < MinSessionTTL || out.SessionTTL > MaxSessionTTL {
		return out, fmt.Errorf("%w: SessionTTL %v is not in [%v, %v]", ErrInvalidConfig, out.SessionTTL, MinSessionTTL, MaxSessionTTL)
	}
	if out.MaxSessions == 0 {
		out.MaxSessions = DefaultMaxSessions
	}
	if out.MaxSessionLocks == 0 {
		out.MaxSessionLocks = DefaultMaxSessionLocks
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.MaxBodySize == 0 {
		out.MaxBodySize = DefaultMaxBodySize
	}
	if out.MaxLockWait == 0 {
		out.MaxLockWait = DefaultMaxLockWait
	}
	if out.LockAckWait == 0 {
		out.LockAckWait = DefaultLockAckWait
	}
	if out.Heartbeat == 0 {
		out.Heartbeat = DefaultHeartbeat
	}
	if out.WatchBuffer == 0 {
		out.WatchBuffer = DefaultWatchBuffer
	}
	if out.WatchMaxBytes == 0 {
		out.WatchMaxBytes = DefaultWatchMaxBytes
	}
	if out.WriteWait == 0 {
		out.WriteWait = DefaultWriteWait
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.PublicPaths == nil {
		out.PublicPaths = DefaultPublicPaths
	}
	out.PublicPaths = slices.Clone(out.PublicPaths)
	if out.Token != nil {
		tok := bytes.TrimSpace(out.Token)
		if len(tok) == 0 {
			return out, fmt.Errorf("%w: Token is empty", ErrInvalidConfig)
		}
		out.Token = slices.Clone(tok)
	}
	return out, nil
}

// Server is the HTTP API of one node: an http.Handler. Create it with New;
// Close ends its watch streams.
type Server struct {
	n    Node
	cfg  Config
	mux  *http.ServeMux
	done chan struct{} // closed by Close
	once sync.Once

	metrics  *Metrics
	sessions *sessions
	watchers atomic.Int64
	token    []byte // SHA-256 of Config.Token, or nil
	lags     lagTracker
}

// New returns a Server for n; nil cfg means the defaults.
func New(n Node, cfg *Config) (*Server, error) {
	if n == nil {
		return nil, ErrNilNode
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{n: n, cfg: c, mux: http.NewServeMux(), done: make(chan struct{}), metrics: c.Metrics}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.sessions = newSessions(c.Now, c.Logger, c.MaxSessions, c.MaxSessionLocks)
	if err := s.metrics.register(s); err != nil {
		s.sessions.close()
		return nil, err
	}
	if c.Token != nil {
		sum := sha256.Sum256(c.Token)
		s.token = sum[:]
	}
	routes := []struct {
		pattern string
		h       func(http.ResponseWriter, *http.Request) error
	}{
		{"GET /v1/models/{name}", s.getModel},
		{"GET /v1/models/{name}/keys/{key...}", s.getKey},
		{"PUT /v1/models/{name}/keys/{key...}", s.putKey},
		{"DELETE /v1/models/{name}/keys/{key...}", s.deleteKey},
		{"GET /v1/models/{name}/watch", s.watchModel},
		{"POST /v1/events/{name}", s.emit},
		{"GET /v1/events/{name}", s.getEvents},
		{"GET /v1/events/{name}/watch", s.watchEvents},
		{"GET /v1/docs/{name}", s.getDoc},
		{"PATCH /v1/docs/{name}", s.patchDoc},
		{"GET /v1/docs/{name}/watch", s.watchDoc},
		{"GET /v1/locks/{name}", s.getLockTable},
		{"GET /v1/locks/{name}/{lock}", s.getLock},
		{"POST /v1/locks/{name}/{lock}", s.takeLock},
		{"DELETE /v1/locks/{name}/{lock}", s.releaseLock},
		{"POST /v1/sessions", s.createSession},
		{"GET /v1/sessions", s.listSessions},
		{"GET /v1/sessions/{id}", s.getSession},
		{"PUT /v1/sessions/{id}", s.renewSession},
		{"DELETE /v1/sessions/{id}", s.endSession},
		{"DELETE /v1/documents/{name}", s.deleteDocument},
		{"GET /v1/status", s.status},
		{"GET /v1/status/watch", s.watchStatus},
		{"GET /v1/models/{name}/replicate", s.replicateModel},
		{"GET /metrics", s.serveMetrics},
		{"POST /v1/members/{id}/force-leave", s.forceLeave},
		{"POST /v1/rpc/{name...}", s.call},
		{"GET /healthz", s.healthz}, // UnauthenticatedRoutes
		{"GET /readyz", s.readyz},
	}
	for _, r := range routes {
		s.mux.Handle(r.pattern, s.wrap(r.h))
	}
	s.mux.Handle("GET /ui/", s.serveUI())
	s.mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	return s, nil
}

// Close ends every watch stream, now and from now on, so that
// http.Server.Shutdown does not wait for them, and stops the goroutine
// that expires lock sessions (requests still find expired sessions
// ended). Other requests are served as before. Close is idempotent and
// always returns nil.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.lags.close()
		s.sessions.close()
	})
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// No route: let the mux decide between 404 and 405 (and set Allow),
	// then answer in JSON.
	rec := &statusOnly{header: http.Header{}}
	s.mux.ServeHTTP(rec, r)
	code := rec.code
	if code == 0 || code == http.StatusOK {
		code = http.StatusNotFound
	}
	for _, h := range []string{"Allow", "Location"} { // 405; a redirect to the clean path
		if v := rec.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	msg := "no route for " + r.Method + " " + r.URL.Path
	if code == http.StatusMethodNotAllowed {
		msg = "method " + r.Method + " not allowed on " + r.URL.Path
		if allow := rec.header.Get("Allow"); allow != "" {
			msg += " (allowed: " + allow + ")"
		}
	}
	writeJSON(w, code, errorBody{msg})
	s.metrics.request("", code, time.Since(start))
}

// statusOnly is a ResponseWriter that keeps the status and headers and
// throws the body away: the mux's own 404 and 405 answers are plain text.
type statusOnly struct {
	header http.Header
	code   int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}

// httpError is an error with the status code to answer it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error string `json:"error"`
}

// wrap turns a handler that returns an error into an http.Handler that
// answers the error as JSON with its status code, and counts the request.
func (s *Server) wrap(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &codeWriter{ResponseWriter: w}
		if err := h(cw, r); err != nil {
			code, msg := s.classify(err)
			if cw.code == 0 {
				writeJSON(cw, code, errorBody{msg})
			}
		}
		if cw.code == 0 {
			cw.code = http.StatusOK
		}
		s.metrics.request(r.Pattern, cw.code, time.Since(start))
	})
}

// codeWriter records the status code written, for the metrics. Unwrap lets
// http.ResponseController reach the underlying writer (Flush, deadlines).
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.ResponseWriter.Write(b)
}

func (c *codeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// classify maps an error to a status code and the message the client gets.
func (s *Server) classify(err error) (code int, msg string) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit)
	case errors.Is(err, node.ErrInvalidName), errors.Is(err, model.ErrInvalidValue),
		errors.Is(err, emitter.ErrInvalidArg), errors.Is(err, emitter.ErrInvalidName),
		errors.Is(err, lock.ErrInvalidName),
		errors.Is(err, doc.ErrInvalidPath), errors.Is(err, doc.ErrInvalidValue),
		errors.Is(err, doc.ErrNotObject), errors.Is(err, doc.ErrTooDeep):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, doc.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, doc.ErrNotNumber), errors.Is(err, doc.ErrNotArray):
		// The document holds something else at the path: the request
		// conflicts with its state.
		return http.StatusConflict, err.Error()
	case errors.Is(err, scuttlebutt.ErrInvalidUpdate):
		// A local write refused by the base: over the update size limit.
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, node.ErrTooManyDocuments):
		// The cluster holds as many documents as this node may: the
		// request conflicts with that state (delete some, or raise
		// -max-documents); the message names the cap.
		return http.StatusConflict, err.Error()
	case errors.Is(err, node.ErrDocumentType), errors.Is(err, lock.ErrLocked):
		return http.StatusConflict, err.Error()
	case errors.Is(err, lock.ErrNotOwner):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, node.ErrClosed), errors.Is(err, node.ErrLeft), errors.Is(err, lock.ErrClosed):
		return http.StatusServiceUnavailable, err.Error()
	}
	s.cfg.Logger.Error("api: request failed", "err", err)
	return http.StatusInternalServerError, err.Error()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{"encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// docName returns the {name} of r, checked.
func docName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := node.CheckName(name); err != nil {
		return "", errorf(http.StatusBadRequest, "document name: %v", err)
	}
	return name, nil
}

// checkKey checks a key, event name or lock name: 1 to MaxKeySize bytes of
// UTF-8, no control characters.
func checkKey(what, k string) error {
	switch {
	case k == "":
		return errorf(http.StatusBadRequest, "%s is empty", what)
	case len(k) > MaxKeySize:
		return errorf(http.StatusBadRequest, "%s of %d bytes, over %d", what, len(k), MaxKeySize)
	case !utf8.ValidString(k):
		return errorf(http.StatusBadRequest, "%s %q is not UTF-8", what, k)
	}
	for _, c := range k {
		if unicode.IsControl(c) {
			return errorf(http.StatusBadRequest, "%s %q holds a control character", what, k)
		}
	}
	return nil
}

// lookup returns the existing document named by r's {name}, of type kind,
// as open opens it: 404 if there is none, 409 if it has another type. It
// never creates a document.
func lookup[D any](s *Server, r *http.Request, kind string, open func(name string) (D, error)) (doc D, err error) {
	name, err := docName(r)
	if err != nil {
		return doc, err
	}
	switch have, ok := s.existing(name); {
	case !ok:
		return doc, errorf(http.StatusNotFound, "no document %q", name)
	case have != kind:
		return doc, errorf(http.StatusConflict, "document %q is a %s, not a %s", name, have, kind)
	}
	return open(name)
}

// scratchID is the replica id of the throwaway documents precheck writes to.
const scratchID = "api-precheck"

// precheck runs try, a write to a throwaway document, if the node holds no
// document called name: a write that would fail must not create the
// document, since a request that fails changes nothing. A write to an
// existing document that fails changes nothing by itself.
func (s *Server) precheck(name string, try func() error) error {
	if _, ok := s.existing(name); ok {
		return nil
	}
	return try()
}

// Document types, as node.DocumentInfo.Type names them.
const (
	typeModel   = "model"
	typeEmitter = "emitter"
	typeLock    = "lock"
	typeDoc     = "doc"
)

// existingModel, existingEmitter and existingLocks are lookup for each
// type of document.
func (s *Server) existingModel(r *http.Request) (*model.Model, error) {
	return lookup(s, r, typeModel, s.n.Model)
}

func (s *Server) existingEmitter(r *http.Request) (*emitter.Emitter, error) {
	return lookup(s, r, typeEmitter, s.n.Emitter)
}

func (s *Server) existingLocks(r *http.Request) (*lock.Table, error) {
	return lookup(s, r, typeLock, s.n.Locks)
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	m, err := s.existingModel(r)
	if err != nil {
		return err
	}
	snap := m.Snapshot()
	if r.URL.Query().Get("writes") == "" {
		writeJSON(w, http.StatusOK, snap)
		return nil
	}
	// ?writes=1: each key's value with the source and time of its write.
	out := make(map[string]writtenBody, len(snap))
	for k, v := range snap {
		if src, ts, ok := m.Written(k); ok {
			out[k] = writtenBody{v, src, float64(ts)}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// writtenBody is one key of GET /v1/models/{name}?writes=1.
type writtenBody struct {
	Value     any     `json:"value"`
	Source    string  `json:"source"`
	Timestamp float64 `json:"timestamp"`
}

// keyBody is one key and its value, as GET and PUT of a key answer.
type keyBody struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := checkKey("key", key); err != nil {
		return err
	}
	m, err := s.existingModel(r)
	if err != nil {
		return err
	}
	v, ok := m.Get(key)
	if !ok {
		return errorf(http.StatusNotFound, "no key %q in %q", key, r.PathValue("name"))
	}
	writeJSON(w, http.StatusOK, keyBody{key, v})
	return nil
}

func (s *Server) putKey(w http.ResponseWriter, r *http.Request) error {
	name, err := docName(r)
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	if err := checkKey("key", key); err != nil {
		return err
	}
	v, err := s.readValue(w, r)
	if err != nil {
		return err
	}
	err = s.precheck(name, func() error {
		m, err := model.New(scratchID, nil)
		if err != nil {
			return err
		}
		return m.Set(key, v)
	})
	if err != nil {
		return err
	}
	m, err := s.n.Model(name)
	if err != nil {
		return err
	}
	if err := m.Set(key, v); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keyBody{key, v})
	return nil
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := checkKey("key", key); err != nil {
		return err
	}
	m, err := s.existingModel(r)
	if err != nil {
		return err
	}
	if _, ok := m.Get(key); !ok {
		return errorf(http.StatusNotFound, "no key %q in %q", key, r.PathValue("name"))
	}
	if err := m.Delete(key); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Key     string `json:"key"`
		Deleted bool   `json:"deleted"`
	}{key, true})
	return nil
}

// emitBody is the body of POST /v1/events/{name}.
type emitBody struct {
	Event string `json:"event"`
	Args  []any  `json:"args"`
}

// eventBody is one event as the API shows it.
type eventBody struct {
	Event     string  `json:"event"`
	Args      []any   `json:"args"`
	Source    string  `json:"source"`
	Timestamp float64 `json:"timestamp"`
	Local     bool    `json:"local"`
}

func toEventBody(ev emitter.Event) eventBody {
	args := ev.Args
	if args == nil {
		args = []any{}
	}
	return eventBody{ev.Name, args, ev.Source, float64(ev.Timestamp), ev.Local}
}

func (s *Server) emit(w http.ResponseWriter, r *http.Request) error {
	name, err := docName(r)
	if err != nil {
		return err
	}
	v, err := s.readValue(w, r)
	if err != nil {
		return err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return errorf(http.StatusBadRequest, `body must be an object {"event": "name", "args": [...]}`)
	}
	var body emitBody
	for k, f := range obj {
		switch k {
		case "event":
			if body.Event, ok = f.(string); !ok {
				return errorf(http.StatusBadRequest, `"event" must be a string`)
			}
		case "args":
			if f == nil {
				continue
			}
			if body.Args, ok = f.([]any); !ok {
				return errorf(http.StatusBadRequest, `"args" must be an array`)
			}
		default:
			return errorf(http.StatusBadRequest, "unknown field %q", k)
		}
	}
	if err := checkKey("event name", body.Event); err != nil {
		return err
	}
	err = s.precheck(name, func() error {
		e, err := emitter.New(scratchID, nil)
		if err != nil {
			return err
		}
		return e.Emit(body.Event, body.Args...)
	})
	if err != nil {
		return err
	}
	e, err := s.n.Emitter(name)
	if err != nil {
		return err
	}
	if err := e.Emit(body.Event, body.Args...); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Event string `json:"event"`
		Args  []any  `json:"args"`
	}{body.Event, nonNil(body.Args)})
	return nil
}

func nonNil(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	limit := -1
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, "limit %q is not a count", q)
		}
		limit = n
	}
	e, err := s.existingEmitter(r)
	if err != nil {
		return err
	}
	evs := e.Events(nil)
	if limit >= 0 && len(evs) > limit {
		evs = evs[len(evs)-limit:]
	}
	out := make([]eventBody, len(evs))
	for i, ev := range evs {
		out[i] = toEventBody(ev)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getLockTable(w http.ResponseWriter, r *http.Request) error {
	s.sessions.sweep() // the locks of expired sessions are released before anything is read
	t, err := s.existingLocks(r)
	if err != nil {
		return err
	}
	held := []lockBody{}
	for _, l := range t.Held() {
		held = append(held, describeLock(t, l))
	}
	writeJSON(w, http.StatusOK, struct {
		Name    string     `json:"name"`
		Members []string   `json:"members"`
		Held    []lockBody `json:"held"`
	}{r.PathValue("name"), t.Members(), held})
	return nil
}

// lockBody describes one lock.
type lockBody struct {
	Lock    string   `json:"lock"`
	Holders []string `json:"holders"`
	// Deadline is when this node's hold ends unless renewed; absent if
	// this node does not hold the lock.
	Deadline *time.Time `json:"deadline,omitempty"`
}

func describeLock(t *lock.Table, name string) lockBody {
	b := lockBody{Lock: name, Holders: t.Holders(name)}
	if b.Holders == nil {
		b.Holders = []string{}
	}
	if d, ok := t.Deadline(name); ok {
		b.Deadline = &d
	}
	return b
}

func (s *Server) getLock(w http.ResponseWriter, r *http.Request) error {
	s.sessions.sweep()
	name := r.PathValue("lock")
	if err := checkKey("lock name", name); err != nil {
		return err
	}
	t, err := s.existingLocks(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, describeLock(t, name))
	return nil
}

// takeBody answers a lock request: the lock, and the session it is held
// for.
type takeBody struct {
	lockBody
	Session sessionBody `json:"session"`
}

func (s *Server) takeLock(w http.ResponseWriter, r *http.Request) error {
	s.sessions.sweep()
	table, err := docName(r)
	if err != nil {
		return err
	}
	name := r.PathValue("lock")
	if err := checkKey("lock name", name); err != nil {
		return err
	}
	q := r.URL.Query()
	var wait time.Duration
	if v := q.Get("timeout"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			return errorf(http.StatusBadRequest, "timeout %q is not a duration like 5s", v)
		}
		if wait > s.cfg.MaxLockWait {
			return errorf(http.StatusBadRequest, "timeout %s over the limit of %s", wait, s.cfg.MaxLockWait)
		}
	}
	sid, ttl := q.Get("session"), s.cfg.SessionTTL
	if v := q.Get("ttl"); v != "" {
		if sid != "" {
			return errorf(http.StatusBadRequest, "ttl is the TTL of a new session: give it with POST /v1/sessions, not with ?session=")
		}
		if ttl, err = parseTTL(v); err != nil {
			return err
		}
	}
	var sess *session
	if sid != "" {
		if sess, err = s.sessions.get(sid); err != nil {
			return err
		}
	}
	t, err := s.n.Locks(table)
	if err != nil {
		return err
	}
	key := holdKey{t, name}
	if sess == nil {
		// A one-lock session, whose TTL runs from the grant.
		if sess, err = s.sessions.create(ttl, max(wait, s.cfg.LockAckWait), true); err != nil {
			return err
		}
		defer s.sessions.abandon(sess)
	} else if err := s.sessions.reserve(sess, key); err != nil {
		return err
	}
	s.sessions.waits(sess, 1)
	err = s.acquire(r.Context(), t, sess, name, wait)
	s.sessions.waits(sess, -1)
	if err != nil {
		return err
	}
	if err := s.sessions.attach(sess, key, table); err != nil {
		return err
	}
	b, err := s.sessions.describe(sess.id)
	if err != nil { // ended since: its locks are released
		return err
	}
	writeJSON(w, http.StatusOK, takeBody{describeLock(t, name), b})
	return nil
}

// acquire takes name in t for sess: Lock for up to wait, or a TryLock
// for wait 0. It gives up when the request or the session ends.
func (s *Server) acquire(ctx context.Context, t *lock.Table, sess *session, name string, wait time.Duration) error {
	ctx, cancel := sessionContext(ctx, sess)
	defer cancel(nil)
	var err error
	if wait > 0 {
		ctx, cancelWait := context.WithTimeout(ctx, wait)
		err = t.Lock(ctx, name)
		cancelWait()
	} else {
		ctx, cancelWait := context.WithTimeout(ctx, s.cfg.LockAckWait)
		wait = s.cfg.LockAckWait
		err = t.TryLock(ctx, name)
		cancelWait()
	}
	switch {
	case errors.Is(context.Cause(ctx), errSessionEnded):
		return errorf(http.StatusNotFound, "lock session %q ended while its lock request waited", sess.id)
	case errors.Is(err, context.DeadlineExceeded):
		if holders := t.Holders(name); len(holders) > 0 {
			return errorf(http.StatusConflict, "lock %q not granted within %s: held by %v", name, wait, holders)
		}
		return errorf(http.StatusServiceUnavailable, "lock %q not granted within %s: not every member has acknowledged the claim", name, wait)
	case errors.Is(err, lock.ErrLocked):
		if holders := t.Holders(name); len(holders) > 0 {
			return fmt.Errorf("%w: held by %v", err, holders)
		}
	}
	return err
}

func (s *Server) releaseLock(w http.ResponseWriter, r *http.Request) error {
	s.sessions.sweep()
	name := r.PathValue("lock")
	if err := checkKey("lock name", name); err != nil {
		return err
	}
	t, err := s.existingLocks(r)
	if err != nil {
		return err
	}
	if err := s.sessions.release(r.URL.Query().Get("session"), holdKey{t, name}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, describeLock(t, name))
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.n.Status())
	return nil
}

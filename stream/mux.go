package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Errors of multiplexed sessions.
var (
	// ErrUnknownDocument means the peer has no document of the name a
	// stream was opened for. The stream is closed; the peer opens one of
	// its own when it adds the document.
	ErrUnknownDocument = errors.New("stream: unknown document")
	// ErrDocumentType means the two sides hold documents of the same name
	// but different types.
	ErrDocumentType = errors.New("stream: document type mismatch")
	// ErrDuplicateDocument means a document of that name was already added.
	ErrDuplicateDocument = errors.New("stream: document already added")
	// ErrMuxClosed means the multiplexed session has ended.
	ErrMuxClosed = errors.New("stream: mux closed")
	// ErrUnknownService means the peer has no service of the name Open
	// asked for (see Mux.Handle).
	ErrUnknownService = errors.New("stream: unknown service")
)

// Frame kinds of the document handshake at the start of every mux stream.
// They share the frame header with the protocol messages, so they take
// numbers the protocol will not: only ever append.
const (
	kindOpen   = 0x40 // opener -> acceptor: {1: name, 2: type}
	kindAccept = 0x41 // acceptor -> opener: {} to accept, {3: error} to refuse
	// kindService opens a stream for a service (Mux.Handle, Mux.Open)
	// rather than a document: {1: service name}, answered by kindAccept.
	// Its own kind keeps service names apart from document names.
	kindService = 0x42
)

// ServiceFunc serves one incoming stream of a service registered with
// Mux.Handle. It runs in a goroutine of its own, one per stream, and must
// return when ctx ends (Run is returning); the stream is closed after it
// returns.
type ServiceFunc func(ctx context.Context, rwc io.ReadWriteCloser)

// Typed is implemented by documents that name their type for the mux
// handshake; others are named by their Go type. Two sides replicate a
// document only if names and types match.
type Typed interface {
	DocType() string
}

// MuxOptions configures a Mux. nil means the defaults.
type MuxOptions struct {
	// Conn is used for every document's Conn; nil means the defaults. Its
	// Codec must be CBOR (the default).
	Conn *Options
	// KeepAliveInterval is how often yamux pings the peer so that a dead
	// peer is noticed; 0 means 10 s. A peer silent for this long plus the
	// write timeout ends the session.
	KeepAliveInterval time.Duration
	// OpenTimeout bounds the document handshake on a new stream; 0 means
	// 10 s.
	OpenTimeout time.Duration
	// OnError, if set, is called with errors that end one document's stream
	// but not the session (a bad frame on that stream, a type mismatch).
	// It is called from the stream's goroutine.
	OnError func(name string, err error)
}

// Mux replicates many named documents over one connection, one yamux
// stream per document. Either side may open a document's stream; if both
// do at once, the stream opened by the client side wins on both ends. A
// document added while the session runs starts replicating at once.
//
// Methods are safe for concurrent use.
type Mux struct {
	sess   *yamux.Session
	client bool
	opts   MuxOptions

	mu       sync.Mutex
	docs     map[string]scuttlebutt.Document
	services map[string]ServiceFunc
	active   map[string]*muxStream
	ctx      context.Context // set by Run; nil before
	wg       sync.WaitGroup
	stopped  bool
}

type muxStream struct {
	stream   *yamux.Stream
	conn     *Conn
	byClient bool
	cancel   context.CancelFunc
}

// NewMux starts a multiplexed session over conn. Exactly one side must be
// the client (the one that dialled). The session is closed by Run's return.
func NewMux(conn io.ReadWriteCloser, client bool, opts *MuxOptions) (*Mux, error) {
	var o MuxOptions
	if opts != nil {
		o = *opts
	}
	if o.Conn != nil && o.Conn.Codec != nil && o.Conn.Codec != CBOR {
		return nil, fmt.Errorf("%w: mux needs the CBOR codec", ErrInvalidOptions)
	}
	if o.KeepAliveInterval <= 0 {
		o.KeepAliveInterval = 10 * time.Second
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 10 * time.Second
	}
	cfg := yamux.DefaultConfig()
	cfg.KeepAliveInterval = o.KeepAliveInterval
	cfg.ConnectionWriteTimeout = o.KeepAliveInterval
	cfg.StreamOpenTimeout = o.OpenTimeout
	cfg.LogOutput = io.Discard
	var (
		sess *yamux.Session
		err  error
	)
	// One Write per frame: header and body together (see joinedWriter).
	jc := joinWrites(conn)
	if client {
		sess, err = yamux.Client(jc, cfg)
	} else {
		sess, err = yamux.Server(jc, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("stream: mux: %w", err)
	}
	return &Mux{
		sess:     sess,
		client:   client,
		opts:     o,
		docs:     make(map[string]scuttlebutt.Document),
		services: make(map[string]ServiceFunc),
		active:   make(map[string]*muxStream),
	}, nil
}

func docType(d scuttlebutt.Document) string {
	if t, ok := d.(Typed); ok {
		return t.DocType()
	}
	return reflect.TypeOf(d).String()
}

// Add registers a document under name and, if the session is running,
// opens its stream. Names are at most 1024 bytes.
func (m *Mux) Add(name string, d scuttlebutt.Document) error {
	if name == "" || len(name) > 1024 {
		return fmt.Errorf("%w: document name of %d bytes", ErrInvalidOptions, len(name))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return ErrMuxClosed
	}
	if _, ok := m.docs[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateDocument, name)
	}
	m.docs[name] = d
	if m.ctx != nil {
		m.goOpen(name)
	}
	return nil
}

// Handle registers fn to serve the streams the peer opens with Open for
// service, replacing any earlier fn. Services are not documents: their
// streams carry whatever protocol fn speaks (an rpc server, say), and
// their names never clash with document names. A stream for a service
// with no fn is refused with ErrUnknownService.
func (m *Mux) Handle(service string, fn ServiceFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fn == nil {
		delete(m.services, service)
		return
	}
	m.services[service] = fn
}

// Open opens a stream to the peer's service, as the peer registered it
// with Handle, and returns it once the peer accepted it: the caller owns
// the stream and closes it; Run's return closes it too. It fails with an
// error wrapping ErrUnknownService if the peer has no such service,
// ErrMuxClosed if the session has ended, or ctx's error; the handshake is
// bounded by MuxOptions.OpenTimeout too. Open may be called before Run,
// but the peer answers only once its own Run accepts streams.
func (m *Mux) Open(ctx context.Context, service string) (rwc io.ReadWriteCloser, err error) {
	if service == "" || len(service) > 1024 {
		return nil, fmt.Errorf("%w: service name of %d bytes", ErrInvalidOptions, len(service))
	}
	m.mu.Lock()
	stopped := m.stopped
	m.mu.Unlock()
	if stopped || m.sess.IsClosed() {
		return nil, ErrMuxClosed
	}
	st, err := m.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMuxClosed, err)
	}
	deadline := time.Now().Add(m.opts.OpenTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	err = writeControl(st, kindService, muxOpen{Name: service})
	if err == nil {
		var reply muxOpen
		if _, err = readControl(st, &reply, kindAccept); err == nil && reply.Error != "" {
			err = fmt.Errorf("%w: %q: %s", ErrUnknownService, service, reply.Error)
		}
	}
	if !stop() || ctx.Err() != nil {
		st.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	st.SetDeadline(time.Time{})
	return st, nil
}

// Remove stops replicating the document called name and forgets it.
func (m *Mux) Remove(name string) {
	m.mu.Lock()
	delete(m.docs, name)
	s := m.active[name]
	delete(m.active, name)
	m.mu.Unlock()
	if s != nil {
		s.cancel()
	}
}

// Names returns the names of the documents added, sorted.
func (m *Mux) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.docs))
}

// Conn returns the Conn currently replicating the document called name,
// or nil if none is.
func (m *Mux) Conn(name string) *Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.active[name]; s != nil {
		return s.conn
	}
	return nil
}

// Stats returns the counters of every active document stream, by name.
func (m *Mux) Stats() map[string]Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Stats, len(m.active))
	for name, s := range m.active {
		out[name] = s.conn.Stats()
	}
	return out
}

// Run serves the session: it opens a stream for every document added,
// accepts the peer's, and returns when ctx ends (nil) or the session fails
// (the error: a dead peer noticed by keepalive, a closed connection). It
// closes the session and waits for every document stream before returning.
func (m *Mux) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	if m.ctx != nil || m.stopped {
		m.mu.Unlock()
		return fmt.Errorf("%w: Run called twice", ErrInvalidOptions)
	}
	m.ctx = ctx
	for name := range m.docs {
		m.goOpen(name)
	}
	m.mu.Unlock()

	acceptErr := make(chan error, 1)
	// The accept loop counts in wg, so that its wg.Add for each accepted
	// stream never races with the wg.Wait below at a zero count.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			st, err := m.sess.AcceptStream()
			if err != nil {
				acceptErr <- err
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.accept(ctx, st)
			}()
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case <-m.sess.CloseChan():
		err = fmt.Errorf("stream: mux session ended: %w", ErrMuxClosed)
	case aerr := <-acceptErr:
		if ctx.Err() == nil {
			err = fmt.Errorf("stream: mux: %w", aerr)
		}
	}
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	cancel()
	m.sess.Close()
	m.wg.Wait()
	return err
}

// goOpen opens the stream of one document in its own goroutine; m.mu is
// held.
func (m *Mux) goOpen(name string) {
	ctx := m.ctx
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.open(ctx, name)
	}()
}

func (m *Mux) open(ctx context.Context, name string) {
	m.mu.Lock()
	d := m.docs[name]
	_, busy := m.active[name]
	m.mu.Unlock()
	if d == nil || busy {
		return
	}
	st, err := m.sess.OpenStream()
	if err != nil {
		return // the session is ending; Run reports it
	}
	st.SetDeadline(time.Now().Add(m.opts.OpenTimeout))
	err = writeControl(st, kindOpen, muxOpen{Name: name, Type: docType(d)})
	if err == nil {
		var reply muxOpen
		if _, err = readControl(st, &reply, kindAccept); err == nil && reply.Error != "" {
			err = refusal(reply.Error)
		}
	}
	if err != nil {
		st.Close()
		if !errors.Is(err, ErrUnknownDocument) {
			m.report(name, err)
		}
		return
	}
	st.SetDeadline(time.Time{})
	m.serve(ctx, name, d, st, m.client)
}

func (m *Mux) accept(ctx context.Context, st *yamux.Stream) {
	st.SetDeadline(time.Now().Add(m.opts.OpenTimeout))
	var req muxOpen
	k, err := readControl(st, &req, kindOpen, kindService)
	if err != nil {
		st.Close()
		m.report("", err)
		return
	}
	if k == kindService {
		m.acceptService(ctx, st, req.Name)
		return
	}
	m.mu.Lock()
	d := m.docs[req.Name]
	m.mu.Unlock()
	var refuse string
	switch {
	case d == nil:
		refuse = "unknown document"
	case docType(d) != req.Type:
		refuse = fmt.Sprintf("type mismatch: %s here, %s there", docType(d), req.Type)
	}
	if refuse != "" {
		writeControl(st, kindAccept, muxOpen{Error: refuse})
		st.Close()
		if d != nil {
			m.report(req.Name, refusal(refuse))
		}
		return
	}
	if err := writeControl(st, kindAccept, muxOpen{}); err != nil {
		st.Close()
		return
	}
	st.SetDeadline(time.Time{})
	m.serve(ctx, req.Name, d, st, !m.client)
}

// acceptService answers the handshake of a service stream and hands the
// stream to the service's fn until it returns or ctx ends.
func (m *Mux) acceptService(ctx context.Context, st *yamux.Stream, name string) {
	m.mu.Lock()
	fn := m.services[name]
	m.mu.Unlock()
	if fn == nil {
		writeControl(st, kindAccept, muxOpen{Error: "unknown service"})
		st.Close()
		return
	}
	if err := writeControl(st, kindAccept, muxOpen{}); err != nil {
		st.Close()
		return
	}
	st.SetDeadline(time.Time{})
	// As in serve: a deadline in the past ends a Read blocked at Run's end.
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	defer st.Close()
	fn(ctx, st)
}

// serve runs one document's Conn on st, unless a stream for the document
// is already active and wins: the stream opened by the client side is kept.
func (m *Mux) serve(ctx context.Context, name string, d scuttlebutt.Document, st *yamux.Stream, byClient bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &muxStream{stream: st, conn: NewConn(d, st, m.opts.Conn), byClient: byClient, cancel: cancel}
	m.mu.Lock()
	if m.docs[name] != d || m.stopped {
		m.mu.Unlock()
		st.Close()
		return
	}
	if old := m.active[name]; old != nil {
		if old.byClient || !byClient {
			m.mu.Unlock()
			st.Close()
			return
		}
		old.cancel() // ours loses to the client's
	}
	m.active[name] = s
	m.mu.Unlock()

	// yamux v0.1.2's Stream.Read spins (goto START on the closed
	// shutdownCh) from Session.Close until the stream is force-closed, and
	// the spinning readers starve the session's receive loop of the stream
	// locks: with 100 streams, Run took seconds to return under -race. A
	// deadline in the past makes a blocked Read return instead.
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	err := s.conn.Run(ctx)
	m.mu.Lock()
	if m.active[name] == s {
		delete(m.active, name)
	}
	m.mu.Unlock()
	if err != nil && ctx.Err() == nil && !m.sess.IsClosed() {
		m.report(name, err)
	}
}

func (m *Mux) report(name string, err error) {
	if m.opts.OnError != nil && !m.sess.IsClosed() {
		m.opts.OnError(name, err)
	}
}

func refusal(msg string) error {
	switch {
	case msg == "unknown document":
		return ErrUnknownDocument
	case len(msg) >= 13 && msg[:13] == "type mismatch":
		return fmt.Errorf("%w: %s", ErrDocumentType, msg[13:])
	}
	return fmt.Errorf("stream: peer refused the document: %s", msg)
}

// muxOpen is the body of the handshake frames.
type muxOpen struct {
	Name  string `cbor:"1,keyasint,omitempty"`
	Type  string `cbor:"2,keyasint,omitempty"`
	Error string `cbor:"3,keyasint,omitempty"`
}

const maxControlFrame = 4 << 10

func writeControl(w io.Writer, kind scuttlebutt.MessageKind, v muxOpen) error {
	b, err := appendFrame(nil, kind, maxControlFrame, func(b []byte) ([]byte, error) { return appendCBOR(b, v) })
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// readControl reads one handshake frame of one of the kinds given into v,
// and returns its kind.
func readControl(r io.Reader, v *muxOpen, kinds ...scuttlebutt.MessageKind) (scuttlebutt.MessageKind, error) {
	// Read exactly one frame: the Conn that follows reads the rest.
	fr := NewFrameReader(r, maxControlFrame)
	k, body, err := fr.ReadFrame()
	if err != nil {
		return 0, fmt.Errorf("stream: mux handshake: %w", err)
	}
	if !slices.Contains(kinds, k) {
		return 0, fmt.Errorf("%w: handshake frame kind %#x, want %#x", ErrUnknownKind, byte(k), byte(kinds[0]))
	}
	if err := decMode.Unmarshal(body, v); err != nil {
		return 0, fmt.Errorf("%w: handshake: %v", ErrMalformed, err)
	}
	return k, nil
}

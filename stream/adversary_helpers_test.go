package stream_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// This file holds the adversary's tools: hand-made wire bytes (SPEC.md's
// frames, the JSON-lines codec's lines), a victim persisted in a log, and a
// few waits. The attacks are in adversary_test.go.

// wireCodecs are the codecs every attack runs over, where the codec can say
// what the attack needs.
var wireCodecs = []struct {
	name  string
	codec stream.Codec
}{
	{"cbor", stream.CBOR},
	{"jsonlines", stream.JSONLines},
}

// Wire kinds of SPEC.md, written here by hand rather than taken from the
// package, so that the tests pin the numbers. kindClockPart is being added
// to stream (a clock split over several frames); a victim that does not
// know it refuses it with stream.ErrUnknownKind.
const (
	kindHello     byte = 1
	kindUpdates   byte = 2
	kindSync      byte = 3
	kindClock     byte = 4
	kindClockPart byte = 5
)

// rawClock is a clock as the attacker writes it: source to timestamp.
type rawClock map[string]float64

// rawUpdate is one update as the attacker writes it, for a model: the
// data is [key, value].
type rawUpdate struct {
	source string
	ts     float64
	key    string
	value  any
}

// cborFrame frames the CBOR encoding of v as kind: a 5-byte header (kind,
// big-endian uint32 length) and the body.
func cborFrame(t testing.TB, kind byte, v any) []byte {
	t.Helper()
	body, err := cbor.Marshal(v)
	if err != nil {
		t.Fatalf("cbor.Marshal(%T): %v", v, err)
	}
	return rawFrameOf(kind, body)
}

// rawFrameOf frames body as kind, whatever body holds.
func rawFrameOf(kind byte, body []byte) []byte {
	b := make([]byte, 5, 5+len(body))
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

// jsNum writes a number as JavaScript's JSON.stringify does: integers and
// plain decimals below 1e21, exponents without "+" from there on
// (1.7976931348623157e308).
func jsNum(v float64) string {
	if math.Abs(v) < 1e21 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strings.Replace(strconv.FormatFloat(v, 'g', -1, 64), "e+", "e", 1)
}

// jsonText is the JSON text of v.
func jsonText(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", v, err)
	}
	return string(b)
}

// jsonClock writes a clock as a JSON object, sources in no particular
// order.
func jsonClock(t testing.TB, c rawClock) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for src := range c {
		if !first {
			b.WriteByte(',')
		}
		first = false
		if plainID(src) {
			b.WriteByte('"')
			b.WriteString(src)
			b.WriteByte('"')
		} else {
			b.WriteString(jsonText(t, src))
		}
		b.WriteByte(':')
		b.WriteString(jsNum(c[src]))
	}
	b.WriteByte('}')
	return b.String()
}

// plainID reports whether id is written in JSON as it is, between quotes:
// a fast path for clocks of many sources.
func plainID(id string) bool {
	for i := range len(id) {
		if c := id[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// attacker holds the far end of a net.Pipe whose near end a victim's Conn
// serves. The test writes hand-made bytes to it; everything the victim
// sends is read and dropped.
type attacker struct {
	id     string // the id its hello presents
	codec  stream.Codec
	conn   net.Conn
	victim *session // the victim's Conn
}

// newAttacker starts a Conn serving victim with codec over a net.Pipe and
// returns the other end.
func newAttacker(t *testing.T, id string, victim scuttlebutt.Document, codec stream.Codec) *attacker {
	t.Helper()
	ours, theirs := pipePair(t)
	s := start(t, victim.Base().ID()+" (attacked by "+id+")", victim, ours, &stream.Options{Codec: codec})
	go io.Copy(io.Discard, theirs) // ends when either end closes
	return &attacker{id: id, codec: codec, conn: theirs, victim: s}
}

func (a *attacker) json() bool { return a.codec == stream.JSONLines }

// send writes parts in one Write. A write error is not the test's
// concern: a victim that refuses something hangs up, maybe before it has
// read the rest.
func (a *attacker) send(parts ...[]byte) {
	a.conn.Write(bytes.Join(parts, nil))
}

// hangUp closes the attacker's end.
func (a *attacker) hangUp() { a.conn.Close() }

// result returns the victim's Run result.
func (a *attacker) result(t *testing.T) error {
	t.Helper()
	return a.victim.wait(t)
}

// hello is the attacker's hello with clock.
func (a *attacker) hello(t testing.TB, clock rawClock) []byte {
	t.Helper()
	if clock == nil {
		clock = rawClock{}
	}
	if a.json() {
		return []byte(`{"id":` + jsonText(t, a.id) + `,"clock":` + jsonClock(t, clock) + "}\n")
	}
	return cborFrame(t, kindHello, map[uint64]any{1: uint64(1), 2: a.id, 3: map[string]float64(clock)})
}

// again is a second hello: sent after a hostile message, it makes a victim
// that accepted the hostile message end the session at once with a
// protocol error ("second hello"), rather than wait for the test to time
// out; a victim that refused it never reads this.
func (a *attacker) again(t testing.TB) []byte { return a.hello(t, nil) }

// updates is one updates frame (CBOR), or one line per update (JSON
// lines; lines that arrive together are applied as one batch).
func (a *attacker) updates(t testing.TB, us ...rawUpdate) []byte {
	t.Helper()
	if a.json() {
		var b []byte
		for _, u := range us {
			b = fmt.Appendf(b, "[%s,%s,%s]\n", jsonText(t, []any{u.key, u.value}), jsNum(u.ts), jsonText(t, u.source))
		}
		return b
	}
	arr := make([]any, len(us))
	for i, u := range us {
		data, err := cbor.Marshal([]any{u.key, u.value})
		if err != nil {
			t.Fatalf("cbor.Marshal([%q, %#v]): %v", u.key, u.value, err)
		}
		arr[i] = []any{u.source, u.ts, cbor.RawMessage(data)}
	}
	return cborFrame(t, kindUpdates, arr)
}

// sync is a sync with clock; the JSON-lines "SYNC" carries no clock.
func (a *attacker) sync(t testing.TB, clock rawClock) []byte {
	t.Helper()
	if a.json() {
		return []byte("\"SYNC\"\n")
	}
	if clock == nil {
		clock = rawClock{}
	}
	return cborFrame(t, kindSync, map[string]float64(clock))
}

// clock is a clock message; JSON lines has none.
func (a *attacker) clock(t testing.TB, clock rawClock) []byte {
	t.Helper()
	if a.json() {
		t.Fatalf("a clock message has no JSON-lines form")
	}
	return cborFrame(t, kindClock, map[string]float64(clock))
}

// durable is a victim: a model persisted with filelog in the test's
// temporary directory.
type durable struct {
	*model.Model
	log  *filelog.Log
	path string
	cfg  *scuttlebutt.Config
}

// newDurable creates a model with id and a new log for it.
func newDurable(t *testing.T, id string, cfg *scuttlebutt.Config) *durable {
	t.Helper()
	return openDurable(t, id, filepath.Join(t.TempDir(), id+".log"), cfg)
}

func openDurable(t *testing.T, id, path string, cfg *scuttlebutt.Config) *durable {
	t.Helper()
	m, err := model.New(id, cfg)
	if err != nil {
		t.Fatalf("model.New(%q): %v", id, err)
	}
	log, err := filelog.Open(path, m, nil)
	if err != nil {
		t.Fatalf("filelog.Open(%s) for %s: %v", path, id, err)
	}
	d := &durable{Model: m, log: log, path: path, cfg: cfg}
	t.Cleanup(func() {
		if err := log.Close(); err != nil && !errors.Is(err, filelog.ErrClosed) {
			t.Errorf("%s: closing the log: %v", id, err)
		}
	})
	return d
}

// restart closes the log and brings the replica back from it as a new
// process does: a new model with the same id (and a new incarnation).
// Sessions of the old one must have ended.
func (d *durable) restart(t *testing.T) *durable {
	t.Helper()
	if err := d.log.Close(); err != nil {
		t.Fatalf("%s: closing the log: %v", d.ID(), err)
	}
	return openDurable(t, d.ID(), d.path, d.cfg)
}

// serveBoth serves a and b to each other over a net.Pipe with codec until the
// test ends (or the sessions are stopped), and waits until both are
// synced.
func serveBoth(t *testing.T, a, b *model.Model, codec stream.Codec) (sa, sb *session) {
	t.Helper()
	return serveBothOpts(t, a, b, &stream.Options{Codec: codec})
}

func serveBothOpts(t *testing.T, a, b *model.Model, opts *stream.Options) (sa, sb *session) {
	t.Helper()
	ca, cb := pipePair(t)
	sa = start(t, a.ID()+" (to "+b.ID()+")", a, ca, opts)
	sb = start(t, b.ID()+" (to "+a.ID()+")", b, cb, opts)
	waitSynced(t, sa, sb)
	return sa, sb
}

// stopAll stops sessions, failing on any that ended with an error.
func stopAll(t *testing.T, ss ...*session) {
	t.Helper()
	for _, s := range ss {
		if err := s.stop(t); err != nil {
			t.Errorf("%s: Run = %v, want nil", s.name, err)
		}
	}
}

// waitValue waits until m's key holds want.
func waitValue(t *testing.T, m *model.Model, key string, want any) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s gets %s=%v", m.ID(), key, want), func() error {
		if got, ok := m.Get(key); !ok || got != want {
			return fmt.Errorf("%s.Get(%q) = %v, %v", m.ID(), key, got, ok)
		}
		return nil
	})
}

// checkRefused checks that err wraps target and its message names each of
// names (the peer, the source).
func checkRefused(t *testing.T, what string, err, target error, names ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: the victim's Run = %v, want an error wrapping %q", what, err, target)
	}
	t.Logf("%s: refused: %v", what, err)
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%s: the error %q does not name %q", what, err, n)
		}
	}
}

// setNearNow sets key to each of values in turn, checking each time that
// the write was stamped within a second of the wall clock and that Get
// returns it.
func setNearNow(t *testing.T, m *model.Model, key string, values ...any) {
	t.Helper()
	for _, v := range values {
		set(t, m, key, v)
		ts := m.Clock()[m.Source()]
		if off := time.Since(ts.Time()); off.Abs() > time.Second {
			t.Errorf("%s: Set(%q, %v) was stamped %s, %v off the wall clock; want within 1s", m.ID(), key, v, ts, -off)
		}
		if got, ok := m.Get(key); !ok || got != v {
			t.Errorf("%s: after Set(%q, %v), Get = %v, %v", m.ID(), key, v, got, ok)
		}
	}
}

// nowMS is the wall clock in milliseconds since the epoch.
func nowMS() float64 { return float64(time.Now().UnixMilli()) }

// fakeClock is a wall clock the test moves; it starts at a fixed time.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(1_800_000_000_000)
	return c
}

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// lockedBuffer is a bytes.Buffer for a logger that other goroutines write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// errDiskFull is what flakyStorage's Sync fails with.
var errDiskFull = errors.New("test storage: no space left on device")

// flakyStorage is a scuttlebutt.Storage that keeps nothing; its Sync
// fails with errDiskFull while failing is set. onSync, if set, is called
// at the start of each Sync.
type flakyStorage struct {
	mu      sync.Mutex
	seq     uint64
	failing bool
	onSync  func(seq uint64)
}

var _ scuttlebutt.Storage = (*flakyStorage)(nil)

func (s *flakyStorage) Append(us []scuttlebutt.Update) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq, nil
}

func (s *flakyStorage) Sync(seq uint64) error {
	s.mu.Lock()
	failing, hook := s.failing, s.onSync
	s.mu.Unlock()
	if hook != nil {
		hook(seq)
	}
	if failing {
		return fmt.Errorf("fsync of record %d: %w", seq, errDiskFull)
	}
	return nil
}

func (s *flakyStorage) set(failing bool, onSync func(uint64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing, s.onSync = failing, onSync
}

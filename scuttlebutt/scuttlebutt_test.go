package scuttlebutt_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		id   string
		r    scuttlebutt.Replica
		cfg  *scuttlebutt.Config
		want error
	}{
		{"empty id", "", &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"id too long", strings.Repeat("x", scuttlebutt.MaxIDLen+1), &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"id not UTF-8", "a\xffb", &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"id with NUL", "a\x00b", &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"id with newline", "a\nb", &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"id with DEL", "a\x7f", &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"nil replica", "a", nil, nil, scuttlebutt.ErrNilReplica},
		{"negative MaxUpdateSize", "a", &logDoc{}, &scuttlebutt.Config{MaxUpdateSize: -1}, scuttlebutt.ErrInvalidConfig},
		{"longest id", strings.Repeat("x", scuttlebutt.MaxReplicaIDLen), &logDoc{}, nil, nil},
		{"id with no room for the incarnation", strings.Repeat("x", scuttlebutt.MaxReplicaIDLen+1), &logDoc{}, nil, scuttlebutt.ErrInvalidID},
		{"bad incarnation", "a", &logDoc{}, &scuttlebutt.Config{Incarnation: "A-1"}, scuttlebutt.ErrInvalidConfig},
		{"negative MaxClockOffset", "a", &logDoc{}, &scuttlebutt.Config{MaxClockOffset: -1}, scuttlebutt.ErrInvalidConfig},
		{"negative MaxSources", "a", &logDoc{}, &scuttlebutt.Config{MaxSources: -1}, scuttlebutt.ErrInvalidConfig},
		{"unicode id", "Zürich-1", &logDoc{}, nil, nil},
		{"id with space", "node one", &logDoc{}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scuttlebutt.New(tt.id, tt.r, tt.cfg)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("New(%q) error = %v, want %v", tt.id, err, tt.want)
			}
			if (s == nil) != (tt.want != nil) {
				t.Errorf("New(%q) = %v with error %v", tt.id, s, err)
			}
			if s != nil && s.ID() != tt.id {
				t.Errorf("ID() = %q, want %q", s.ID(), tt.id)
			}
		})
	}
}

func TestNewDoesNotModifyConfig(t *testing.T) {
	cfg := &scuttlebutt.Config{}
	if _, err := scuttlebutt.New("a", &logDoc{}, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Now != nil || cfg.MaxUpdateSize != 0 {
		t.Errorf("New modified the caller's Config: %+v", cfg)
	}
	d := scuttlebutt.DefaultConfig()
	if d.Now == nil || d.MaxUpdateSize != scuttlebutt.DefaultMaxUpdateSize {
		t.Errorf("DefaultConfig = %+v", d)
	}
}

func TestLocalUpdate(t *testing.T) {
	a := newLogDoc(t, "a", &scuttlebutt.Config{MaxUpdateSize: 32})
	u1 := a.write(t, "a1")
	u2 := a.write(t, "a2")
	if u1.Source != "a~1" || !u1.Timestamp.Valid() {
		t.Errorf("first update = %v", u1)
	}
	if u1.Timestamp != today {
		t.Errorf("first timestamp = %v, want the wall clock %v", u1.Timestamp, vclock.Timestamp(today))
	}
	if !(u2.Timestamp > u1.Timestamp) {
		t.Errorf("timestamps %v then %v, want increasing", u1.Timestamp, u2.Timestamp)
	}
	if diff := cmp.Diff(vclock.Clock{"a~1": u2.Timestamp}, a.Clock()); diff != "" {
		t.Errorf("clock (-want +got):\n%s", diff)
	}
	if now := a.Now(); !(now > u2.Timestamp) {
		t.Errorf("Now = %v, want after the last update %v", now, u2.Timestamp)
	}

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"not CBOR", []byte{0xff}},
		{"two items", append(txt("x"), txt("y")...)},
		{"too large", txt(strings.Repeat("x", 32))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock, state := a.Clock(), a.log()
			u, changed, err := a.LocalUpdate(tc.data)
			if !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Errorf("LocalUpdate(%x) = %v, %v, %v; want ErrInvalidUpdate", tc.data, u, changed, err)
			}
			if diff := cmp.Diff(clock, a.Clock()); diff != "" {
				t.Errorf("clock changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(state, a.log()); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
		})
	}
}

// TestLocalUpdateChecked: data the type vouches for is applied and sent
// without the Validator's check, but not past the size limit.
func TestLocalUpdateChecked(t *testing.T) {
	a, b := newLogDoc(t, "a", &scuttlebutt.Config{MaxUpdateSize: 32}), newLogDoc(t, "b", nil)
	n := newNet(t, a, b)
	n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	u, changed, err := a.LocalUpdateChecked(txt("a1"))
	if err != nil || !changed || u.Source != "a~1" || u.Timestamp != today {
		t.Fatalf("LocalUpdateChecked = %v, %v, %v; want a~1 at %v, changed", u, changed, err, vclock.Timestamp(today))
	}
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1"}, b.values()); diff != "" {
		t.Errorf("b (-want +got):\n%s", diff)
	}
	clock := a.Clock()
	if u, changed, err := a.LocalUpdateChecked(txt(strings.Repeat("x", 32))); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
		t.Errorf("LocalUpdateChecked of 34 bytes = %v, %v, %v; want ErrInvalidUpdate", u, changed, err)
	}
	if diff := cmp.Diff(clock, a.Clock()); diff != "" {
		t.Errorf("clock changed (-before +after):\n%s", diff)
	}
}

func TestApplyOrderAndDuplicates(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	var us []scuttlebutt.Update
	for i := range 4 {
		us = append(us, scuttlebutt.Update{Source: "x", Timestamp: vclock.Timestamp(today + i), Data: txt(fmt.Sprint(i))})
	}
	n, err := a.Apply(us[0], us[1])
	if err != nil || n != 2 {
		t.Fatalf("Apply of two fresh updates = %d, %v", n, err)
	}
	// Duplicates and stale updates are skipped, fresh ones applied.
	n, err = a.Apply(us[0], us[1], us[2], us[2], us[3])
	if err != nil || n != 2 {
		t.Errorf("Apply with duplicates = %d, %v; want 2, nil", n, err)
	}
	if diff := cmp.Diff([]string{"x:0", "x:1", "x:2", "x:3"}, a.values()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := a.Clock().Get("x"); got != today+3 {
		t.Errorf("clock x = %v, want %v", got, vclock.Timestamp(today+3))
	}
	// The local clock moves past a remote timestamp it has seen.
	// (10 s ahead: within the 30 s bound on clock offsets.)
	if _, err := a.Apply(scuttlebutt.Update{Source: "y", Timestamp: today + 1e4, Data: txt("future")}); err != nil {
		t.Fatal(err)
	}
	if u := a.write(t, "mine"); !(u.Timestamp > today+1e4) {
		t.Errorf("local update after a remote one at %v has timestamp %v", vclock.Timestamp(today+1e4), u.Timestamp)
	}
}

// memStore is a fake Storage: it records appends in a shared recorder, can
// fail appends, and can hold Sync until released.
type memStore struct {
	rec *recorder

	mu        sync.Mutex
	log       []scuttlebutt.Update
	seq       uint64
	appendErr error
	syncErr   error
	gate      chan struct{} // non-nil: Sync waits for it to close
	entered   chan uint64   // receives each Sync's seq, if not nil
}

var _ scuttlebutt.Storage = (*memStore)(nil)

func (s *memStore) Append(us []scuttlebutt.Update) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appendErr != nil {
		return 0, s.appendErr
	}
	for _, u := range us {
		s.rec.add("append " + u.Source + "@" + u.Timestamp.String())
	}
	s.log = append(s.log, us...)
	s.seq++
	return s.seq, nil
}

func (s *memStore) Sync(seq uint64) error {
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.mu.Unlock()
	if entered != nil {
		entered <- seq
	}
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncErr
}

// hold makes the next Syncs block until release, and returns a channel
// that receives each blocked Sync's seq.
func (s *memStore) hold() <-chan uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
	s.entered = make(chan uint64, 16)
	return s.entered
}

func (s *memStore) release() {
	s.mu.Lock()
	close(s.gate)
	s.gate, s.entered = nil, nil
	s.mu.Unlock()
}

func (s *memStore) updates() []scuttlebutt.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scuttlebutt.Update(nil), s.log...)
}

func TestStorageAppendBeforeApply(t *testing.T) {
	rec := &recorder{}
	a := newLogDoc(t, "a", nil)
	a.rec = rec
	st := &memStore{rec: rec}
	a.Attach(st)

	u := a.write(t, "a1")
	remote := scuttlebutt.Update{Source: "b", Timestamp: today + 5, Data: txt("b1")}
	if _, err := a.Apply(remote); err != nil {
		t.Fatal(err)
	}
	// Through a link too.
	l := a.NewLink(nil)
	defer l.Close()
	l.Ready()
	viaLink := scuttlebutt.Update{Source: "c", Timestamp: today + 6, Data: txt("c1")}
	steps := []scuttlebutt.Message{
		{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "c", Clock: vclock.Clock{}}},
		{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{viaLink}},
		{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}, // a history is applied at its sync
	}
	for _, m := range steps {
		if err := l.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	// Duplicates are not appended again.
	if _, err := a.Apply(remote, u); err != nil {
		t.Fatal(err)
	}

	want := []string{
		"append a~1@" + u.Timestamp.String(), "apply a~1@" + u.Timestamp.String(),
		"append b@1795385884154", "apply b@1795385884154",
		"append c@1795385884155", "apply c@1795385884155",
	}
	if diff := cmp.Diff(want, rec.list()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := len(st.updates()); got != 3 {
		t.Errorf("storage holds %d updates, want 3", got)
	}
}

func TestStorageAppendError(t *testing.T) {
	errDisk := errors.New("disk full")
	a := newLogDoc(t, "a", nil)
	a.write(t, "before")
	st := &memStore{appendErr: errDisk}
	a.Attach(st)
	clock, state := a.Clock(), a.log()

	check := func(t *testing.T, what string) {
		t.Helper()
		if diff := cmp.Diff(clock, a.Clock()); diff != "" {
			t.Errorf("%s: clock changed (-before +after):\n%s", what, diff)
		}
		if diff := cmp.Diff(state, a.log()); diff != "" {
			t.Errorf("%s: state changed (-before +after):\n%s", what, diff)
		}
	}

	if _, _, err := a.LocalUpdate(txt("lost")); !errors.Is(err, errDisk) {
		t.Errorf("LocalUpdate with a failing storage = %v, want %v", err, errDisk)
	}
	check(t, "LocalUpdate")

	remote := scuttlebutt.Update{Source: "b", Timestamp: today + 5, Data: txt("b1")}
	if n, err := a.Apply(remote); !errors.Is(err, errDisk) || n != 0 {
		t.Errorf("Apply with a failing storage = %d, %v; want 0, %v", n, err, errDisk)
	}
	check(t, "Apply")

	l := a.NewLink(nil)
	defer l.Close()
	l.Ready()
	if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
		Version: scuttlebutt.ProtocolVersion, ID: "b", Clock: vclock.Clock{}}}); err != nil {
		t.Fatal(err)
	}
	err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{remote}})
	if err == nil { // a history is applied at its sync
		err = l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}})
	}
	if !errors.Is(err, errDisk) {
		t.Errorf("Step with a failing storage = %v, want %v", err, errDisk)
	}
	check(t, "Step")
}

// waitSync waits for a Sync to block in st, with a deadline.
func waitSync(t *testing.T, entered <-chan uint64) uint64 {
	t.Helper()
	select {
	case seq := <-entered:
		return seq
	case <-time.After(10 * time.Second):
		t.Fatal("no Sync call within 10s")
		return 0
	}
}

func TestStorageHoldsBackLiveUpdates(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	st := &memStore{}
	a.Attach(st)
	n := newNet(t, a, b)
	n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	n.ResetSent()

	entered := st.hold()
	done := make(chan error, 1)
	go func() {
		_, _, err := a.LocalUpdate(txt("a1"))
		done <- err
	}()
	waitSync(t, entered)
	// a1 is appended but not durable: it is not applied yet, so neither
	// readers nor links see it.
	if got := a.values(); len(got) != 0 {
		t.Fatalf("a shows %v before Sync returned", got)
	}
	if got := a.Clock().Get(a.Source()); got != 0 {
		t.Fatalf("a's clock has its own entry %v before Sync returned", got)
	}
	n.Settle()
	if _, u := count(n.Sent(0, 1), scuttlebutt.MsgUpdates); u != 0 {
		t.Fatalf("a sent %d updates before the storage synced them", u)
	}
	if got := b.values(); len(got) != 0 {
		t.Fatalf("b has %v before a's storage synced", got)
	}

	st.release()
	if err := <-done; err != nil {
		t.Fatalf("LocalUpdate: %v", err)
	}
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1"}, b.values()); diff != "" {
		t.Errorf("b after the sync (-want +got):\n%s", diff)
	}
}

func TestStorageHoldsBackHistory(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	st := &memStore{}
	a.Attach(st)
	a.write(t, "a0") // durable

	entered := st.hold()
	done := make(chan error, 1)
	go func() {
		_, _, err := a.LocalUpdate(txt("a1"))
		done <- err
	}()
	waitSync(t, entered)

	n := newNet(t, a, b)
	la, lb := n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	// The history holds a1, which is not durable: a sends neither it nor
	// its sync (whose clock would advertise it).
	if diff := cmp.Diff([]string{"hello"}, kinds(n.Sent(0, 1))); diff != "" {
		t.Errorf("a sent before its storage synced (-want +got):\n%s", diff)
	}
	if la.Synced() || lb.Synced() {
		t.Errorf("synced before the history was durable: a %v, b %v", la.Synced(), lb.Synced())
	}

	st.release()
	if err := <-done; err != nil {
		t.Fatalf("LocalUpdate: %v", err)
	}
	select {
	case <-la.Wake():
	default:
		t.Error("no wakeup when the storage synced")
	}
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a0", "a~1:a1"}, b.values()); diff != "" {
		t.Errorf("b after the sync (-want +got):\n%s", diff)
	}
	if !la.Synced() || !lb.Synced() {
		t.Errorf("after the storage synced: a synced %v, b synced %v", la.Synced(), lb.Synced())
	}
}

func TestStorageRemoteUpdateRelayedAfterSync(t *testing.T) {
	// b stores what it receives from a before relaying it to c.
	a, b, c := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil), newLogDoc(t, "c", nil)
	st := &memStore{}
	b.Attach(st)
	n := newNet(t, a, b, c)
	n.ConnectLinks(0, 1, nil, nil)
	_, lbc := n.ConnectLinks(1, 2, nil, nil)
	n.Settle()
	n.ResetSent()

	a.write(t, "a1")
	entered := st.hold()
	// Deliver a→b on another goroutine, which has the network until it
	// sends on stepped: b's Step blocks in Sync.
	stepped := make(chan bool, 1)
	go func() { stepped <- n.Deliver(0, 1) }()
	waitSync(t, entered)
	if ms := lbc.Ready(); len(ms) != 0 {
		t.Errorf("b relayed %v to c before its storage synced", ms)
	}
	st.release()
	if !<-stepped {
		t.Fatal("nothing delivered a→b")
	}
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1"}, c.values()); diff != "" {
		t.Errorf("c (-want +got):\n%s", diff)
	}
}

func TestAttachNilDetaches(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	st := &memStore{appendErr: errors.New("broken")}
	a.Attach(st)
	a.Attach(nil)
	a.write(t, "a1") // no storage: succeeds
}

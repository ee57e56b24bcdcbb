package scuttlebutt_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// helloFrom steps a hello from peer with clock c into a new link of d and
// returns the link.
func helloFrom(t *testing.T, d *logDoc, peer string, c vclock.Clock) (*scuttlebutt.Link, error) {
	t.Helper()
	l := d.NewLink(nil)
	t.Cleanup(l.Close)
	l.Ready()
	return l, l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
		Version: scuttlebutt.ProtocolVersion, ID: peer, Clock: c}})
}

// TestClockOffsetBound steps every message kind that carries a timestamp,
// stamped beyond the bound, into a link: each is refused with
// ErrClockOffset naming the peer and the source, nothing of it is applied,
// and the next local write is stamped at the wall clock.
func TestClockOffsetBound(t *testing.T) {
	const bound = 30_000 // ms, the default
	far := []vclock.Timestamp{
		today + bound + 1,                 // just past the bound
		today + 24*3600*1000,              // a day ahead
		today + 100*365*24*3600*1000,      // a century ahead
		1e300,                             // nonsense
		vclock.Timestamp(math.MaxFloat64), // the largest float
	}
	ok := scuttlebutt.Update{Source: "c", Timestamp: today + 1, Data: txt("c1")}
	for _, ts := range far {
		bad := scuttlebutt.Update{Source: "c", Timestamp: ts, Data: txt("bad")}
		for _, tc := range []struct {
			name string
			msg  scuttlebutt.Message
		}{
			{"updates", scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{ok, {Source: "d", Timestamp: today + 2, Data: txt("d1")}, bad}}},
			{"sync", scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"c": ts}}},
			{"hello", scuttlebutt.Message{}},
		} {
			t.Run(fmt.Sprintf("%s at %v", tc.name, ts), func(t *testing.T) {
				a := newLogDoc(t, "a", nil)
				var err error
				if tc.name == "hello" {
					_, err = helloFrom(t, a, "b~1", vclock.Clock{"c": ts})
				} else {
					var l *scuttlebutt.Link
					if l, err = helloFrom(t, a, "b~1", vclock.Clock{}); err != nil {
						t.Fatal(err)
					}
					err = l.Step(tc.msg)
				}
				if !errors.Is(err, scuttlebutt.ErrClockOffset) {
					t.Fatalf("Step = %v, want ErrClockOffset", err)
				}
				if msg := err.Error(); !strings.Contains(msg, "peer b~1") || !strings.Contains(msg, "source c") {
					t.Errorf("error %q does not name the peer and the source", msg)
				}
				if got := a.values(); len(got) != 0 {
					t.Errorf("applied %v of a refused message", got)
				}
				if got := a.Clock(); len(got) != 0 {
					t.Errorf("clock %v after a refused message", got)
				}
				if u := a.write(t, "mine"); u.Timestamp != today {
					t.Errorf("next local write stamped %v, want the wall clock %v", u.Timestamp, vclock.Timestamp(today))
				}
				if got := a.Stats().OffsetRefused; got != 1 {
					t.Errorf("Stats().OffsetRefused = %d, want 1", got)
				}
			})
		}
		t.Run(fmt.Sprintf("Apply Replay RestoreClock at %v", ts), func(t *testing.T) {
			a := newLogDoc(t, "a", nil)
			if _, err := a.Apply(ok, bad); !errors.Is(err, scuttlebutt.ErrClockOffset) {
				t.Errorf("Apply = %v, want ErrClockOffset", err)
			}
			if _, err := a.Replay(ok, bad); !errors.Is(err, scuttlebutt.ErrClockOffset) {
				t.Errorf("Replay = %v, want ErrClockOffset", err)
			}
			if err := a.RestoreClock(vclock.Clock{"c": today, "d": ts}); !errors.Is(err, scuttlebutt.ErrClockOffset) {
				t.Errorf("RestoreClock = %v, want ErrClockOffset", err)
			}
			if got := a.Clock(); len(got) != 0 {
				t.Errorf("clock %v after refused input", got)
			}
		})
	}
	// Within the bound is fine, and the next local write follows it.
	a := newLogDoc(t, "a", nil)
	near := scuttlebutt.Update{Source: "c", Timestamp: today + bound, Data: txt("c1")}
	if _, err := a.Apply(near); err != nil {
		t.Fatalf("Apply at the bound: %v", err)
	}
	if u := a.write(t, "mine"); !(u.Timestamp > near.Timestamp) {
		t.Errorf("local write at %v, want after %v", u.Timestamp, near.Timestamp)
	}
}

// TestClockOffsetFollowsWallClock: the bound moves with the injected wall
// clock, so an update refused now is accepted once time has caught up.
func TestClockOffsetFollowsWallClock(t *testing.T) {
	var mu sync.Mutex
	now := time.UnixMilli(today)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newLogDoc(t, "a", &scuttlebutt.Config{Now: clock, MaxClockOffset: time.Second})
	u := scuttlebutt.Update{Source: "c", Timestamp: today + 5000, Data: txt("c1")}
	if _, err := a.Apply(u); !errors.Is(err, scuttlebutt.ErrClockOffset) {
		t.Fatalf("Apply 5 s ahead with a 1 s bound = %v, want ErrClockOffset", err)
	}
	mu.Lock()
	now = now.Add(4 * time.Second)
	mu.Unlock()
	if n, err := a.Apply(u); err != nil || n != 1 {
		t.Fatalf("Apply once the wall clock is 1 s behind = %d, %v", n, err)
	}
}

func TestHLCExhausted(t *testing.T) {
	h := vclock.NewHLC(fixedNow)
	h.Observe(vclock.Timestamp(math.MaxFloat64))
	if got := h.Now(); got != 0 {
		t.Errorf("Now after observing MaxFloat64 = %v, want 0", got)
	}
	if got := h.Last(); got != vclock.Timestamp(math.MaxFloat64) {
		t.Errorf("Last = %v, want it unchanged", got)
	}
}

func TestMaxSources(t *testing.T) {
	const limit = 4
	cfg := &scuttlebutt.Config{MaxSources: limit}
	upd := func(src string) scuttlebutt.Update {
		return scuttlebutt.Update{Source: src, Timestamp: today, Data: txt(src)}
	}
	a := newLogDoc(t, "a", cfg)
	if _, err := a.Apply(upd("s1"), upd("s2"), upd("s3")); err != nil {
		t.Fatal(err)
	}
	// Two new sources on top of three: one too many. Nothing applied.
	if _, err := a.Apply(upd("s4"), upd("s5")); !errors.Is(err, scuttlebutt.ErrTooManySources) {
		t.Errorf("Apply past MaxSources = %v, want ErrTooManySources", err)
	}
	if got := len(a.Clock()); got != 3 {
		t.Errorf("clock has %d sources after a refused batch, want 3", got)
	}
	// Known sources still flow, and so does the replica's own.
	if _, err := a.Apply(upd("s4"), scuttlebutt.Update{Source: "s1", Timestamp: today + 1, Data: txt("x")}); err != nil {
		t.Errorf("Apply up to the limit: %v", err)
	}
	a.write(t, "own") // the fifth source: its own is always accepted
	if got := len(a.Clock()); got != 5 {
		t.Errorf("clock has %d sources, want 5", got)
	}
	// A hello naming more sources than the limit is refused; a sync that
	// would add sources past it has those entries dropped, not merged.
	big := vclock.Clock{}
	for i := range limit + 1 {
		big[fmt.Sprint("p", i)] = today
	}
	if _, err := helloFrom(t, a, "b~1", big); !errors.Is(err, scuttlebutt.ErrTooManySources) {
		t.Errorf("hello with %d sources = %v, want ErrTooManySources", len(big), err)
	}
	l, err := helloFrom(t, a, "b~1", vclock.Clock{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"p1": today, "s1": today + 2}}); err != nil {
		t.Errorf("sync with a source past the limit = %v, want its entry dropped", err)
	}
	if c := a.Clock(); c.Get("p1") != 0 || c.Get("s1") != today+2 {
		t.Errorf("clock after the sync = %v, want p1 left out and s1 merged", c)
	}
	if got := a.Stats(); got.SourcesRefused != 2 || got.SourcesDropped != 1 {
		t.Errorf("Stats() = %+v, want 2 refused and 1 dropped", got)
	}
}

// TestMaxSourcesEviction: clock entries of sources no update came from
// (clock-only) make room for writers whose updates arrive, oldest first,
// so a peer that fills the clock with made-up entries cannot lock new
// writers out.
func TestMaxSourcesEviction(t *testing.T) {
	quiet := &scuttlebutt.Config{MaxSources: 4, Logger: slog.New(slog.DiscardHandler)}
	a := newLogDoc(t, "a", quiet)
	l, err := helloFrom(t, a, "b~1", vclock.Clock{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"c1": today - 3, "c2": today - 2, "c3": today - 1}}); err != nil {
		t.Fatal(err)
	}
	upd := func(src string) scuttlebutt.Update {
		return scuttlebutt.Update{Source: src, Timestamp: today, Data: txt(src)}
	}
	if _, err := a.Apply(upd("s1")); err != nil {
		t.Fatal(err)
	}
	// Full: s2 takes the place of the oldest clock-only entry, c1.
	if _, err := a.Apply(upd("s2")); err != nil {
		t.Fatalf("Apply of a new writer into a clock full of clock-only entries: %v", err)
	}
	want := vclock.Clock{"c2": today - 2, "c3": today - 1, "s1": today, "s2": today}
	if diff := cmp.Diff(want, a.Clock()); diff != "" {
		t.Errorf("clock (-want +got):\n%s", diff)
	}
	// An update of a clock-only source makes it a writer: no longer given up.
	if _, err := a.Apply(scuttlebutt.Update{Source: "c2", Timestamp: today, Data: txt("c2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(upd("s3")); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Clock()["c3"]; ok {
		t.Errorf("clock %v kept c3 over the writer s3", a.Clock())
	}
	// Only writers left: a new one is refused.
	if _, err := a.Apply(upd("s4")); !errors.Is(err, scuttlebutt.ErrTooManySources) {
		t.Errorf("Apply of a new writer into a clock of writers = %v, want ErrTooManySources", err)
	}
	if got := a.Stats().SourcesDropped; got != 2 {
		t.Errorf("Stats().SourcesDropped = %d, want 2", got)
	}
}

// TestOwnSourceForgery: a peer that sends updates or clock entries of the
// replica's own current source beyond what it made (forged, or relayed
// from a forger) cannot hide its next writes: the claim is skipped, the
// session goes on, and the next local write is stamped after the claim.
func TestOwnSourceForgery(t *testing.T) {
	quiet := &scuttlebutt.Config{Logger: slog.New(slog.DiscardHandler)}
	a := newLogDoc(t, "a", quiet)
	mine := a.write(t, "a1")
	forged := scuttlebutt.Update{Source: a.Source(), Timestamp: mine.Timestamp + 10, Data: txt("forged")}
	for _, tc := range []struct {
		name string
		msg  scuttlebutt.Message
	}{
		{"update", scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{
			{Source: "c", Timestamp: today, Data: txt("c1")}, forged}}},
		{"sync", scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{a.Source(): forged.Timestamp}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := helloFrom(t, a, "b~1", vclock.Clock{})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Step(tc.msg); err != nil {
				t.Errorf("Step = %v, want the claim skipped and the session kept", err)
			}
			if tc.msg.Kind == scuttlebutt.MsgUpdates { // a history is applied at its sync
				if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}); err != nil {
					t.Errorf("sync after the forged update = %v", err)
				}
			}
			if got := a.Clock().Get(a.Source()); got != mine.Timestamp {
				t.Errorf("a's own entry = %v, want %v: a made nothing since", got, mine.Timestamp)
			}
		})
	}
	if _, err := helloFrom(t, a, "b~1", vclock.Clock{a.Source(): forged.Timestamp}); err != nil {
		t.Errorf("hello claiming more of a's source than a made = %v, want it skipped", err)
	}
	if got := a.Stats().ForgedOwn; got != 3 {
		t.Errorf("Stats().ForgedOwn = %d, want 3", got)
	}
	// The next write is applied, stamped after the claim, so a replica that
	// believed the claim takes it.
	if u := a.write(t, "a2"); !(u.Timestamp > forged.Timestamp) {
		t.Errorf("next write stamped %v, want after the forged %v", u.Timestamp, forged.Timestamp)
	}
	if diff := cmp.Diff([]string{"a~1:a1", "a~1:a2", "c:c1"}, a.values()); diff != "" {
		t.Errorf("a (-want +got):\n%s", diff)
	}
	// Its own update echoed back is harmless.
	if _, err := a.Apply(mine); err != nil {
		t.Errorf("Apply of its own update = %v", err)
	}
}

// TestReplayOwnSource: with a fixed incarnation, a replica's own log holds
// updates of its current source, and Replay takes them.
func TestReplayOwnSource(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	u := scuttlebutt.Update{Source: a.Source(), Timestamp: today - 5, Data: txt("logged")}
	if n, err := a.Replay(u); err != nil || n != 1 {
		t.Fatalf("Replay of its own logged update = %d, %v", n, err)
	}
	if w := a.write(t, "next"); !(w.Timestamp > u.Timestamp) {
		t.Errorf("next write at %v, want after the replayed %v", w.Timestamp, u.Timestamp)
	}
}

// TestRestartWithoutLog: a replica restarted with nothing writes before it
// reconnects; its earlier writes come back from a peer, and a third replica
// that syncs only through it gets them too.
func TestRestartWithoutLog(t *testing.T) {
	a1 := newLogDoc(t, "a", &scuttlebutt.Config{Incarnation: "1"})
	b := newLogDoc(t, "b", nil)
	n := newNet(t, a1, b)
	n.ConnectLinks(0, 1, nil, nil)
	a1.write(t, "old1")
	a1.write(t, "old2")
	n.Settle()

	a2 := newLogDoc(t, "a", &scuttlebutt.Config{Incarnation: "2"}) // the disk is gone
	a2.write(t, "new")
	if err := n.Replace(0, a2); err != nil {
		t.Fatal(err)
	}
	c := n.Add(newLogDoc(t, "c", nil))
	n.ConnectLinks(0, 1, nil, nil)
	n.ConnectLinks(0, c, nil, nil)
	n.Settle()
	want := []string{"a~1:old1", "a~1:old2", "a~2:new"}
	for _, d := range []*logDoc{a2, b, n.Doc(c).(*logDoc)} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.Source(), diff)
		}
	}
}

// TestTwins: two live replicas with one id, linked through a third, lose
// nothing, and each reports the other once.
func TestTwins(t *testing.T) {
	var logs [2]bytes.Buffer
	var mu sync.Mutex
	now := time.UnixMilli(today)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	newTwin := func(i int) *logDoc {
		return newLogDoc(t, "twin", &scuttlebutt.Config{
			Now:         clock,
			Incarnation: fmt.Sprint(i + 1),
			Logger:      slog.New(slog.NewTextHandler(&logs[i], nil)),
		})
	}
	x, y := newTwin(0), newTwin(1)
	m := newLogDoc(t, "m", &scuttlebutt.Config{Now: clock})
	// A minute later, past the clock offset bound: the twins' writes can
	// no longer be an earlier run's.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	n := newNet(t, x, m, y)
	n.ConnectLinks(0, 1, nil, nil)
	n.ConnectLinks(1, 2, nil, nil)
	for i := range 3 {
		x.write(t, fmt.Sprint("x", i))
		y.write(t, fmt.Sprint("y", i))
		n.Settle()
	}
	want := []string{"twin~1:x0", "twin~1:x1", "twin~1:x2", "twin~2:y0", "twin~2:y1", "twin~2:y2"}
	for _, d := range []*logDoc{x, y, m} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.Source(), diff)
		}
	}
	for i, d := range []*logDoc{x, y} {
		if got := d.Stats().Twins; got != 1 {
			t.Errorf("%s: Stats().Twins = %d, want 1", d.Source(), got)
		}
		if got := strings.Count(logs[i].String(), "another live process"); got != 1 {
			t.Errorf("%s logged the twin %d times, want once:\n%s", d.Source(), got, logs[i].String())
		}
	}
	if got := m.Stats().Twins; got != 0 {
		t.Errorf("m: Stats().Twins = %d, want 0", got)
	}
}

// TestEarlierRunIsNoTwin: the updates of an earlier run of the replica,
// stamped before it started, are not reported as a twin.
func TestEarlierRunIsNoTwin(t *testing.T) {
	var log bytes.Buffer
	old := scuttlebutt.Update{Source: "a~0", Timestamp: today - 1, Data: txt("old")}
	a := newLogDoc(t, "a", &scuttlebutt.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if _, err := a.Apply(old); err != nil {
		t.Fatal(err)
	}
	if got := a.Stats().Twins; got != 0 || log.Len() > 0 {
		t.Errorf("Twins = %d, log %q after an earlier run's update", got, log.String())
	}
}

func TestLocalUpdateValidator(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	if _, _, err := a.LocalUpdate(txt("forbidden")); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
		t.Errorf("LocalUpdate of a payload the Validator refuses = %v, want ErrInvalidUpdate", err)
	}
	if got := a.Clock(); len(got) != 0 {
		t.Errorf("clock %v after a refused local update", got)
	}
}

// TestSyncFailureLeavesNothing: a local update whose storage fails to sync
// is neither visible nor sent.
func TestSyncFailureLeavesNothing(t *testing.T) {
	errDisk := errors.New("disk full")
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	st := &memStore{syncErr: errDisk}
	a.Attach(st)
	n := newNet(t, a, b)
	n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	if _, _, err := a.LocalUpdate(txt("lost")); !errors.Is(err, errDisk) {
		t.Fatalf("LocalUpdate = %v, want %v", err, errDisk)
	}
	n.Settle()
	if got := a.values(); len(got) != 0 {
		t.Errorf("a shows %v after a failed sync", got)
	}
	if got := a.Clock(); len(got) != 0 {
		t.Errorf("a's clock %v after a failed sync", got)
	}
	if got := b.values(); len(got) != 0 {
		t.Errorf("b received %v", got)
	}
}

// TestAttachWhileWriting: detaching or replacing the storage while writers
// run neither panics nor loses an acknowledged write.
func TestAttachWhileWriting(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	a.Attach(&memStore{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s := fmt.Sprintf("w%d-%d", w, i)
				if _, _, err := a.LocalUpdate(txt(s)); err == nil {
					mu.Lock()
					acked["a~1:"+s] = true
					mu.Unlock()
				}
			}
		})
	}
	for i := range 200 {
		if i%2 == 0 {
			a.Attach(nil)
		} else {
			a.Attach(&memStore{})
		}
	}
	wg.Wait()
	have := map[string]bool{}
	for _, v := range a.values() {
		have[v] = true
	}
	for v := range acked {
		if !have[v] {
			t.Errorf("acknowledged %s is missing", v)
		}
	}
}

// TestTwinLinkedDirectly: a link from another live incarnation of the id is
// reported at once, and the two replicate like any two replicas.
func TestTwinLinkedDirectly(t *testing.T) {
	x := newLogDoc(t, "twin", &scuttlebutt.Config{Incarnation: "1", Logger: slog.New(slog.DiscardHandler)})
	y := newLogDoc(t, "twin", &scuttlebutt.Config{Incarnation: "2", Logger: slog.New(slog.DiscardHandler)})
	x.write(t, "x0")
	y.write(t, "y0")
	lx, err := helloFrom(t, x, y.Source(), y.Clock())
	if err != nil {
		t.Fatal(err)
	}
	ly, err := helloFrom(t, y, x.Source(), x.Clock())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range lx.Ready() {
		if err := ly.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ly.Ready() {
		if err := lx.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"twin~1:x0", "twin~2:y0"}
	for _, d := range []*logDoc{x, y} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.Source(), diff)
		}
		if got := d.Stats().Twins; got != 1 {
			t.Errorf("%s: Stats().Twins = %d, want 1", d.Source(), got)
		}
	}
}

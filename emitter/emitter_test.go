package emitter_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// fakeClock is a wall clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEmitter(t *testing.T, id string, cfg *emitter.Config) *emitter.Emitter {
	t.Helper()
	e, err := emitter.New(id, cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", id, err)
	}
	return e
}

// newNet returns a simnet.Network of docs, replica i being docs[i]: its
// links hand-stepped, or real streams over pipes if pipes is set. It traces
// to the test's log, fails the test on any link error that no cut or
// Disconnect explains, and is closed when the test ends.
func newNet(t *testing.T, seed uint64, pipes bool, docs ...scuttlebutt.Document) *simnet.Network {
	t.Helper()
	n := simnet.New(seed, &simnet.Options{
		Logf:    t.Logf,
		Pipes:   pipes,
		OnError: func(err error) { t.Error(err) },
	})
	for _, d := range docs {
		n.Add(d)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// recorder collects the events a listener receives.
type recorder struct {
	mu     sync.Mutex
	events []emitter.Event
}

func (r *recorder) add(ev emitter.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) all() []emitter.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]emitter.Event(nil), r.events...)
}

// ignoreStamp leaves the timestamp out of comparisons.
var ignoreStamp = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Timestamp" }, cmp.Ignore())

func TestEmitArgs(t *testing.T) {
	tests := []struct {
		name string
		args []any
		want []any
	}{
		{"none", nil, nil},
		{"nil", []any{nil}, []any{nil}},
		{"ints become int64", []any{1, int8(-2), uint32(3)}, []any{int64(1), int64(-2), int64(3)}},
		{"floats become float64", []any{float32(0.5), 2.25}, []any{0.5, 2.25}},
		{"strings and bytes", []any{"héllo", []byte{1, 2}}, []any{"héllo", []byte{1, 2}}},
		{"slices become []any", []any{[]string{"a", "b"}}, []any{[]any{"a", "b"}}},
		{"maps become map[string]any", []any{map[string]int{"x": 1}}, []any{map[string]any{"x": int64(1)}}},
		{"bools", []any{true, false}, []any{true, false}},
		{"max uint within int64", []any{uint64(math.MaxInt64)}, []any{int64(math.MaxInt64)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmitter(t, "a", nil)
			var rec recorder
			e.OnAny(rec.add)
			if err := e.Emit("ev", tc.args...); err != nil {
				t.Fatalf("Emit(%v): %v", tc.args, err)
			}
			want := []emitter.Event{{Name: "ev", Args: tc.want, Source: e.Source(), Local: true}}
			if diff := cmp.Diff(want, rec.all(), ignoreStamp); diff != "" {
				t.Errorf("delivered events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, e.Events(nil), ignoreStamp); diff != "" {
				t.Errorf("Events(nil) (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEmitInvalid(t *testing.T) {
	deep := any("leaf")
	for range scuttlebutt.MaxNesting {
		deep = []any{deep}
	}
	tests := []struct {
		name  string
		event string
		args  []any
		want  error
	}{
		{"NaN", "ev", []any{math.NaN()}, emitter.ErrInvalidArg},
		{"infinity", "ev", []any{math.Inf(-1)}, emitter.ErrInvalidArg},
		{"uint64 beyond int64", "ev", []any{uint64(math.MaxUint64)}, emitter.ErrInvalidArg},
		{"int map keys", "ev", []any{map[int]string{1: "a"}}, emitter.ErrInvalidArg},
		{"struct", "ev", []any{struct{ A int }{1}}, emitter.ErrInvalidArg},
		{"func", "ev", []any{func() {}}, emitter.ErrInvalidArg},
		{"channel", "ev", []any{make(chan int)}, emitter.ErrInvalidArg},
		{"string not UTF-8", "ev", []any{"\xff"}, emitter.ErrInvalidArg},
		{"NaN nested", "ev", []any{map[string]any{"a": []any{1, math.NaN()}}}, emitter.ErrInvalidArg},
		{"too deep", "ev", []any{deep}, emitter.ErrInvalidArg},
		{"name not UTF-8", "\xfe", nil, emitter.ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmitter(t, "a", nil)
			called := false
			e.OnAny(func(emitter.Event) { called = true })
			err := e.Emit(tc.event, tc.args...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Emit(%q, %v) = %v, want %v", tc.event, tc.args, err, tc.want)
			}
			if called || e.Len() != 0 || len(e.Clock()) != 0 {
				t.Errorf("after a refused Emit: listener called %v, Len %d, clock %v; want nothing", called, e.Len(), e.Clock())
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  *emitter.Config
		want error
	}{
		{"nil", nil, nil},
		{"zero", &emitter.Config{}, nil},
		{"age only", &emitter.Config{MaxEvents: -1, MaxAge: time.Minute}, nil},
		{"no bound", &emitter.Config{MaxEvents: -1}, emitter.ErrInvalidConfig},
		{"negative age", &emitter.Config{MaxAge: -time.Second}, emitter.ErrInvalidConfig},
		{"negative update size", &emitter.Config{MaxUpdateSize: -1}, scuttlebutt.ErrInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := emitter.New("a", tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Errorf("New(%+v) = %v, want %v", tc.cfg, err, tc.want)
			}
		})
	}
	if _, err := emitter.New("", nil); !errors.Is(err, scuttlebutt.ErrInvalidID) {
		t.Errorf("New(\"\") = %v, want ErrInvalidID", err)
	}
}

// TestValidateUpdate feeds malformed payloads as a peer would: each is
// refused, and nothing is applied or delivered.
func TestValidateUpdate(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"not an array", []byte{0x01}},                                    // 1
		{"name only", []byte{0x81, 0x61, 'x'}},                            // ["x"]
		{"name not a string", []byte{0x82, 0x01, 0x80}},                   // [1, []]
		{"args not an array", []byte{0x82, 0x61, 'x', 0x01}},              // ["x", 1]
		{"three elements", []byte{0x83, 0x61, 'x', 0x80, 0x80}},           // ["x", [], []]
		{"NaN argument", []byte{0x82, 0x61, 'x', 0x81, 0xf9, 0x7e, 0x00}}, // ["x", [NaN]]
		{"integer beyond int64", append([]byte{0x82, 0x61, 'x', 0x81, 0x1b}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"integer map key", []byte{0x82, 0x61, 'x', 0x81, 0xa1, 0x01, 0x02}}, // ["x", [{1: 2}]]
		{"name not UTF-8", []byte{0x82, 0x61, 0xff, 0x80}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEmitter(t, "a", nil)
			var rec recorder
			e.OnAny(rec.add)
			u := scuttlebutt.Update{Source: "peer", Timestamp: 1e12, Data: tc.data}
			if _, err := e.Apply(u); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Errorf("Apply(% x) = %v, want ErrInvalidUpdate", tc.data, err)
			}
			if rec.len() != 0 || e.Len() != 0 {
				t.Errorf("a refused update was applied: %d delivered, Len %d", rec.len(), e.Len())
			}
		})
	}
}

// TestNamesAreData emits the names that mean something to other emitters
// (JavaScript's emitter ends every stream on "dispose") and checks that
// they are delivered like any other and that the link stays up.
func TestNamesAreData(t *testing.T) {
	a, b := newEmitter(t, "a", nil), newEmitter(t, "b", nil)
	var rec recorder
	b.OnAny(rec.add)
	n := newNet(t, 1, false, a, b)
	if err := n.Connect(0, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Quiesce(t.Context()); err != nil {
		t.Fatal(err)
	}
	names := []string{"dispose", "error", "close", "end", "", "newListener", "__proto__", "data"}
	for _, name := range names {
		if err := a.Emit(name, name); err != nil {
			t.Fatalf("Emit(%q): %v", name, err)
		}
		n.Run(1)
	}
	if err := a.Emit("after", 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Quiesce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !n.Connected(0, 1) {
		t.Error("the link ended")
	}
	var got []string
	for _, ev := range rec.all() {
		got = append(got, ev.Name)
	}
	if diff := cmp.Diff(append(names, "after"), got); diff != "" {
		t.Errorf("names delivered at b (-want +got):\n%s", diff)
	}
}

func TestListeners(t *testing.T) {
	e := newEmitter(t, "a", nil)
	var onX, any recorder
	stopX := e.On("x", onX.add)
	e.OnAny(any.add)
	ch := make(chan emitter.Event, 10)
	stopCh := e.Chan(ch, "y", "z")
	all := make(chan emitter.Event, 10)
	e.Chan(all)

	for _, n := range []string{"x", "y", "z", "w"} {
		if err := e.Emit(n); err != nil {
			t.Fatal(err)
		}
	}
	stopX()
	stopX() // idempotent
	stopCh()
	if err := e.Emit("x"); err != nil {
		t.Fatal(err)
	}

	names := func(evs []emitter.Event) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Name)
		}
		return out
	}
	drain := func(ch chan emitter.Event) []emitter.Event {
		var out []emitter.Event
		for {
			select {
			case ev := <-ch:
				out = append(out, ev)
			default:
				return out
			}
		}
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"On(x), cancelled before the last", names(onX.all()), []string{"x"}},
		{"OnAny", names(any.all()), []string{"x", "y", "z", "w", "x"}},
		{"Chan(y, z), cancelled", names(drain(ch)), []string{"y", "z"}},
		{"Chan()", names(drain(all)), []string{"x", "y", "z", "w", "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

// TestListenerArgsAreOwn checks that two listeners get arguments that share
// nothing.
func TestListenerArgsAreOwn(t *testing.T) {
	e := newEmitter(t, "a", nil)
	var first, second []any
	e.OnAny(func(ev emitter.Event) {
		first = ev.Args
		ev.Args[0].(map[string]any)["k"] = "changed"
	})
	e.OnAny(func(ev emitter.Event) { second = ev.Args })
	if err := e.Emit("ev", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{map[string]any{"k": "v"}}, second); diff != "" {
		t.Errorf("second listener saw the first's change (-want +got):\n%s", diff)
	}
	if first == nil {
		t.Error("first listener not called")
	}
}

// TestListenerEmits checks that a listener may emit, and that its event is
// delivered after it returns, once.
func TestListenerEmits(t *testing.T) {
	e := newEmitter(t, "a", nil)
	var got []string
	e.OnAny(func(ev emitter.Event) {
		got = append(got, "start "+ev.Name)
		if ev.Name == "ping" {
			if err := e.Emit("pong"); err != nil {
				t.Error(err)
			}
		}
		got = append(got, "end "+ev.Name)
	})
	if err := e.Emit("ping"); err != nil {
		t.Fatal(err)
	}
	want := []string{"start ping", "end ping", "start pong", "end pong"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestRetentionCount(t *testing.T) {
	a := newEmitter(t, "a", &emitter.Config{MaxEvents: 5})
	for i := range 12 {
		if err := a.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	if a.Len() != 5 {
		t.Errorf("Len = %d, want 5", a.Len())
	}
	// A newcomer receives only what is retained, and its clock still moves
	// past the rest.
	b := newEmitter(t, "b", nil)
	var rec recorder
	b.OnAny(rec.add)
	n := newNet(t, 1, false, a, b)
	if err := n.Connect(0, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.Quiesce(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []any
	for _, ev := range rec.all() {
		got = append(got, ev.Args[0])
	}
	if diff := cmp.Diff([]any{int64(7), int64(8), int64(9), int64(10), int64(11)}, got); diff != "" {
		t.Errorf("events a newcomer receives (-want +got):\n%s", diff)
	}
	if got := b.Clock().Compare(a.Clock()); got != vclock.Equal {
		t.Errorf("clocks of a and b compare %v, want equal:\n%v\n%v", got, a.Clock(), b.Clock())
	}
}

// TestRetentionAcrossSources drops the oldest events by timestamp,
// whichever source they come from.
func TestRetentionAcrossSources(t *testing.T) {
	e := newEmitter(t, "a", &emitter.Config{MaxEvents: 3})
	data := func(n int) []byte { return []byte{0x82, 0x61, 'n', 0x81, byte(n)} } // ["n", [n]]
	us := []scuttlebutt.Update{
		{Source: "p", Timestamp: 10, Data: data(1)},
		{Source: "q", Timestamp: 11, Data: data(2)},
		{Source: "p", Timestamp: 12, Data: data(3)},
		{Source: "q", Timestamp: 13, Data: data(4)},
		{Source: "q", Timestamp: 14, Data: data(5)},
	}
	if _, err := e.Apply(us...); err != nil {
		t.Fatal(err)
	}
	var got []vclock.Timestamp
	for _, ev := range e.Events(nil) {
		got = append(got, ev.Timestamp)
	}
	if diff := cmp.Diff([]vclock.Timestamp{12, 13, 14}, got); diff != "" {
		t.Errorf("retained (-want +got):\n%s", diff)
	}
}

func TestRetentionAge(t *testing.T) {
	clk := newFakeClock()
	e := newEmitter(t, "a", &emitter.Config{Now: clk.Now, MaxEvents: -1, MaxAge: time.Minute})
	for i := range 3 {
		if err := e.Emit("n", i); err != nil {
			t.Fatal(err)
		}
		clk.Add(30 * time.Second)
	}
	// Now the events are 90, 60 and 30 s old.
	if got := len(e.Events(nil)); got != 2 {
		t.Errorf("after 90 s: %d events retained, want 2", got)
	}
	clk.Add(time.Hour)
	if got := len(e.History(nil)); got != 0 {
		t.Errorf("after an hour: History holds %d events, want 0", got)
	}
	if e.Len() != 0 {
		t.Errorf("after an hour: Len = %d, want 0", e.Len())
	}
}

// TestBoundedMemory emits a steady stream and checks that the Emitter keeps
// no more than its bound, and that the heap does not grow with the stream.
func TestBoundedMemory(t *testing.T) {
	e := newEmitter(t, "a", &emitter.Config{MaxEvents: 100})
	for i := range 20000 {
		if err := e.Emit("tick", i, "some payload to make events weigh something"); err != nil {
			t.Fatal(err)
		}
		if e.Len() > 100 {
			t.Fatalf("after %d events: Len = %d, want at most 100", i+1, e.Len())
		}
	}
	if got := len(e.History(nil)); got != 100 {
		t.Errorf("History holds %d events, want 100", got)
	}
}

// TestRestartReplayIsHistory restarts a replica from its saved updates: a
// listener registered after the replay sees only what is new, and Events
// gives an application the events after its own checkpoint.
func TestRestartReplayIsHistory(t *testing.T) {
	a := newEmitter(t, "a", nil)
	for _, n := range []string{"one", "two", "three"} {
		if err := a.Emit(n); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := vclock.Clock{a.Source(): a.Events(nil)[0].Timestamp} // the app processed "one"
	saved := a.History(nil)

	a2 := newEmitter(t, "a", nil)
	if _, err := a2.Apply(saved...); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	a2.OnAny(rec.add)
	if err := a2.Emit("four"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range rec.all() {
		got = append(got, ev.Name)
	}
	if diff := cmp.Diff([]string{"four"}, got); diff != "" {
		t.Errorf("delivered after the restart (-want +got):\n%s", diff)
	}
	got = nil
	for _, ev := range a2.Events(checkpoint) {
		got = append(got, ev.Name)
	}
	if diff := cmp.Diff([]string{"two", "three", "four"}, got); diff != "" {
		t.Errorf("Events(checkpoint) (-want +got):\n%s", diff)
	}
	if last, first := a2.Events(nil)[3].Timestamp, saved[2].Timestamp; !(last > first) {
		t.Errorf("event after the restart stamped %v, not after the replayed %v", last, first)
	}
}

func Example() {
	a, _ := emitter.New("a", nil)
	b, _ := emitter.New("b", nil)
	done := make(chan struct{})
	b.On("joined", func(ev emitter.Event) {
		fmt.Printf("%s: %v joined (local %v)\n", scuttlebutt.ReplicaID(ev.Source), ev.Args[0], ev.Local)
		close(done)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := stream.Pipe(ctx, a, b); err != nil {
		fmt.Println(err)
		return
	}
	a.Emit("joined", "alice")
	<-done
	// Output: a: alice joined (local false)
}

// TestCancelMidBatch cancels a listener from another listener while a
// batch of events is being delivered: it is not called again.
func TestCancelMidBatch(t *testing.T) {
	e := newEmitter(t, "a", nil)
	var second []string
	var stop func()
	e.OnAny(func(ev emitter.Event) {
		if ev.Name == "first" {
			stop()
		}
	})
	stop = e.OnAny(func(ev emitter.Event) { second = append(second, ev.Name) })
	data := func(name string) []byte {
		return append([]byte{0x82, 0x60 | byte(len(name))}, append([]byte(name), 0x80)...)
	}
	us := []scuttlebutt.Update{
		{Source: "p", Timestamp: 10, Data: data("first")},
		{Source: "p", Timestamp: 11, Data: data("later")},
	}
	if _, err := e.Apply(us...); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), second); diff != "" {
		t.Errorf("calls of the cancelled listener (-want +got):\n%s", diff)
	}
}

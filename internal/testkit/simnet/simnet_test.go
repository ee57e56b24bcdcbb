package simnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// logDoc is the simplest replicated type: it keeps every update, so two
// replicas that converged hold the same set of updates.
type logDoc struct {
	*scuttlebutt.Scuttlebutt
	mu  sync.Mutex
	log []scuttlebutt.Update
}

// newLogDoc returns a logDoc with id; cfg may be nil.
func newLogDoc(t *testing.T, id string, cfg *scuttlebutt.Config) *logDoc {
	t.Helper()
	d := &logDoc{}
	sb, err := scuttlebutt.New(id, d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Scuttlebutt = sb
	return d
}

func (d *logDoc) History(c vclock.Clock) []scuttlebutt.Update {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []scuttlebutt.Update
	for _, u := range d.log {
		if !c.Covers(u.Source, u.Timestamp) {
			out = append(out, u)
		}
	}
	return out // the log is kept sorted
}

func (d *logDoc) ApplyUpdate(u scuttlebutt.Update) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, _ := slices.BinarySearchFunc(d.log, u, scuttlebutt.Compare)
	d.log = slices.Insert(d.log, i, u)
	return true
}

// ids returns "source@timestamp" of every update held, in order.
func (d *logDoc) ids() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, len(d.log))
	for i, u := range d.log {
		out[i] = fmt.Sprintf("%s@%s", u.Source, u.Timestamp)
	}
	return out
}

func (d *logDoc) write(t *testing.T, v int) {
	t.Helper()
	data, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.LocalUpdate(data); err != nil {
		t.Fatal(err)
	}
}

// newNet returns a network of k logDocs and checks, when the test ends, that
// it closes cleanly and leaves no goroutine behind.
func newNet(t *testing.T, pipes bool, seed uint64, k int, opts *Options) (*Network, []*logDoc) {
	t.Helper()
	before := runtime.NumGoroutine()
	if opts == nil {
		opts = &Options{}
	}
	opts.Logf = t.Logf
	opts.Pipes = pipes
	n := New(seed, opts)
	docs := make([]*logDoc, k)
	for i := range docs {
		id := fmt.Sprintf("n%d", i)
		docs[i] = newLogDoc(t, id, &scuttlebutt.Config{Incarnation: n.Incarnation(id)})
		if got := n.Add(docs[i]); got != i {
			t.Fatalf("Add = %d, want %d", got, i)
		}
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := runtime.NumGoroutine(); got > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines after Close, %d before:\n%s", got, before, buf[:runtime.Stack(buf, true)])
		}
	})
	return n, docs
}

// transports runs f with hand-stepped links and with pipes.
func transports(t *testing.T, f func(t *testing.T, pipes bool)) {
	for _, pipes := range []bool{false, true} {
		name := "hand"
		if pipes {
			name = "pipes"
		}
		t.Run(name, func(t *testing.T) { f(t, pipes) })
	}
}

// waitGone waits with Until for the link between i and j to go, and
// reports whether it has.
func waitGone(t *testing.T, n *Network, i, j int) bool {
	t.Helper()
	if err := n.Until(t.Context(), func() bool { return !n.Connected(i, j) }); err != nil {
		t.Log(err)
	}
	return !n.Connected(i, j)
}

func assertConverged(t *testing.T, docs []*logDoc, members ...int) {
	t.Helper()
	if members == nil {
		for i := range docs {
			members = append(members, i)
		}
	}
	want := docs[members[0]].ids()
	for _, i := range members[1:] {
		if diff := cmp.Diff(want, docs[i].ids()); diff != "" {
			t.Errorf("%s and %s differ (-%s +%s):\n%s", docs[members[0]].ID(), docs[i].ID(), docs[members[0]].ID(), docs[i].ID(), diff)
		}
	}
}

func TestChainConverges(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 1, 4, nil)
		for i := range 3 {
			if err := n.Connect(i, i+1); err != nil {
				t.Fatal(err)
			}
		}
		for i, d := range docs {
			d.write(t, i)
			d.write(t, 10+i)
		}
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if got := len(docs[0].ids()); got != 8 {
			t.Errorf("n0 holds %d updates, want 8", got)
		}
		if err := n.Err(); err != nil {
			t.Error(err)
		}
	})
}

func TestCutMidHistoryThenReconnect(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		for _, cut := range []int64{1, 5, 17, 60, 150, 300} {
			t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
				n, docs := newNet(t, pipes, uint64(cut), 2, &Options{
					Stream: func(*rand.Rand) *stream.Options { return &stream.Options{MaxBatchBytes: 40} },
				})
				for v := range 20 {
					docs[v%2].write(t, v)
				}
				if err := n.ConnectFault(0, 1, Fault{CutAfter: cut, MaxChunk: 7}); err != nil {
					t.Fatal(err)
				}
				// The cut ends the link by itself; a reconnect replaces it.
				if !waitGone(t, n, 0, 1) {
					t.Fatalf("link still live after a cut at %d bytes", cut)
				}
				if err := n.ConnectFault(0, 1, Fault{MaxChunk: 3}); err != nil {
					t.Fatal(err)
				}
				if err := n.Quiesce(t.Context()); err != nil {
					t.Fatal(err)
				}
				assertConverged(t, docs)
				if err := n.Err(); err != nil {
					t.Errorf("a cut is expected, yet: %v", err)
				}
			})
		}
	})
}

func TestPartitionAndHeal(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 7, 6, &Options{
			Fault: func(r *rand.Rand) Fault { return Fault{MaxChunk: 1 + r.IntN(16)} },
		})
		n.FullMesh()
		n.Partition([]int{0, 1, 2}, []int{3, 4})
		if diff := cmp.Diff([][]int{{0, 1, 2}, {3, 4}, {5}}, n.Groups()); diff != "" {
			t.Errorf("Groups after the partition (-want +got):\n%s", diff)
		}
		if err := n.Connect(0, 3); !errors.Is(err, ErrPartitioned) {
			t.Errorf("Connect across the partition = %v, want ErrPartitioned", err)
		}
		for i, d := range docs {
			d.write(t, i)
		}
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs, 0, 1, 2)
		assertConverged(t, docs, 3, 4)
		if got := docs[5].ids(); len(got) != 1 {
			t.Errorf("isolated n5 holds %v, want only its own update", got)
		}
		if got := docs[0].ids(); len(got) != 3 {
			t.Errorf("n0 holds %v, want the 3 updates of its side", got)
		}
		n.Heal()
		if diff := cmp.Diff([][]int{{0, 1, 2, 3, 4, 5}}, n.Groups()); diff != "" {
			t.Errorf("Groups after Heal (-want +got):\n%s", diff)
		}
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if got := len(docs[5].ids()); got != 6 {
			t.Errorf("n5 holds %d updates after heal, want 6", got)
		}
		if err := n.Err(); err != nil {
			t.Error(err)
		}
	})
}

func TestDisconnectWhileWriting(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 3, 3, &Options{
			Fault: func(r *rand.Rand) Fault { return Fault{MaxChunk: 1 + r.IntN(8)} },
		})
		r := rand.New(rand.NewPCG(3, 3))
		for step := range 200 {
			i, j := r.IntN(3), r.IntN(3)
			switch {
			case i == j:
				docs[i].write(t, step)
			case r.IntN(2) == 0:
				if err := n.Connect(i, j); err != nil {
					t.Fatal(err)
				}
			default:
				if err := n.Disconnect(i, j); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
		}
		n.Heal()
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if err := n.Err(); err != nil {
			t.Error(err)
		}
	})
}

// A protocol error is not explained by any fault: the network reports it.
func TestReportsProtocolError(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n := New(1, &Options{Logf: t.Logf, Pipes: pipes})
		// The same source id, replica id and incarnation: each side takes the
		// other's hello for its own and refuses it.
		same := &scuttlebutt.Config{Incarnation: "same"}
		n.Add(newLogDoc(t, "n0", same))
		n.Add(newLogDoc(t, "n0", same))
		if err := n.Connect(0, 1); err != nil {
			t.Fatal(err)
		}
		waitGone(t, n, 0, 1)
		err := n.Disconnect(0, 1)
		if !errors.Is(err, ErrUnexpected) || !errors.Is(err, scuttlebutt.ErrSameID) {
			t.Errorf("Disconnect = %v, want ErrUnexpected wrapping ErrSameID", err)
		}
		if err := n.Close(); !errors.Is(err, scuttlebutt.ErrSameID) {
			t.Errorf("Close = %v, want ErrSameID", err)
		}
	})
}

// Two receive-only sides never send each other anything: Quiesce gives up
// and shows the clocks.
func TestQuiesceTimesOutWithDump(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 1, 2, &Options{
			QuiesceTimeout: 20 * time.Millisecond,
			Stream: func(*rand.Rand) *stream.Options {
				return &stream.Options{Mode: scuttlebutt.ReceiveOnly}
			},
		})
		docs[0].write(t, 1)
		docs[1].write(t, 2)
		n.Partition([]int{0}, []int{1})
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatalf("each side of a partition is quiet alone, got %v", err)
		}
		n.Heal()
		err := n.Quiesce(t.Context())
		if !errors.Is(err, ErrNotQuiet) {
			t.Fatalf("Quiesce = %v, want ErrNotQuiet", err)
		}
		for _, want := range []string{"n0 clock {" + docs[0].Source() + ":", "n1 clock {" + docs[1].Source() + ":", "link n0-n1#1 live"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Quiesce error lacks %q:\n%v", want, err)
			}
		}
	})
}

// A live queue far smaller than the writes overflows again and again while
// the writer keeps writing, so each link keeps falling back to History. Run
// with -race: the queue's buffers must never be shared between the writer
// and the link.
func TestQueueOverflowUnderConcurrentWrites(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 5, 3, &Options{
			Fault:  func(r *rand.Rand) Fault { return Fault{MaxChunk: 64 + r.IntN(64)} },
			Stream: func(*rand.Rand) *stream.Options { return &stream.Options{MaxQueueBytes: 300} },
		})
		n.FullMesh()
		var wg sync.WaitGroup
		for _, d := range docs {
			wg.Go(func() {
				for v := range 300 {
					runtime.Gosched()
					data, _ := cbor.Marshal(v)
					if _, _, err := d.LocalUpdate(data); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if got := len(docs[0].ids()); got != 900 {
			t.Errorf("n0 holds %d updates, want 900", got)
		}
		if err := n.Err(); err != nil {
			t.Error(err)
		}
	})
}

// The cut budget: a short take dooms the link for good, and StopCuts
// disarms only links whose cut has not begun.
func TestCutBudget(t *testing.T) {
	tests := []struct {
		name     string
		budget   int64
		takes    []int
		disarm   bool // disarm before the takes
		wantGot  []int
		wantDead bool
	}{
		{name: "within budget", budget: 10, takes: []int{4, 6}, wantGot: []int{4, 6}},
		{name: "crossing the budget", budget: 10, takes: []int{4, 7, 3}, wantGot: []int{4, 6, 0}, wantDead: true},
		{name: "zero budget left", budget: 4, takes: []int{4, 1}, wantGot: []int{4, 0}, wantDead: true},
		{name: "disarmed", budget: 3, disarm: true, takes: []int{4, 1 << 20}, wantGot: []int{4, 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &link{done: make(chan struct{})}
			l.budget.Store(tt.budget)
			if tt.disarm {
				l.disarm()
			}
			var got []int
			for _, k := range tt.takes {
				got = append(got, l.take(k))
			}
			if diff := cmp.Diff(tt.wantGot, got); diff != "" {
				t.Errorf("takes %v from %d (-want +got):\n%s", tt.takes, tt.budget, diff)
			}
			if l.dead() != tt.wantDead {
				t.Errorf("dead = %v, want %v", l.dead(), tt.wantDead)
			}
			l.disarm()
			if l.dead() != tt.wantDead {
				t.Errorf("after disarm, dead = %v, want %v: a cut under way must stay", l.dead(), tt.wantDead)
			}
		})
	}
}

// Incarnations follow from the seed, the id and the start alone, differ
// between starts, and are valid.
func TestIncarnation(t *testing.T) {
	if a, b := Incarnation(7, "r1", 0), Incarnation(7, "r1", 0); a != b {
		t.Errorf("Incarnation(7, r1, 0) = %q, then %q", a, b)
	}
	seen := map[string]string{}
	for _, seed := range []uint64{0, 1, 7} {
		for _, id := range []string{"r0", "r1", "r10"} {
			for start := range 4 {
				inc := Incarnation(seed, id, start)
				what := fmt.Sprintf("seed %d, %s, start %d", seed, id, start)
				if prev, ok := seen[id+"~"+inc]; ok {
					t.Errorf("%s: %q, as for %s", what, inc, prev)
				}
				seen[id+"~"+inc] = what
				d := newLogDoc(t, id, &scuttlebutt.Config{Incarnation: inc})
				if d.Source() != scuttlebutt.SourceID(id, inc) {
					t.Errorf("%s: Source %q", what, d.Source())
				}
			}
		}
	}
	n, m := New(7, nil), New(7, nil)
	for start := range 3 {
		if got, want := n.Incarnation("r1"), Incarnation(7, "r1", start); got != want {
			t.Errorf("start %d: Network.Incarnation = %q, want %q", start, got, want)
		}
	}
	if got, want := m.Incarnation("r2"), Incarnation(7, "r2", 0); got != want {
		t.Errorf("first start of r2: %q, want %q", got, want)
	}
	if a, b := n.Rand().Uint64(), m.Rand().Uint64(); a != b {
		t.Errorf("Incarnation drew from the network's source")
	}
}

// Replace ends the replica's links, waits for them, and swaps the replica:
// the new one starts unconnected, writes, and converges once linked again.
func TestReplace(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 1, 3, nil)
		n.Connect(0, 1)
		n.Connect(1, 2)
		docs[0].write(t, 1)
		docs[1].write(t, 2)
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		old := docs[1]
		fresh := newLogDoc(t, "n1", &scuttlebutt.Config{Incarnation: n.Incarnation("n1")})
		if err := n.Replace(1, fresh); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		if n.Doc(1) != fresh {
			t.Fatalf("Doc(1) is not the replacement")
		}
		if n.Connected(0, 1) || n.Connected(1, 2) {
			t.Fatalf("links of the replaced replica survived")
		}
		if got, want := n.Groups(), [][]int{{0}, {1}, {2}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("Groups = %v, want %v", got, want)
		}
		// The old replica is cut off: its write after Replace reaches no one.
		old.write(t, 3)
		fresh.write(t, 4)
		docs[1] = fresh
		n.Heal()
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if got := len(docs[2].ids()); got != 3 {
			t.Errorf("n2 holds %v, want the 2 writes before the restart and the 1 after", docs[2].ids())
		}
		if err := n.Err(); err != nil {
			t.Error(err)
		}
	})
}

// A peer whose clock runs far ahead has its sessions refused with
// ErrClockOffset: reported unless Options.Refused claims the error, and
// then counted.
func TestRefused(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		base := time.UnixMilli(1795385884149)
		for _, claim := range []bool{false, true} {
			t.Run(fmt.Sprintf("claimed=%v", claim), func(t *testing.T) {
				opts := &Options{Logf: t.Logf, Pipes: pipes}
				if claim {
					opts.Refused = func(err error) bool { return errors.Is(err, scuttlebutt.ErrClockOffset) }
				}
				n := New(1, opts)
				h := newLogDoc(t, "n0", &scuttlebutt.Config{Now: func() time.Time { return base }})
				late := newLogDoc(t, "late", &scuttlebutt.Config{
					Now:         func() time.Time { return base.Add(2 * time.Minute) },
					Incarnation: n.Incarnation("late"),
				})
				late.write(t, 1) // its clock now names its source, 2 min ahead
				n.Add(h)
				n.Add(late)
				if err := n.Connect(0, 1); err != nil {
					t.Fatal(err)
				}
				if !waitGone(t, n, 0, 1) {
					t.Fatal("the link to a peer 2 min ahead is still live")
				}
				if got := h.ids(); len(got) != 0 {
					t.Errorf("n0 took %v from a peer 2 min ahead", got)
				}
				if got := h.Stats().OffsetRefused; got != 1 {
					t.Errorf("n0's OffsetRefused = %d, want 1", got)
				}
				err := n.Close()
				switch {
				case claim && err != nil:
					t.Errorf("Close = %v, want nil: the refusal was claimed", err)
				case !claim && (!errors.Is(err, ErrUnexpected) || !errors.Is(err, scuttlebutt.ErrClockOffset)):
					t.Errorf("Close = %v, want ErrUnexpected wrapping ErrClockOffset", err)
				}
				if got, want := n.Refusals(), map[bool]int{false: 0, true: 1}[claim]; got != want {
					t.Errorf("Refusals = %d, want %d", got, want)
				}
			})
		}
	})
}

// Hand-stepped links replay: the same seed gives the same deliveries, in
// the same order, cuts included, and the same state.
func TestHandReplays(t *testing.T) {
	run := func() (trace []string, ids [][]string) {
		var mu sync.Mutex
		n := New(42, &Options{
			LogMessages: true,
			Logf: func(format string, args ...any) {
				mu.Lock()
				trace = append(trace, fmt.Sprintf(format, args...))
				mu.Unlock()
			},
			Fault:  func(r *rand.Rand) Fault { return Fault{CutAfter: int64(r.IntN(400))} },
			Stream: func(r *rand.Rand) *stream.Options { return &stream.Options{MaxBatchBytes: 20 + r.IntN(60)} },
		})
		now := func() time.Time { return time.UnixMilli(1795385884149) }
		var docs []*logDoc
		for i := range 5 {
			id := fmt.Sprintf("n%d", i)
			docs = append(docs, newLogDoc(t, id, &scuttlebutt.Config{Now: now, Incarnation: n.Incarnation(id)}))
			n.Add(docs[i])
		}
		r := rand.New(rand.NewPCG(42, 1))
		for step := range 60 {
			i, j := r.IntN(5), r.IntN(5)
			switch {
			case i == j:
				docs[i].write(t, step)
			case r.IntN(3) == 0:
				n.Disconnect(i, j)
			default:
				n.Connect(i, j)
			}
			n.Run(r.IntN(10))
		}
		n.StopCuts()
		n.FullMesh()
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			ids = append(ids, d.ids())
		}
		return trace, ids
	}
	trace1, ids1 := run()
	trace2, ids2 := run()
	if diff := cmp.Diff(trace1, trace2); diff != "" {
		t.Errorf("two runs of one seed delivered differently (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(ids1, ids2); diff != "" {
		t.Errorf("two runs of one seed ended differently (-first +second):\n%s", diff)
	}
	cuts := 0
	for _, line := range trace1 {
		if strings.HasPrefix(line, "simnet: cut ") {
			cuts++
		}
	}
	if cuts == 0 || len(trace1) < 100 {
		t.Errorf("the schedule cut %d links and traced %d lines: it tests little", cuts, len(trace1))
	}
}

// kinds lists the kinds of ms.
func kinds(ms []scuttlebutt.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Kind.String())
	}
	return out
}

// ConnectLinks gives each replica the options meant for it, whichever
// index is lower; Pump holds messages in flight, Deliver moves one at a
// time, Sent records them in order per direction, and Settle counts what
// it delivered.
func TestConnectLinksDeliverSent(t *testing.T) {
	n, docs := newNet(t, false, 1, 2, nil)
	docs[0].write(t, 1)
	docs[1].write(t, 2)
	// Replica 1, the higher index, receives only.
	l1, l0 := n.ConnectLinks(1, 0, &scuttlebutt.LinkOptions{Mode: scuttlebutt.ReceiveOnly}, nil)
	if got := n.Pump(1, 0); got != 2 {
		t.Errorf("Pump(1, 0) = %d, want 2: the hello and the empty sync of a receive-only side", got)
	}
	if got := n.Sent(1, 0); got != nil {
		t.Errorf("Sent(1, 0) = %v before any delivery", got)
	}
	if !n.Deliver(1, 0) {
		t.Fatal("Deliver(1, 0) of the hello = false")
	}
	if diff := cmp.Diff([]string{"hello"}, kinds(n.Sent(1, 0))); diff != "" {
		t.Errorf("Sent(1, 0) after one Deliver (-want +got):\n%s", diff)
	}
	if !n.Deliver(1, 0) {
		t.Fatal("Deliver(1, 0) of the sync = false")
	}
	if n.Deliver(1, 0) {
		t.Errorf("Deliver(1, 0) = true with nothing queued")
	}
	if got := n.Settle(); got != 3 {
		t.Errorf("Settle = %d, want 3: 0's hello, updates, sync", got)
	}
	if n.Settle() != 0 {
		t.Errorf("a second Settle delivered more")
	}
	if diff := cmp.Diff([]string{"hello", "updates", "sync"}, kinds(n.Sent(0, 1))); diff != "" {
		t.Errorf("Sent(0, 1) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hello", "sync"}, kinds(n.Sent(1, 0))); diff != "" {
		t.Errorf("Sent(1, 0) of a receive-only side (-want +got):\n%s", diff)
	}
	if !l0.Synced() || !l1.Synced() {
		t.Errorf("synced %v/%v after Settle", l0.Synced(), l1.Synced())
	}
	if got := len(docs[0].ids()); got != 1 {
		t.Errorf("n0 holds %v: the receive-only side sent it something", docs[0].ids())
	}
	if got := len(docs[1].ids()); got != 2 {
		t.Errorf("n1 holds %v, want its own update and n0's", docs[1].ids())
	}
	n.ResetSent()
	if got := n.Sent(0, 1); got != nil {
		t.Errorf("Sent(0, 1) after ResetSent = %v", got)
	}
	// A live write, whose Wake the test drains itself: Settle still asks.
	docs[0].write(t, 3)
	select {
	case <-l0.Wake():
	default:
		t.Error("no wakeup after a live write")
	}
	if got := n.Settle(); got != 1 {
		t.Errorf("Settle after a live write = %d, want 1", got)
	}
	if diff := cmp.Diff([]string{"updates"}, kinds(n.Sent(0, 1))); diff != "" {
		t.Errorf("Sent(0, 1) after the live write (-want +got):\n%s", diff)
	}
	if err := n.Err(); err != nil {
		t.Error(err)
	}
}

// A Step error fails the link where it happens: Deliver reports false,
// OnError hears of it at once, and Err keeps it.
func TestStepErrorReported(t *testing.T) {
	var got []error
	n := New(1, &Options{Logf: t.Logf, OnError: func(err error) { got = append(got, err) }})
	same := &scuttlebutt.Config{Incarnation: "same"}
	n.Add(newLogDoc(t, "n0", same))
	n.Add(newLogDoc(t, "n0", same))
	n.ConnectLinks(0, 1, nil, nil)
	if n.Deliver(0, 1) {
		t.Error("Deliver of a hello from the same source = true")
	}
	if len(got) != 1 || !errors.Is(got[0], ErrUnexpected) || !errors.Is(got[0], scuttlebutt.ErrSameID) {
		t.Errorf("OnError got %v, want one ErrUnexpected wrapping ErrSameID", got)
	}
	if n.Connected(0, 1) || n.Deliver(1, 0) || n.Pump(1, 0) != 0 {
		t.Error("the link is still up after its Step failed")
	}
	if err := n.Close(); !errors.Is(err, scuttlebutt.ErrSameID) {
		t.Errorf("Close = %v, want ErrSameID", err)
	}
}

// Until steps a hand-stepped network only as far as its condition needs,
// and says when the condition can no longer come true; over pipes it
// polls.
func TestUntil(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 1, 2, nil)
		for v := range 10 {
			docs[0].write(t, v)
		}
		n.Connect(0, 1)
		if !pipes {
			if err := n.Until(t.Context(), func() bool { return len(n.Sent(0, 1)) > 0 }); err != nil {
				t.Fatal(err)
			}
			if got := len(n.Sent(0, 1)); got > 3 {
				t.Errorf("Until made more than one Step: %d messages 0→1", got)
			}
			if n.Settle() == 0 {
				t.Error("Until delivered everything, not just what its condition needed")
			}
		}
		if err := n.Until(t.Context(), func() bool { return docs[1].Clock().Get(docs[0].Source()) != 0 }); err != nil {
			t.Fatal(err)
		}
		if got := len(docs[1].ids()); got != 10 {
			t.Errorf("n1 holds %d updates once its clock names n0, want 10: a history is applied whole", got)
		}
		ctx := t.Context()
		if pipes {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
		}
		err := n.Until(ctx, func() bool { return len(docs[0].ids()) > 10 })
		if !errors.Is(err, ErrNotQuiet) {
			t.Errorf("Until of a condition that never holds = %v, want ErrNotQuiet", err)
		}
	})
}

// A crashed replica stays unlinked until Replace restarts it.
func TestCrash(t *testing.T) {
	transports(t, func(t *testing.T, pipes bool) {
		n, docs := newNet(t, pipes, 2, 3, nil)
		n.FullMesh()
		if err := n.Crash(1); err != nil {
			t.Fatal(err)
		}
		if err := n.Connect(0, 1); !errors.Is(err, ErrCrashed) {
			t.Errorf("Connect to a crashed replica = %v, want ErrCrashed", err)
		}
		if !pipes {
			func() {
				defer func() {
					if recover() == nil {
						t.Error("ConnectLinks to a crashed replica did not panic")
					}
				}()
				n.ConnectLinks(1, 2, nil, nil)
			}()
		}
		n.Heal()
		n.FullMesh()
		n.Partition([]int{0, 1}, []int{2})
		n.Heal()
		if diff := cmp.Diff([][]int{{0, 2}, {1}}, n.Groups()); diff != "" {
			t.Errorf("Groups with replica 1 down (-want +got):\n%s", diff)
		}
		if !strings.Contains(n.Dump(), "n1 (down) clock") {
			t.Errorf("Dump does not show n1 down:\n%s", n.Dump())
		}
		docs[0].write(t, 1)
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := docs[1].ids(); len(got) != 0 {
			t.Errorf("crashed n1 received %v", got)
		}
		fresh := newLogDoc(t, "n1", &scuttlebutt.Config{Incarnation: n.Incarnation("n1")})
		if err := n.Replace(1, fresh); err != nil {
			t.Fatal(err)
		}
		docs[1] = fresh
		n.Heal()
		if err := n.Quiesce(t.Context()); err != nil {
			t.Fatal(err)
		}
		assertConverged(t, docs)
		if err := n.Err(); err != nil {
			t.Error(err)
		}
	})
}

// The hand-stepped schedule's own calls need hand-stepped links.
func TestHandOnlyWithPipes(t *testing.T) {
	n, _ := newNet(t, true, 1, 2, nil)
	for name, f := range map[string]func(){
		"ConnectLinks": func() { n.ConnectLinks(0, 1, nil, nil) },
		"Pump":         func() { n.Pump(0, 1) },
		"Deliver":      func() { n.Deliver(0, 1) },
		"Settle":       func() { n.Settle() },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), name) {
					t.Errorf("%s with Pipes: recovered %v, want a panic naming it", name, r)
				}
			}()
			f()
		}()
	}
}

// The prefix check refuses, per direction, an update at or below what the
// direction already sent or advertised.
func TestCheckPrefix(t *testing.T) {
	upd := func(us ...scuttlebutt.Update) scuttlebutt.Message {
		return scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: us}
	}
	u := func(src string, ts vclock.Timestamp) scuttlebutt.Update {
		return scuttlebutt.Update{Source: src, Timestamp: ts}
	}
	tests := []struct {
		name string
		msgs []scuttlebutt.Message
		bad  int // index of the message refused, or -1
	}{
		{"forward", []scuttlebutt.Message{upd(u("a", 1), u("b", 1)), upd(u("a", 2))}, -1},
		{"repeated in a batch", []scuttlebutt.Message{upd(u("a", 1), u("a", 1))}, 0},
		{"backward", []scuttlebutt.Message{upd(u("a", 2)), upd(u("a", 1))}, 1},
		{"at the sync", []scuttlebutt.Message{{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"a": 5}}, upd(u("a", 5))}, 1},
		{"past the sync", []scuttlebutt.Message{{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"a": 5}}, upd(u("a", 6), u("b", 1))}, -1},
		{"below a clock", []scuttlebutt.Message{{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"b": 3}}, upd(u("b", 2))}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &handLink{name: "x-y#1", mark: [2]vclock.Clock{{}, {}}}
			bad := -1
			for i, m := range tt.msgs {
				if err := l.checkPrefix(0, m); err != nil {
					if !errors.Is(err, ErrUnexpected) {
						t.Errorf("message %d: %v, not ErrUnexpected", i, err)
					}
					bad = i
					break
				}
			}
			if bad != tt.bad {
				t.Errorf("refused message %d of %v, want %d", bad, tt.msgs, tt.bad)
			}
			if got := l.mark[1]; len(got) != 0 {
				t.Errorf("the other direction's mark moved: %v", got)
			}
		})
	}
}

// Settle gives up after Options.MaxSteps Steps and reports it.
func TestSettleGivesUp(t *testing.T) {
	var got []error
	n := New(1, &Options{Logf: t.Logf, MaxSteps: 2, OnError: func(err error) { got = append(got, err) }})
	d := newLogDoc(t, "n0", nil)
	for v := range 20 {
		d.write(t, v)
	}
	n.Add(d)
	n.Add(newLogDoc(t, "n1", nil))
	n.ConnectLinks(0, 1, &scuttlebutt.LinkOptions{MaxBatchBytes: 20}, nil)
	if d := n.Settle(); d < 3 || d > 9 {
		t.Errorf("Settle delivered %d messages in 3 Steps", d)
	}
	if len(got) != 1 || !errors.Is(got[0], ErrUnexpected) || !errors.Is(got[0], ErrNotQuiet) {
		t.Errorf("OnError got %v, want one error wrapping ErrUnexpected and ErrNotQuiet", got)
	}
	if n.Settle() == 0 {
		t.Error("nothing was left after Settle gave up")
	}
	if err := n.Close(); !errors.Is(err, ErrNotQuiet) {
		t.Errorf("Close = %v, want ErrNotQuiet", err)
	}
}

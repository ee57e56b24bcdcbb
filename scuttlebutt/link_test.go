package scuttlebutt_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestLinkHandshake(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	a.write(t, "a1")
	l := a.NewLink(&scuttlebutt.LinkOptions{Meta: "hi"})
	defer l.Close()

	ms := l.Ready()
	if len(ms) != 1 || ms[0].Kind != scuttlebutt.MsgHello || ms[0].Hello == nil {
		t.Fatalf("first Ready = %v, want one hello", ms)
	}
	want := scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "a~1", Clock: a.Clock(), Meta: "hi"}
	if diff := cmp.Diff(want, *ms[0].Hello); diff != "" {
		t.Errorf("hello (-want +got):\n%s", diff)
	}
	// The hello's clock is a copy.
	ms[0].Hello.Clock["a"] = 1
	if a.Clock().Get("a~1") == 1 {
		t.Error("modifying the hello's clock changed the replica's clock")
	}
	if ms := l.Ready(); ms != nil {
		t.Errorf("Ready before the peer's hello = %v, want nil", ms)
	}
	if l.Peer() != nil || l.Synced() || l.Done() {
		t.Errorf("before the peer's hello: Peer=%v Synced=%v Done=%v", l.Peer(), l.Synced(), l.Done())
	}

	peer := &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "b", Clock: vclock.Clock{}, Meta: "yo"}
	if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: peer}); err != nil {
		t.Fatalf("Step(hello): %v", err)
	}
	if got := l.Peer(); got == nil || got.ID != "b" || got.Meta != "yo" {
		t.Errorf("Peer after hello = %+v", got)
	}
	var kinds []string
	for _, m := range l.Ready() {
		kinds = append(kinds, m.String())
	}
	wantKinds := []string{"updates(a~1@1795385884149(3B))", "sync({a~1:1795385884149})"}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("Ready after the peer's hello (-want +got):\n%s", diff)
	}
	if l.Synced() {
		t.Error("Synced before the peer's sync")
	}
	if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}); err != nil {
		t.Fatalf("Step(sync): %v", err)
	}
	if !l.Synced() {
		t.Error("not Synced after sending and receiving sync")
	}
}

func TestLinkHistoryAndSync(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	for _, s := range []string{"a1", "a2", "a3"} {
		a.write(t, s)
	}
	for _, s := range []string{"b1", "b2"} {
		b.write(t, s)
	}
	n := newNet(t, a, b)
	la, lb := n.ConnectLinks(0, 1, nil, nil)
	if la.Synced() || lb.Synced() {
		t.Fatal("synced before any message")
	}
	n.Settle()

	if !la.Synced() || !lb.Synced() {
		t.Fatalf("after Settle: a synced %v, b synced %v", la.Synced(), lb.Synced())
	}
	wantKinds := []string{"hello", "updates", "sync"}
	if diff := cmp.Diff(wantKinds, kinds(n.Sent(0, 1))); diff != "" {
		t.Errorf("a→b messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantKinds, kinds(n.Sent(1, 0))); diff != "" {
		t.Errorf("b→a messages (-want +got):\n%s", diff)
	}
	if _, nu := count(n.Sent(0, 1), scuttlebutt.MsgUpdates); nu != 3 {
		t.Errorf("a→b carried %d updates, want 3 (a's own)", nu)
	}
	if _, nu := count(n.Sent(1, 0), scuttlebutt.MsgUpdates); nu != 2 {
		t.Errorf("b→a carried %d updates, want 2 (b's own)", nu)
	}
	want := []string{"a~1:a1", "a~1:a2", "a~1:a3", "b~1:b1", "b~1:b2"}
	for _, d := range []*logDoc{a, b} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s state (-want +got):\n%s", d.ID(), diff)
		}
	}
	if diff := cmp.Diff(a.Clock(), b.Clock()); diff != "" {
		t.Errorf("clocks differ (-a +b):\n%s", diff)
	}
	// The sync carries the clock the history brings the peer up to: a's
	// clock when b's hello arrived.
	last := n.Sent(0, 1)[2]
	if diff := cmp.Diff(vclock.Clock{"a~1": a.Clock().Get("a~1")}, last.Clock); diff != "" {
		t.Errorf("a's sync clock (-want +got):\n%s", diff)
	}
}

func TestLinkNothingToSend(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	u := a.write(t, "a1")
	if _, err := b.Apply(u); err != nil {
		t.Fatal(err)
	}
	n := newNet(t, a, b)
	n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	if diff := cmp.Diff([]string{"hello", "sync"}, kinds(n.Sent(0, 1))); diff != "" {
		t.Errorf("a→b: peers already in step exchanged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hello", "sync"}, kinds(n.Sent(1, 0))); diff != "" {
		t.Errorf("b→a: peers already in step exchanged (-want +got):\n%s", diff)
	}
}

func TestLinkLiveNoEcho(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	n := newNet(t, a, b)
	la, _ := n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	n.ResetSent()

	a.write(t, "a1")
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1"}, b.values()); diff != "" {
		t.Fatalf("b after a's live update (-want +got):\n%s", diff)
	}
	if m, u := count(n.Sent(0, 1), scuttlebutt.MsgUpdates); m != 1 || u != 1 {
		t.Errorf("a→b: %d messages with %d updates, want 1 with 1", m, u)
	}
	if got := n.Sent(1, 0); len(got) != 0 {
		t.Errorf("b→a sent %d messages after receiving a's update, want 0 (no echo): %v", len(got), got)
	}

	n.ResetSent()
	b.write(t, "b1")
	b.write(t, "b2")
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1", "b~1:b1", "b~1:b2"}, a.values()); diff != "" {
		t.Fatalf("a after b's live updates (-want +got):\n%s", diff)
	}
	if _, u := count(n.Sent(1, 0), scuttlebutt.MsgUpdates); u != 2 {
		t.Errorf("b→a carried %d updates, want 2", u)
	}
	if got := len(n.Sent(0, 1)); got != 0 {
		t.Errorf("a→b sent %d messages after receiving b's updates, want 0 (no echo)", got)
	}
	if la.Ready() != nil {
		t.Error("a's link still has messages after Settle")
	}
}

// TestLinkNoEchoCrossing has an update reach b by two routes in a
// triangle: first from c, then from its source a. By then b has queued it
// for a; the link must drop it, since a sent it on this link.
func TestLinkNoEchoCrossing(t *testing.T) {
	a, b, c := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil), newLogDoc(t, "c", nil)
	n := newNet(t, a, b, c)
	n.ConnectLinks(0, 1, nil, nil)
	n.ConnectLinks(1, 2, nil, nil)
	n.ConnectLinks(2, 0, nil, nil)
	n.Settle()
	n.ResetSent()

	a.write(t, "a1")
	n.Pump(0, 1)          // a1 in flight to b...
	for n.Deliver(0, 2) { // ...while it reaches c,
	}
	for n.Deliver(2, 1) { // and b applies it from c and queues it for a;
	}
	for n.Deliver(0, 1) { // then a1 arrives from a itself
	}
	n.Settle()
	if _, u := count(n.Sent(1, 0), scuttlebutt.MsgUpdates); u != 0 {
		t.Errorf("b sent a's update back to a (%d updates): %v", u, n.Sent(1, 0))
	}
	for _, d := range []*logDoc{a, b, c} {
		if diff := cmp.Diff([]string{"a~1:a1"}, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.ID(), diff)
		}
	}
}

// TestLinkReceivedNotQueued checks that what a link receives is not queued
// on the same link: with a tiny queue, a burst from the peer must not
// overflow it and trigger a resync back to the sender.
func TestLinkReceivedNotQueued(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	n := newNet(t, a, b)
	n.ConnectLinks(0, 1, nil, &scuttlebutt.LinkOptions{MaxQueueBytes: 64})
	n.Settle()
	n.ResetSent()
	for i := range 20 {
		a.write(t, fmt.Sprintf("a%02d", i))
	}
	n.Settle()
	if got := n.Sent(1, 0); len(got) != 0 {
		t.Errorf("b sent %v to a after receiving a burst from it, want nothing", got)
	}
	if got := len(b.values()); got != 20 {
		t.Errorf("b has %d updates, want 20", got)
	}
}

func TestLinkRelay(t *testing.T) {
	a, b, c := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil), newLogDoc(t, "c", nil)
	n := newNet(t, a, b, c)
	n.ConnectLinks(0, 1, nil, nil)
	n.ConnectLinks(1, 2, nil, nil)
	n.Settle()
	n.ResetSent()

	var want []string
	for i := range 12 {
		s := fmt.Sprintf("a%02d", i)
		a.write(t, s)
		want = append(want, "a~1:"+s)
		if i%4 == 3 {
			n.Settle() // some delivered one by one, some in bursts
		}
	}
	n.Settle()
	if diff := cmp.Diff(want, c.values()); diff != "" {
		t.Fatalf("c after relay (-want +got):\n%s", diff)
	}
	// c applied a's updates in a's timestamp order.
	var prev vclock.Timestamp
	for _, u := range c.log() {
		if !(u.Timestamp > prev) {
			t.Errorf("c applied %s after %v: out of order", u, prev)
		}
		prev = u.Timestamp
	}
	if _, u := count(n.Sent(1, 2), scuttlebutt.MsgUpdates); u != 12 {
		t.Errorf("b→c carried %d updates, want 12", u)
	}
	if _, u := count(n.Sent(2, 1), scuttlebutt.MsgUpdates); u != 0 {
		t.Errorf("c→b carried %d updates, want 0 (no echo)", u)
	}
	if _, u := count(n.Sent(1, 0), scuttlebutt.MsgUpdates); u != 0 {
		t.Errorf("b→a carried %d updates, want 0 (no echo)", u)
	}

	// Writes at both ends cross in the middle.
	c.write(t, "c1")
	a.write(t, "a12")
	n.Settle()
	want = append(want, "a~1:a12", "c~1:c1")
	for _, d := range []*logDoc{a, b, c} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.ID(), diff)
		}
	}
}

// TestLinkRandomSchedules writes on random replicas of a triangle and a line
// and delivers messages in random interleavings (FIFO per direction). The
// network checks the prefix property on every message; at the end every
// replica holds every update.
func TestLinkRandomSchedules(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for round := range 30 {
		docs := []*logDoc{newLogDoc(t, "a", nil), newLogDoc(t, "b", nil), newLogDoc(t, "c", nil)}
		n := newNet(t, docs[0], docs[1], docs[2])
		// A tiny queue on some rounds forces resyncs from History.
		var opts *scuttlebutt.LinkOptions
		if round%3 == 0 {
			opts = &scuttlebutt.LinkOptions{MaxQueueBytes: 60, MaxBatchBytes: 40}
		}
		pairs := [][2]int{{0, 1}, {1, 2}}
		if round%2 == 0 {
			pairs = append(pairs, [2]int{2, 0})
		}
		var dirs [][2]int // each direction: from, to
		links := map[[2]int]*scuttlebutt.Link{}
		for _, p := range pairs {
			links[p], links[[2]int{p[1], p[0]}] = n.ConnectLinks(p[0], p[1], opts, opts)
			dirs = append(dirs, p, [2]int{p[1], p[0]})
		}
		var want []string
		for step := range 300 {
			switch k := r.IntN(10); {
			case k < 3:
				d := docs[r.IntN(len(docs))]
				s := fmt.Sprintf("%s%d", d.ID(), step)
				d.write(t, s)
				want = append(want, d.Source()+":"+s)
			case k < 6:
				d := dirs[r.IntN(len(dirs))]
				n.Pump(d[0], d[1])
			default:
				d := dirs[r.IntN(len(dirs))]
				n.Deliver(d[0], d[1])
			}
		}
		n.Settle()
		slices.Sort(want)
		for _, d := range docs {
			if diff := cmp.Diff(want, d.values()); diff != "" {
				t.Fatalf("seed %d round %d: %s did not converge (-want +got):\n%s", seed, round, d.ID(), diff)
			}
		}
		for _, d := range dirs {
			if !links[d].Synced() {
				t.Errorf("seed %d round %d: %s's link to %s not synced", seed, round, docs[d[0]].ID(), docs[d[1]].ID())
			}
		}
	}
}

func TestLinkQueueOverflow(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	n := newNet(t, a, b)
	la, _ := n.ConnectLinks(0, 1, &scuttlebutt.LinkOptions{MaxQueueBytes: 64}, nil)
	n.Settle()
	n.ResetSent()

	var want []string
	for i := range 20 {
		s := fmt.Sprintf("a%02d", i)
		a.write(t, s) // the peer reads nothing meanwhile: the queue overflows
		want = append(want, "a~1:"+s)
	}
	select {
	case <-la.Wake():
	default:
		t.Error("no wakeup after live updates were queued")
	}
	n.Settle()
	if diff := cmp.Diff(want, b.values()); diff != "" {
		t.Fatalf("b after the overflow (-want +got):\n%s", diff)
	}
	if m, _ := count(n.Sent(0, 1), scuttlebutt.MsgClock); m == 0 {
		t.Errorf("a→b sent no clock message: no resync from History happened: %v", kinds(n.Sent(0, 1)))
	}
	if _, u := count(n.Sent(0, 1), scuttlebutt.MsgUpdates); u != 20 {
		t.Errorf("a→b carried %d updates, want exactly the 20 written", u)
	}

	// The link keeps working live after the resync.
	a.write(t, "after")
	b.write(t, "b1")
	n.Settle()
	want = append(want, "a~1:after", "b~1:b1")
	for _, d := range []*logDoc{a, b} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.ID(), diff)
		}
	}
}

func TestLinkBatches(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	for i := range 50 {
		a.write(t, fmt.Sprintf("update-%02d", i))
	}
	const maxBatch = 100
	la := a.NewLink(&scuttlebutt.LinkOptions{MaxBatchBytes: maxBatch})
	defer la.Close()
	la.Ready() // the hello
	if err := la.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
		Version: scuttlebutt.ProtocolVersion, ID: "b", Clock: vclock.Clock{},
	}}); err != nil {
		t.Fatal(err)
	}
	first := la.Ready()
	if len(first) == 0 || first[len(first)-1].Kind == scuttlebutt.MsgSync {
		t.Errorf("one Ready sent the whole history of 50 updates with MaxBatchBytes %d: %d messages", maxBatch, len(first))
	}
	for _, m := range first {
		size := 0
		for _, u := range m.Updates {
			size += len(u.Data) + len(u.Source) + 16
		}
		if len(m.Updates) > 1 && size > maxBatch {
			t.Errorf("batch of %d updates is ~%d bytes, over MaxBatchBytes %d", len(m.Updates), size, maxBatch)
		}
	}
}

func TestLinkOneShot(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	a.write(t, "a1")
	b.write(t, "b1")
	n := newNet(t, a, b)
	oneShot := &scuttlebutt.LinkOptions{OneShot: true}
	la, lb := n.ConnectLinks(0, 1, oneShot, oneShot)
	if la.Done() || lb.Done() {
		t.Fatal("Done before anything was sent")
	}
	n.Settle()
	if !la.Done() || !lb.Done() {
		t.Fatalf("after the sync: a done %v, b done %v", la.Done(), lb.Done())
	}
	want := []string{"a~1:a1", "b~1:b1"}
	if diff := cmp.Diff(want, b.values()); diff != "" {
		t.Errorf("b (-want +got):\n%s", diff)
	}
	// No live updates after a one-shot sync.
	n.ResetSent()
	a.write(t, "a2")
	n.Settle()
	if got := n.Sent(0, 1); len(got) != 0 {
		t.Errorf("one-shot link sent %v after the sync", got)
	}
	if diff := cmp.Diff(want, b.values()); diff != "" {
		t.Errorf("b after a's write (-want +got):\n%s", diff)
	}
}

func TestLinkOneShotAgainstLive(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	a.write(t, "a1")
	n := newNet(t, a, b)
	la, lb := n.ConnectLinks(0, 1, &scuttlebutt.LinkOptions{OneShot: true}, nil)
	n.Settle()
	if !la.Done() {
		t.Error("one-shot side not Done after the sync")
	}
	if lb.Done() {
		t.Error("a live link reports Done")
	}
	if !lb.Synced() {
		t.Error("live side not synced")
	}
}

func TestLinkSendOnly(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	a.write(t, "a1")
	b.write(t, "b1")
	n := newNet(t, a, b)
	la, lb := n.ConnectLinks(0, 1, &scuttlebutt.LinkOptions{Mode: scuttlebutt.SendOnly}, nil)
	n.Settle()
	if !la.Synced() || !lb.Synced() {
		t.Fatalf("send-only synced %v, peer synced %v", la.Synced(), lb.Synced())
	}
	if diff := cmp.Diff([]string{"a~1:a1", "b~1:b1"}, b.values()); diff != "" {
		t.Errorf("peer of a send-only link (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a~1:a1"}, a.values()); diff != "" {
		t.Errorf("send-only side applied the peer's updates (-want +got):\n%s", diff)
	}
	if got := a.Clock().Get("b~1"); got != 0 {
		t.Errorf("send-only side's clock took the peer's entry b:%v", got)
	}

	a.write(t, "a2")
	b.write(t, "b2")
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1", "a~1:a2", "b~1:b1", "b~1:b2"}, b.values()); diff != "" {
		t.Errorf("peer after live writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a~1:a1", "a~1:a2"}, a.values()); diff != "" {
		t.Errorf("send-only side after live writes (-want +got):\n%s", diff)
	}
}

func TestLinkReceiveOnly(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	a.write(t, "a1")
	b.write(t, "b1")
	n := newNet(t, a, b)
	la, _ := n.ConnectLinks(0, 1, &scuttlebutt.LinkOptions{Mode: scuttlebutt.ReceiveOnly}, nil)
	n.Settle()
	if !la.Synced() {
		t.Fatal("receive-only side not synced after the peer's sync")
	}
	if diff := cmp.Diff([]string{"hello", "sync"}, kinds(n.Sent(0, 1))); diff != "" {
		t.Errorf("receive-only side sent (-want +got):\n%s", diff)
	}
	if got := n.Sent(0, 1)[1].Clock; len(got) != 0 {
		t.Errorf("receive-only sync clock = %v, want empty", got)
	}
	if diff := cmp.Diff([]string{"a~1:a1", "b~1:b1"}, a.values()); diff != "" {
		t.Errorf("receive-only side (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b~1:b1"}, b.values()); diff != "" {
		t.Errorf("peer of a receive-only link (-want +got):\n%s", diff)
	}

	a.write(t, "a2")
	b.write(t, "b2")
	n.Settle()
	if diff := cmp.Diff([]string{"a~1:a1", "a~1:a2", "b~1:b1", "b~1:b2"}, a.values()); diff != "" {
		t.Errorf("receive-only side after live writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b~1:b1", "b~1:b2"}, b.values()); diff != "" {
		t.Errorf("peer after live writes (-want +got):\n%s", diff)
	}
}

func TestLinkPeerClock(t *testing.T) {
	a := newLogDoc(t, "a", nil)
	u1 := a.write(t, "a1")
	a.write(t, "a2")
	a.write(t, "a3")

	t.Run("empty clock writes everything", func(t *testing.T) {
		// Writing to a file: nobody answers.
		l := a.NewLink(&scuttlebutt.LinkOptions{PeerClock: vclock.Clock{}, OneShot: true, Mode: scuttlebutt.SendOnly})
		defer l.Close()
		if l.Done() {
			t.Error("Done before Ready")
		}
		ms := l.Ready()
		var kinds []string
		nu := 0
		for _, m := range ms {
			kinds = append(kinds, m.Kind.String())
			nu += len(m.Updates)
		}
		if diff := cmp.Diff([]string{"hello", "updates", "sync"}, kinds); diff != "" {
			t.Fatalf("Ready with PeerClock and no hello (-want +got):\n%s", diff)
		}
		if nu != 3 {
			t.Errorf("sent %d updates, want 3", nu)
		}
		if !l.Done() {
			t.Error("one-shot send-only link with PeerClock not Done after Ready")
		}
		// A fresh replica reading the "file" gets everything.
		b := newLogDoc(t, "b", nil)
		lb := b.NewLink(nil)
		defer lb.Close()
		for _, m := range ms {
			if err := lb.Step(m); err != nil {
				t.Fatalf("Step(%v): %v", m, err)
			}
		}
		if diff := cmp.Diff([]string{"a~1:a1", "a~1:a2", "a~1:a3"}, b.values()); diff != "" {
			t.Errorf("reader (-want +got):\n%s", diff)
		}
	})
	t.Run("duplex one-shot waits for the peer's sync", func(t *testing.T) {
		l := a.NewLink(&scuttlebutt.LinkOptions{PeerClock: vclock.Clock{}, OneShot: true})
		defer l.Close()
		l.Ready()
		if l.Done() {
			t.Error("Done before the peer's sync")
		}
		if err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}); err != nil {
			t.Fatal(err)
		}
		if !l.Done() {
			t.Error("not Done after the peer's sync")
		}
	})
	t.Run("partial clock writes the rest", func(t *testing.T) {
		l := a.NewLink(&scuttlebutt.LinkOptions{PeerClock: vclock.Clock{"a~1": u1.Timestamp}})
		defer l.Close()
		nu := 0
		for _, m := range l.Ready() {
			nu += len(m.Updates)
		}
		if nu != 2 {
			t.Errorf("sent %d updates past %v, want 2", nu, u1.Timestamp)
		}
	})
	t.Run("receives without a hello", func(t *testing.T) {
		c := newLogDoc(t, "c", nil)
		l := c.NewLink(&scuttlebutt.LinkOptions{PeerClock: vclock.Clock{}})
		defer l.Close()
		l.Ready()
		err := l.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{u1}})
		if err != nil {
			t.Fatalf("Step(updates) with PeerClock and no hello: %v", err)
		}
		if diff := cmp.Diff([]string{"a~1:a1"}, c.values()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestLinkOwnUpdatesIgnored(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	n := newNet(t, a, b)
	la, _ := n.ConnectLinks(0, 1, nil, nil)
	n.Settle()
	u := a.write(t, "a1")
	n.Settle()
	before := a.log()
	clock := a.Clock()

	// b (or anyone) sends a's own update back.
	if err := la.Step(scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{u}}); err != nil {
		t.Fatalf("Step of a's own update: %v", err)
	}
	if applied, err := a.Apply(u); err != nil || applied != 0 {
		t.Errorf("Apply of a's own update = %d, %v; want 0, nil", applied, err)
	}
	if diff := cmp.Diff(before, a.log()); diff != "" {
		t.Errorf("a's own update was applied again (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(clock, a.Clock()); diff != "" {
		t.Errorf("clock moved (-before +after):\n%s", diff)
	}
	if ms := la.Ready(); ms != nil {
		t.Errorf("a's link sends %v after its own update came back", ms)
	}
}

func TestLinkStepErrors(t *testing.T) {
	const (
		errProtocol = "protocol"
		errUpdate   = "update"
		errSameID   = "sameid"
		errClosed   = "closed"
	)
	wantErr := map[string]error{
		errProtocol: scuttlebutt.ErrProtocol,
		errUpdate:   scuttlebutt.ErrInvalidUpdate,
		errSameID:   scuttlebutt.ErrSameID,
		errClosed:   scuttlebutt.ErrClosed,
	}
	hello := func(id string, c vclock.Clock) scuttlebutt.Message {
		return scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			Version: scuttlebutt.ProtocolVersion, ID: id, Clock: c,
		}}
	}
	okHello := hello("b", vclock.Clock{})
	sync := scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}
	good := scuttlebutt.Update{Source: "b", Timestamp: today + 1, Data: txt("b1")}
	upd := func(src string, ts vclock.Timestamp, data []byte) scuttlebutt.Update {
		return scuttlebutt.Update{Source: src, Timestamp: ts, Data: data}
	}
	updates := func(us ...scuttlebutt.Update) scuttlebutt.Message {
		return scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: us}
	}
	nan, inf := vclock.Timestamp(math.NaN()), vclock.Timestamp(math.Inf(1))
	const maxSize = 64

	tests := []struct {
		name string
		pre  []scuttlebutt.Message // stepped first, must succeed
		bad  scuttlebutt.Message
		want string
	}{
		{"nil hello", nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello}, errProtocol},
		{"wrong version", nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			Version: scuttlebutt.ProtocolVersion + 1, ID: "b", Clock: vclock.Clock{}}}, errProtocol},
		{"version zero", nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			ID: "b", Clock: vclock.Clock{}}}, errProtocol},
		{"same source", nil, hello("a~1", vclock.Clock{}), errSameID},
		{"empty peer id", nil, hello("", vclock.Clock{}), errProtocol},
		{"control char in peer id", nil, hello("b\n", vclock.Clock{}), errProtocol},
		{"no clock", nil, hello("b", nil), errProtocol},
		{"clock entry NaN", nil, hello("b", vclock.Clock{"b~1": nan}), errProtocol},
		{"clock entry +Inf", nil, hello("b", vclock.Clock{"b~1": inf}), errProtocol},
		{"clock entry negative", nil, hello("b", vclock.Clock{"b~1": -1}), errProtocol},
		{"clock entry empty source", nil, hello("b", vclock.Clock{"": 5}), errProtocol},
		{"second hello", []scuttlebutt.Message{okHello}, okHello, errProtocol},
		{"updates before hello", nil, updates(good), errProtocol},
		{"sync before hello", nil, sync, errProtocol},
		{"clock before hello", nil, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{}}, errProtocol},
		{"clock before sync", []scuttlebutt.Message{okHello}, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"b~1": today}}, errProtocol},
		{"second sync", []scuttlebutt.Message{okHello, sync}, sync, errProtocol},
		{"sync with invalid clock", []scuttlebutt.Message{okHello}, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"b~1": nan}}, errProtocol},
		{"clock message with invalid clock", []scuttlebutt.Message{okHello, sync}, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"b~1": -5}}, errProtocol},
		{"unknown kind", []scuttlebutt.Message{okHello}, scuttlebutt.Message{Kind: 99}, errProtocol},
		{"zero kind", nil, scuttlebutt.Message{}, errProtocol},
		{"timestamp NaN", []scuttlebutt.Message{okHello}, updates(upd("b", nan, txt("x"))), errUpdate},
		{"timestamp negative", []scuttlebutt.Message{okHello}, updates(upd("b", -today, txt("x"))), errUpdate},
		{"timestamp zero", []scuttlebutt.Message{okHello}, updates(upd("b", 0, txt("x"))), errUpdate},
		{"timestamp +Inf", []scuttlebutt.Message{okHello}, updates(upd("b", inf, txt("x"))), errUpdate},
		{"empty source", []scuttlebutt.Message{okHello}, updates(upd("", today, txt("x"))), errUpdate},
		{"source not UTF-8", []scuttlebutt.Message{okHello}, updates(upd("\xff", today, txt("x"))), errUpdate},
		{"source too long", []scuttlebutt.Message{okHello}, updates(upd(strings.Repeat("s", scuttlebutt.MaxIDLen+1), today, txt("x"))), errUpdate},
		{"data not CBOR", []scuttlebutt.Message{okHello}, updates(upd("b", today, []byte{0xff})), errUpdate},
		{"data truncated", []scuttlebutt.Message{okHello}, updates(upd("b", today, txt("hello")[:3])), errUpdate},
		{"data two items", []scuttlebutt.Message{okHello}, updates(upd("b", today, append(txt("x"), txt("y")...))), errUpdate},
		{"data empty", []scuttlebutt.Message{okHello}, updates(upd("b", today, nil)), errUpdate},
		{"data tagged", []scuttlebutt.Message{okHello}, updates(upd("b", today, []byte{0xc1, 0x01})), errUpdate},
		{"data too large", []scuttlebutt.Message{okHello}, updates(upd("b", today, txt(strings.Repeat("x", maxSize)))), errUpdate},
		{"signature makes it too large", []scuttlebutt.Message{okHello}, updates(scuttlebutt.Update{
			Source: "b", Timestamp: today, Data: txt("x"), Signature: make([]byte, maxSize)}), errUpdate},
		{"validator refuses", []scuttlebutt.Message{okHello}, updates(upd("b", today, txt(forbidden))), errUpdate},
		{"one bad in a batch applies none", []scuttlebutt.Message{okHello},
			updates(good, upd("c", today, txt("c1")), upd("b", nan, txt("x"))), errUpdate},
		{"bad first in a batch", []scuttlebutt.Message{okHello},
			updates(upd("b", 0, txt("x")), good), errUpdate},
		{"bad after sync", []scuttlebutt.Message{okHello, sync}, updates(good, upd("b", today+2, []byte{0xff})), errUpdate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newLogDoc(t, "a", &scuttlebutt.Config{MaxUpdateSize: maxSize})
			a.write(t, "a1")
			l := a.NewLink(nil)
			defer l.Close()
			l.Ready()
			for _, m := range tt.pre {
				if err := l.Step(m); err != nil {
					t.Fatalf("Step(%v) before the bad message: %v", m, err)
				}
				l.Ready()
			}
			clock, state := a.Clock(), a.log()

			err := l.Step(tt.bad)
			if !errors.Is(err, wantErr[tt.want]) {
				t.Fatalf("Step(%v) = %v, want an error wrapping %v", tt.bad, err, wantErr[tt.want])
			}
			if diff := cmp.Diff(clock, a.Clock()); diff != "" {
				t.Errorf("Step(%v) changed the clock (-before +after):\n%s", tt.bad, diff)
			}
			if diff := cmp.Diff(state, a.log()); diff != "" {
				t.Errorf("Step(%v) changed the state (-before +after):\n%s", tt.bad, diff)
			}
			// The same checks through Apply, for update batches.
			if tt.bad.Kind == scuttlebutt.MsgUpdates && tt.want == errUpdate {
				n, err := a.Apply(tt.bad.Updates...)
				if !errors.Is(err, scuttlebutt.ErrInvalidUpdate) || n != 0 {
					t.Errorf("Apply(%v) = %d, %v; want 0 and ErrInvalidUpdate", tt.bad.Updates, n, err)
				}
				if diff := cmp.Diff(state, a.log()); diff != "" {
					t.Errorf("Apply changed the state (-before +after):\n%s", diff)
				}
			}
		})
	}

	t.Run("closed", func(t *testing.T) {
		a := newLogDoc(t, "a", nil)
		l := a.NewLink(nil)
		l.Close()
		l.Close() // idempotent
		if err := l.Step(okHello); !errors.Is(err, scuttlebutt.ErrClosed) {
			t.Errorf("Step after Close = %v, want ErrClosed", err)
		}
		if ms := l.Ready(); ms != nil {
			t.Errorf("Ready after Close = %v, want nil", ms)
		}
		a.write(t, "a1")
		if ms := l.Ready(); ms != nil {
			t.Errorf("Ready after Close and a write = %v, want nil", ms)
		}
	})
}

func TestLinkClockAdvancesRelay(t *testing.T) {
	// b learns a's clock from a sync without updates (a ReceiveOnly peer
	// of something else would do the same); its other peers hear of it.
	a, b, c := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil), newLogDoc(t, "c", nil)
	a.write(t, "a1")
	if _, err := b.Apply(a.log()...); err != nil {
		t.Fatal(err)
	}
	n := newNet(t, a, b, c)
	n.ConnectLinks(1, 2, nil, nil)
	n.Settle()
	n.ConnectLinks(0, 1, nil, nil)
	a.write(t, "a2")
	n.Settle()
	want := []string{"a~1:a1", "a~1:a2"}
	for _, d := range []*logDoc{a, b, c} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.ID(), diff)
		}
	}
	if diff := cmp.Diff(a.Clock(), c.Clock()); diff != "" {
		t.Errorf("clocks of a and c differ (-a +c):\n%s", diff)
	}
}

func TestStringers(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{scuttlebutt.MsgHello.String(), "hello"},
		{scuttlebutt.MsgUpdates.String(), "updates"},
		{scuttlebutt.MsgSync.String(), "sync"},
		{scuttlebutt.MsgClock.String(), "clock"},
		{scuttlebutt.MessageKind(9).String(), "MessageKind(9)"},
		{scuttlebutt.Duplex.String(), "duplex"},
		{scuttlebutt.SendOnly.String(), "send-only"},
		{scuttlebutt.ReceiveOnly.String(), "receive-only"},
		{scuttlebutt.Mode(7).String(), "Mode(7)"},
		{scuttlebutt.Message{Kind: scuttlebutt.MsgHello}.String(), "hello(nil)"},
		{scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"a~1": 1}}.String(), "sync({a~1:1})"},
		{scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: make([]scuttlebutt.Update, 3)}.String(), "updates(3)"},
		{scuttlebutt.Update{Source: "a", Timestamp: 1795385884149.001, Data: []byte{1, 2}}.String(), "a@1795385884149.001(2B)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

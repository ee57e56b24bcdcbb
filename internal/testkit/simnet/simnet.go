// Package simnet is the test network of the project: in-process replicas
// (any scuttlebutt.Document) joined by links that a seeded schedule
// connects, cuts, partitions and heals, while the test writes to the
// replicas, crashes and restarts them with Replace, and finally waits with
// Quiesce until every connected group of replicas has the same clock.
// Type-specific checks (snapshots, a reference) stay in the test:
//
//	n := simnet.New(seed, &simnet.Options{Logf: t.Logf})
//	defer n.Close()
//	a, b := n.Add(m0), n.Add(m1)
//	n.Connect(a, b)
//	m0.Set("k", 1)
//	n.Run(10) // let a few messages through
//	if err := n.Quiesce(ctx); err != nil {
//		t.Fatal(err)
//	}
//	if err := n.Err(); err != nil {
//		t.Fatal(err) // a link failed for a reason other than a fault
//	}
//
// # Hand-stepped links
//
// By default a link is a pair of scuttlebutt.Links stepped by hand, with
// no goroutine and no I/O: per direction a FIFO of the messages one
// side's Ready produced. Nothing moves on its own. Step delivers a few
// messages of one direction that the network's seed picks, Run makes a
// number of Steps the test draws (what the streams would have done between
// two of its writes), and Quiesce steps until nothing is left. Every
// delivery is checked for the prefix property (per source, updates only
// go forward, never at or below a clock the direction sent). A fault's
// CutAfter counts approximate wire bytes, and the message that crosses it
// is lost with the link, as a stream cut mid-frame; MaxChunk and MaxDelay
// mean nothing without bytes. Everything the network does then follows
// from the seed and the test's own calls, so a failing seed fails again
// in one run: replay it with Options.LogMessages to trace every message.
//
// A test of the protocol itself takes the schedule in hand: ConnectLinks
// makes a link with explicit scuttlebutt.LinkOptions and returns its two
// sessions, Pump and Deliver move one direction's messages, Settle
// delivers until nothing is left, and Sent shows what went each way:
//
//	n := simnet.New(1, &simnet.Options{Logf: t.Logf, LogMessages: true,
//		OnError: func(err error) { t.Error(err) }})
//	a, b := n.Add(da), n.Add(db)
//	la, lb := n.ConnectLinks(a, b, nil, &scuttlebutt.LinkOptions{Mode: scuttlebutt.ReceiveOnly})
//	n.Pump(a, b)      // a's first messages are in flight...
//	for n.Deliver(b, a) { // ...while b's reach a
//	}
//	n.Settle()
//	got := n.Sent(a, b) // every message a sent b, in order
//
// Until steps the network until a condition holds, where a test would
// otherwise poll.
//
// # Streams
//
// With Options.Pipes, every link is two stream.Conn over a net.Pipe,
// optionally behind a fault-injecting wrapper that splits writes into
// small chunks, delays them, or cuts the connection after a number of
// bytes: for tests where what the streams do with bytes is the point.
// Their goroutines belong to the link and end when it does; Close ends
// them all and waits. The interleaving of the streams is then the Go
// scheduler's, and so is which cut links have ended by the time Heal
// looks: a replay of a seed follows the same schedule of test steps, but
// a rare failure may need several runs to show again.
//
// # Refusals and incarnations
//
// A test that makes a replica break a bound on purpose (a wall clock far
// ahead, so that its peers refuse its sessions with
// scuttlebutt.ErrClockOffset) names the errors it provokes with
// Options.Refused: a link that ends with one is not reported, and Refusals
// counts them. Any other such error still is.
//
// Each start of a replica stamps its updates with a source id of its own,
// its id and a random incarnation, and equal timestamps are ordered by
// source id: a test that replays seeds gives its replicas incarnations
// drawn from the seed instead, with Incarnation or Network.Incarnation,
// so that ties are broken the same way in every run, restarts included:
//
//	m, err := model.New("r1", &scuttlebutt.Config{Incarnation: n.Incarnation("r1")})
//
// A replica that Crash takes down stays unlinked, whatever the schedule
// connects, until Replace restarts it.
//
// A Network is not safe for concurrent use: one goroutine (the test's)
// calls its methods (or one at a time, handing the network over with a
// channel). With Pipes, the links run concurrently with it.
package simnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// Errors returned by this package.
var (
	// ErrCut is the write error of a connection that a Fault cut.
	ErrCut = errors.New("simnet: connection cut")
	// ErrPartitioned means Connect was asked to join replicas on different
	// sides of a partition.
	ErrPartitioned = errors.New("simnet: replicas are partitioned")
	// ErrUnexpected wraps every error a link ended with that no fault or
	// Disconnect explains: a protocol error, an invalid update, a link that
	// ended by itself.
	ErrUnexpected = errors.New("simnet: unexpected stream error")
	// ErrNotQuiet means Quiesce gave up: the replicas did not converge;
	// or Until did: its condition never held.
	ErrNotQuiet = errors.New("simnet: not quiescent")
	// ErrCrashed means Connect was asked to link a replica that Crash took
	// down and no Replace has restarted.
	ErrCrashed = errors.New("simnet: replica crashed")
)

// Fault describes how one connection misbehaves. The zero value is a
// perfect pipe.
type Fault struct {
	// CutAfter closes the connection once this many bytes have been written
	// on it, both directions together: the write that crosses the limit is
	// cut short and both ends are closed. 0 means never.
	CutAfter int64
	// MaxChunk splits each write into pieces of 1 to MaxChunk bytes, chosen
	// at random, so that frames arrive in parts. 0 writes whole.
	MaxChunk int
	// MaxDelay sleeps a random time up to MaxDelay before each piece. 0
	// means no delay; keep it in microseconds, it adds up.
	MaxDelay time.Duration
}

// String describes f for traces: "cut@120B,chunk<=7B", or "clean".
func (f Fault) String() string {
	var parts []string
	if f.CutAfter > 0 {
		parts = append(parts, fmt.Sprintf("cut@%dB", f.CutAfter))
	}
	if f.MaxChunk > 0 {
		parts = append(parts, fmt.Sprintf("chunk<=%dB", f.MaxChunk))
	}
	if f.MaxDelay > 0 {
		parts = append(parts, fmt.Sprintf("delay<=%v", f.MaxDelay))
	}
	if parts == nil {
		return "clean"
	}
	return strings.Join(parts, ",")
}

// Options configures a Network. A nil *Options means the zero value.
type Options struct {
	// Logf, if not nil, receives a trace of every topology change and of
	// how every link ended; pass t.Logf to replay a failing seed.
	Logf func(format string, args ...any)
	// Fault draws the fault of each connection Connect and Heal make, from
	// the network's seeded source. nil means perfect pipes.
	Fault func(r *rand.Rand) Fault
	// Stream draws the stream options of each side of each connection. nil
	// means the defaults.
	Stream func(r *rand.Rand) *stream.Options
	// Expected reports whether an error a link ended with is explained by a
	// fault or a Disconnect. nil means Expected, the default.
	Expected func(err error) bool
	// Refused reports whether an error a link ended with is a refusal the
	// test provokes on purpose: a replica ending a session because the
	// peer broke one of its bounds (see "Trust and bounds" in package
	// scuttlebutt). Such a link ended for that reason, not by itself: it
	// is not reported, and Refusals counts it. Refused is asked first, of
	// every non-nil error, from the links' goroutines, so it must be safe
	// for concurrent use; an error it does not claim goes to Expected. nil
	// means no error is a refusal.
	Refused func(err error) bool
	// Pipes runs every link as two stream.Conn over a net.Pipe, each
	// driven by goroutines of its own, with the connection's Fault applied
	// to the bytes: for tests where stream faults (frames arriving in
	// parts, cut mid-frame, delays) are the point. The Go scheduler then
	// interleaves the links, so a replayed seed may need several runs to
	// fail again. Without Pipes (the default) links are hand-stepped: see
	// "Hand-stepped links" in the package doc.
	Pipes bool
	// OnError, if not nil, is called with each unexpected error (see
	// ErrUnexpected) as the network records it for Err: a Step that
	// failed, a broken prefix property, a link that ended by itself. It is
	// called on the goroutine that met the error: the one delivering, with
	// hand-stepped links (the test's, as a rule), or a link's own, with
	// Pipes, so then it must be safe for concurrent use. t.Error is;
	// t.Fatal only with hand-stepped links delivered on the test's
	// goroutine. nil means the errors wait for Err.
	OnError func(err error)
	// LogMessages, with hand-stepped links, traces every message delivered
	// through Logf: a replayed seed's full schedule.
	LogMessages bool
	// MaxSteps bounds how many Steps Quiesce, Settle and Until make, with
	// hand-stepped links, before they give up: a Step delivers one to
	// three messages. 0 means 1,000,000.
	MaxSteps int
	// QuiesceTimeout bounds Quiesce and Until when their context has no
	// deadline. 0 means 10 s.
	QuiesceTimeout time.Duration
	// StopTimeout bounds how long Disconnect and Close wait for a link's
	// goroutines after cancelling it, before they close its pipes by force
	// and report the link as stuck. 0 means 10 s.
	StopTimeout time.Duration
}

// Expected is the default Options.Expected: nil, a cancelled context, and
// the errors of a pipe closed under a stream (io.EOF, io.ErrClosedPipe,
// stream.ErrTruncated, ErrCut). Anything else, a protocol error above all,
// is unexpected.
func Expected(err error) bool {
	return err == nil ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, stream.ErrTruncated) ||
		errors.Is(err, ErrCut)
}

// Network is a set of replicas and the live links between them.
type Network struct {
	opts   Options
	rng    *rand.Rand
	sched  *rand.Rand // which hand-stepped message goes next
	docs   []scuttlebutt.Document
	links  map[pair]netLink
	group  []int // partition side of each replica; nil when not partitioned
	noCut  bool  // StopCuts was called
	gen    uint64
	seed   uint64
	starts map[string]int // Incarnation calls per replica id
	down   map[int]bool   // replicas Crash took down

	// With hand-stepped links: every message stepped, by direction
	// (from, to), since New or ResetSent; and how many, ever.
	sent      map[[2]int][]scuttlebutt.Message
	delivered int

	refusals atomic.Int64 // link sides that ended with a Refused error

	mu   sync.Mutex // guards errs
	errs []error
}

// pair names a link by its two replica indexes, i < j.
type pair struct{ i, j int }

func mkpair(i, j int) pair {
	if i > j {
		i, j = j, i
	}
	return pair{i, j}
}

// New returns an empty network whose random choices (faults, stream
// options, the graphs Partition and Heal make) all come from seed.
func New(seed uint64, opts *Options) *Network {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Expected == nil {
		o.Expected = Expected
	}
	if o.QuiesceTimeout <= 0 {
		o.QuiesceTimeout = 10 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = 1_000_000
	}
	return &Network{
		opts:  o,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		links: make(map[pair]netLink),
		sched: rand.New(rand.NewPCG(seed, 0x5c4ed)),
		seed:  seed,
		down:  make(map[int]bool),
		sent:  make(map[[2]int][]scuttlebutt.Message),
	}
}

// incarnationDigits spell incarnations as scuttlebutt's random ones are.
const incarnationDigits = "0123456789abcdefghijklmnopqrstuv"

// Incarnation returns a scuttlebutt.Config.Incarnation for start number
// start (0 for the first) of replica id in a run seeded with seed: 8
// characters of [0-9a-v], a hash of the three. A replayed seed gives each
// start the source id it had, so that ties between equal timestamps, which
// are broken by source id, go the same way; each start still gets a source
// of its own, as a restarted replica must (it refuses its own log's
// updates if it reuses the source that made them).
func Incarnation(seed uint64, id string, start int) string {
	h := fnv.New64a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(start))
	h.Write(b[:])
	h.Write([]byte(id))
	x := h.Sum64()
	out := make([]byte, 8)
	for i := range out {
		out[i] = incarnationDigits[x&31]
		x >>= 5
	}
	return string(out)
}

// Incarnation returns Incarnation(seed, id, k) with the network's seed,
// where k counts the earlier calls for id: call it once for each start of
// replica id, restarts included. It does not draw from Rand, so calling it
// changes none of the network's other random choices.
func (n *Network) Incarnation(id string) string {
	if n.starts == nil {
		n.starts = map[string]int{}
	}
	k := n.starts[id]
	n.starts[id]++
	return Incarnation(n.seed, id, k)
}

// Rand returns the network's seeded source, for tests that want their own
// choices to follow from the same seed. It is not safe for concurrent use.
func (n *Network) Rand() *rand.Rand { return n.rng }

// Add adds a replica, unconnected, and returns its index. While the network
// is partitioned, a new replica is on a side of its own.
func (n *Network) Add(d scuttlebutt.Document) int {
	n.docs = append(n.docs, d)
	i := len(n.docs) - 1
	if n.group != nil {
		n.group = append(n.group, slices.Max(n.group)+1)
	}
	return i
}

// Len returns the number of replicas.
func (n *Network) Len() int { return len(n.docs) }

// Doc returns replica i.
func (n *Network) Doc(i int) scuttlebutt.Document { return n.docs[i] }

func (n *Network) logf(format string, args ...any) {
	if n.opts.Logf != nil {
		n.opts.Logf(format, args...)
	}
}

// name names replica i in traces and errors: its id, with its index if
// another replica has the same id (twins, in a test that makes them).
func (n *Network) name(i int) string {
	id := n.docs[i].Base().ID()
	for j, d := range n.docs {
		if j != i && d.Base().ID() == id {
			return fmt.Sprintf("%s[%d]", id, i)
		}
	}
	return id
}

// report records an unexpected error.
func (n *Network) report(err error) {
	n.mu.Lock()
	n.errs = append(n.errs, err)
	n.mu.Unlock()
	n.logf("simnet: %v", err)
	if n.opts.OnError != nil {
		n.opts.OnError(err)
	}
}

// Err returns every unexpected error seen so far, joined, or nil. Each wraps
// ErrUnexpected.
func (n *Network) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}

// Refusals returns how many times a side of a link has ended with an error
// Options.Refused claimed, so far.
func (n *Network) Refusals() int { return int(n.refusals.Load()) }

// Connected reports whether a live link joins i and j.
func (n *Network) Connected(i, j int) bool {
	l := n.links[mkpair(i, j)]
	return l != nil && !l.dead()
}

// Connect links replicas i and j with a fault drawn from Options.Fault,
// replacing a link between them that has ended (a cut one). It does nothing
// if a live link exists, and returns ErrPartitioned if the two are on
// different sides of a partition, ErrCrashed if one is down.
func (n *Network) Connect(i, j int) error {
	var f Fault
	if n.opts.Fault != nil {
		f = n.opts.Fault(n.rng)
	}
	return n.ConnectFault(i, j, f)
}

// ConnectFault is Connect with the given fault. After StopCuts, its
// CutAfter is ignored.
func (n *Network) ConnectFault(i, j int, f Fault) error {
	if err := n.linkable(i, j); err != nil {
		return err
	}
	p := mkpair(i, j)
	if l := n.links[p]; l != nil {
		if !l.dead() {
			return nil
		}
		n.reap(p, l)
	}
	if n.noCut {
		f.CutAfter = 0
	}
	var so [2]*stream.Options
	if n.opts.Stream != nil {
		so[0], so[1] = n.opts.Stream(n.rng), n.opts.Stream(n.rng)
	}
	name := n.linkName(p)
	if n.opts.Pipes {
		n.links[p] = n.connectPipes(p, name, f, so)
	} else {
		var lo [2]*scuttlebutt.LinkOptions
		for k, o := range so {
			if o != nil {
				lo[k] = &scuttlebutt.LinkOptions{Mode: o.Mode, MaxQueueBytes: o.MaxQueueBytes, MaxBatchBytes: o.MaxBatchBytes}
			}
		}
		n.links[p] = n.connectHand(p, name, f, lo)
	}
	n.logf("simnet: connect %s %v", name, f)
	return nil
}

// linkable returns why replicas i and j cannot be linked, or nil.
func (n *Network) linkable(i, j int) error {
	switch {
	case i == j || i < 0 || j < 0 || i >= len(n.docs) || j >= len(n.docs):
		return fmt.Errorf("simnet: no link %d-%d among %d replicas", i, j, len(n.docs))
	case n.down[i] || n.down[j]:
		return fmt.Errorf("%w: cannot link %s and %s", ErrCrashed, n.name(i), n.name(j))
	case n.group != nil && n.group[i] != n.group[j]:
		return fmt.Errorf("%w: %s and %s", ErrPartitioned, n.name(i), n.name(j))
	}
	return nil
}

// linkName names a new link between p's replicas in traces: "r0-r1#3".
func (n *Network) linkName(p pair) string {
	n.gen++
	return fmt.Sprintf("%s-%s#%d", n.name(p.i), n.name(p.j), n.gen)
}

// Disconnect ends the link between i and j, if any, and waits until both
// of its streams have stopped. It returns the link's unexpected errors, which
// Err reports too.
func (n *Network) Disconnect(i, j int) error {
	p := mkpair(i, j)
	l := n.links[p]
	if l == nil {
		return nil
	}
	l.stop()
	err := n.reap(p, l)
	n.logf("simnet: disconnect %s", l.label())
	return err
}

// Replace ends every link of replica i, waits until their streams have
// stopped (as Disconnect does, so that whatever they delivered has been
// applied), and then puts d in place of replica i: a replica that crashed
// and restarted, from its log or with nothing. After Replace, nothing of
// the replica it replaced can reach any other replica. i keeps its index
// and its side of a partition, and stays unconnected until Connect, Heal,
// FullMesh or Partition links it again. Replace returns the ended links'
// unexpected errors, which Err reports too. A replica that Crash took down
// is up again once replaced.
func (n *Network) Replace(i int, d scuttlebutt.Document) error {
	err := n.Isolate(i)
	n.logf("simnet: replace %s with %s", n.docs[i].Base().Source(), d.Base().Source())
	n.docs[i] = d
	delete(n.down, i)
	return err
}

// Crash takes replica i down: it ends every link of i and waits for them,
// as Isolate does, and then Connect, ConnectFault and ConnectLinks refuse
// to link i (ErrCrashed) and Heal, FullMesh and Partition leave it out,
// until Replace restarts it. It returns the ended links' unexpected
// errors, which Err reports too.
func (n *Network) Crash(i int) error {
	err := n.Isolate(i)
	n.down[i] = true
	n.logf("simnet: crash %s", n.name(i))
	return err
}

// Isolate ends every link of replica i and waits until their streams have
// stopped, as Disconnect does. It does not partition: Connect and Heal can
// link i again. It returns the links' unexpected errors, which Err reports
// too.
func (n *Network) Isolate(i int) error {
	var ends []pair
	for _, p := range n.sortedPairs() {
		if p.i == i || p.j == i {
			n.links[p].stop()
			ends = append(ends, p)
		}
	}
	var errs []error
	for _, p := range ends {
		l := n.links[p]
		errs = append(errs, n.reap(p, l))
		n.logf("simnet: disconnect %s", l.label())
	}
	return errors.Join(errs...)
}

// reap waits for l to end and forgets it.
func (n *Network) reap(p pair, l netLink) error {
	delete(n.links, p)
	return l.wait(n.opts.StopTimeout)
}

// Partition splits the replicas into the given groups: every link between
// replicas of different groups ends, and Connect refuses to join them until
// Heal. Replicas in no group are each isolated on a side of their own. Each
// group is then made connected with random links (faults drawn as Connect
// does), so that writes spread within it.
func (n *Network) Partition(groups ...[]int) {
	n.group = make([]int, len(n.docs))
	for i := range n.group {
		n.group[i] = -1
	}
	for g, members := range groups {
		for _, i := range members {
			n.group[i] = g
		}
	}
	next := len(groups)
	for i, g := range n.group {
		if g < 0 {
			n.group[i] = next
			next++
		}
	}
	n.logf("simnet: partition %v", n.describeGroups())
	for _, p := range n.sortedPairs() {
		if n.group[p.i] != n.group[p.j] {
			n.Disconnect(p.i, p.j)
		}
	}
	for _, members := range groups {
		n.connectRandom(members)
	}
}

func (n *Network) describeGroups() string {
	sides := map[int][]string{}
	var order []int
	for i, g := range n.group {
		if _, ok := sides[g]; !ok {
			order = append(order, g)
		}
		sides[g] = append(sides[g], n.name(i))
	}
	var parts []string
	for _, g := range order {
		parts = append(parts, "{"+strings.Join(sides[g], " ")+"}")
	}
	return strings.Join(parts, " | ")
}

// Heal ends any partition, forgets links that have ended, and adds random
// links until every replica can reach every other (every replica up: see
// Crash): the graph it leaves is connected, not necessarily complete.
func (n *Network) Heal() {
	n.group = nil
	n.logf("simnet: heal")
	n.connectRandom(nil)
}

// FullMesh ends any partition and links every pair of replicas.
func (n *Network) FullMesh() {
	n.group = nil
	n.logf("simnet: full mesh")
	for i := range n.docs {
		for j := i + 1; j < len(n.docs); j++ {
			n.Connect(i, j)
		}
	}
}

// StopCuts disarms the pending cut of every live link and makes later
// connections ignore Fault.CutAfter, so that the topology stays as it is
// while a test waits for convergence. A cut already under way completes;
// such a link already counts as gone, so a Heal after StopCuts replaces it.
// Chunking and delays stay.
func (n *Network) StopCuts() {
	n.noCut = true
	for _, l := range n.links {
		l.disarm()
	}
	n.logf("simnet: stop cuts")
}

// connectRandom makes the replicas in members (all, if nil) that are up
// one connected component of live links: it joins components along random
// pairs, and adds one in eight of the other missing links, so that there
// are cycles.
func (n *Network) connectRandom(members []int) {
	if members == nil {
		members = make([]int, len(n.docs))
		for i := range members {
			members[i] = i
		}
	}
	members = slices.DeleteFunc(slices.Clone(members), func(i int) bool { return n.down[i] })
	for _, p := range n.sortedPairs() {
		if n.links[p].dead() {
			n.reap(p, n.links[p])
		}
	}
	uf := n.components()
	var cand []pair
	for x, i := range members {
		for _, j := range members[x+1:] {
			if !n.Connected(i, j) {
				cand = append(cand, mkpair(i, j))
			}
		}
	}
	n.rng.Shuffle(len(cand), func(a, b int) { cand[a], cand[b] = cand[b], cand[a] })
	for _, p := range cand {
		if uf.find(p.i) != uf.find(p.j) {
			uf.union(p.i, p.j)
		} else if n.rng.IntN(8) != 0 {
			continue
		}
		n.Connect(p.i, p.j)
	}
}

// sortedPairs returns the pairs with a link, in a deterministic order.
func (n *Network) sortedPairs() []pair {
	ps := make([]pair, 0, len(n.links))
	for p := range n.links {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if a.i != b.i {
			return a.i - b.i
		}
		return a.j - b.j
	})
	return ps
}

// components returns the connected components of the live links.
func (n *Network) components() *unionFind {
	uf := newUnionFind(len(n.docs))
	for p, l := range n.links {
		if !l.dead() {
			uf.union(p.i, p.j)
		}
	}
	return uf
}

// Groups returns the connected groups of replicas: those joined by live
// links, directly or through others. Each group is sorted, and groups are in
// the order of their first member.
func (n *Network) Groups() [][]int {
	uf := n.components()
	index := map[int]int{}
	var groups [][]int
	for i := range n.docs {
		r := uf.find(i)
		g, ok := index[r]
		if !ok {
			g = len(groups)
			index[r] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// Quiesce waits until, within every connected group of replicas (see
// Groups), all clocks are equal, and every live link has synced (both sides
// have exchanged hellos and histories, so a link just made counts too) and
// has delivered and stepped every frame it wrote. With a connected topology
// and no writes in progress, that is convergence. A link cut while Quiesce
// waits splits its group; call StopCuts first if the topology must stay as
// it is. It polls until ctx ends or, if ctx has no deadline,
// Options.QuiesceTimeout passes; then it returns an error wrapping
// ErrNotQuiet that shows every replica's clock and every link's counters.
func (n *Network) Quiesce(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if !n.opts.Pipes {
		// Hand-stepped: deliver until nothing is left; what is not settled
		// then never will be.
		if _, err := n.settle(ctx, nil); err != nil {
			return err
		}
		if why := n.unquiet(); why != "" {
			return fmt.Errorf("%w: %s, and nothing is left to deliver\n%s", ErrNotQuiet, why, n.Dump())
		}
		return nil
	}
	return n.poll(ctx, n.unquiet)
}

// Until waits until cond holds, and then returns nil: for what a test
// would otherwise poll for, such as a listener having been called or a
// link having been cut. With hand-stepped links it asks cond before every
// Step and returns an error wrapping ErrNotQuiet once nothing is left to
// deliver and cond still does not hold, since then it never will unless
// the test acts. With Pipes it polls cond, as Quiesce polls, until ctx
// ends or, if ctx has no deadline, Options.QuiesceTimeout passes. cond is
// called on the caller's goroutine.
func (n *Network) Until(ctx context.Context, cond func() bool) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if !n.opts.Pipes {
		if _, err := n.settle(ctx, cond); err != nil {
			return err
		}
		if !cond() {
			return fmt.Errorf("%w: the condition does not hold, and nothing is left to deliver\n%s", ErrNotQuiet, n.Dump())
		}
		return nil
	}
	return n.poll(ctx, func() string {
		if cond() {
			return ""
		}
		return "the condition does not hold"
	})
}

// bound gives ctx Options.QuiesceTimeout if it has no deadline.
func (n *Network) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, n.opts.QuiesceTimeout)
}

// poll calls why, backing off from 50 µs to 2 ms between calls, until it
// returns "" or ctx ends; then it returns an error wrapping ErrNotQuiet
// with why's last answer and the Dump.
func (n *Network) poll(ctx context.Context, why func() string) error {
	wait := 50 * time.Microsecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		w := why()
		if w == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s (%v)\n%s", ErrNotQuiet, w, context.Cause(ctx), n.Dump())
		case <-timer.C:
		}
		wait = min(2*wait, 2*time.Millisecond)
		timer.Reset(wait)
	}
}

// unquiet returns why the network is not quiescent, or "".
func (n *Network) unquiet() string {
	for _, p := range n.sortedPairs() {
		if why := n.links[p].unquiet(); why != "" {
			return why
		}
	}
	uf := n.components()
	clocks := make([]vclock.Clock, len(n.docs))
	for i, d := range n.docs {
		clocks[i] = d.Base().Clock()
	}
	for i := range n.docs {
		r := uf.find(i)
		if clocks[i].Compare(clocks[r]) != vclock.Equal {
			return fmt.Sprintf("clocks of %s and %s differ", n.name(r), n.name(i))
		}
	}
	return ""
}

// Dump describes the network for a failure message: each replica's clock,
// and each link's state and counters.
func (n *Network) Dump() string {
	var b strings.Builder
	for i, d := range n.docs {
		down := ""
		if n.down[i] {
			down = " (down)"
		}
		fmt.Fprintf(&b, "  %s%s clock %v\n", n.name(i), down, d.Base().Clock())
	}
	for _, p := range n.sortedPairs() {
		l := n.links[p]
		state := "live"
		switch {
		case l.ended():
			state = "ended"
		case l.dead():
			state = "being cut"
		}
		fmt.Fprintf(&b, "  link %s\n", strings.Replace(l.describe(), " ", " "+state+" ", 1))
	}
	return b.String()
}

// Close ends every link and waits for their goroutines. It returns Err.
func (n *Network) Close() error {
	ps := n.sortedPairs()
	for _, p := range ps {
		n.links[p].stop()
	}
	for _, p := range ps {
		n.reap(p, n.links[p])
	}
	return n.Err()
}

// unionFind is a disjoint-set forest over replica indexes.
type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	uf := &unionFind{parent: make([]int, n)}
	for i := range uf.parent {
		uf.parent[i] = i
	}
	return uf
}

func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}

func (u *unionFind) union(i, j int) { u.parent[u.find(i)] = u.find(j) }

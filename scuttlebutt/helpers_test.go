package scuttlebutt_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// today is the fixed wall clock of the test replicas, in ms.
const today = 1795385884149

func fixedNow() time.Time { return time.UnixMilli(today) }

// txt encodes s as one CBOR text string, the payload of a logDoc update.
func txt(s string) []byte {
	b, err := cbor.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

// forbidden is the payload logDoc's Validator refuses.
const forbidden = "forbidden"

// logDoc is the test replica: an append-only log of every update applied,
// whose History is every update newer than the clock given. It records
// "apply" events in an optional shared recorder.
type logDoc struct {
	*scuttlebutt.Scuttlebutt

	mu      sync.Mutex
	applied []scuttlebutt.Update
	rec     *recorder // nil for none
}

var (
	_ scuttlebutt.Replica   = (*logDoc)(nil)
	_ scuttlebutt.Validator = (*logDoc)(nil)
)

func newLogDoc(t testing.TB, id string, cfg *scuttlebutt.Config) *logDoc {
	t.Helper()
	if cfg == nil {
		cfg = &scuttlebutt.Config{}
	}
	if cfg.Now == nil || cfg.Incarnation == "" {
		c := *cfg
		if c.Now == nil {
			c.Now = fixedNow
		}
		if c.Incarnation == "" {
			c.Incarnation = "1" // sources a~1, b~1...: ties and traces reproduce
		}
		cfg = &c
	}
	d := &logDoc{}
	sb, err := scuttlebutt.New(id, d, cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", id, err)
	}
	d.Scuttlebutt = sb
	return d
}

// History implements scuttlebutt.Replica.
func (d *logDoc) History(c vclock.Clock) []scuttlebutt.Update {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []scuttlebutt.Update
	for _, u := range d.applied {
		if !c.Covers(u.Source, u.Timestamp) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, scuttlebutt.Compare)
	return out
}

// ApplyUpdate implements scuttlebutt.Replica.
func (d *logDoc) ApplyUpdate(u scuttlebutt.Update) bool {
	d.rec.add("apply " + u.Source + "@" + u.Timestamp.String())
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied = append(d.applied, u)
	return true
}

// ValidateUpdate implements scuttlebutt.Validator: it refuses the payload
// txt(forbidden) and anything that is not a text string.
func (d *logDoc) ValidateUpdate(u scuttlebutt.Update) error {
	var s string
	if err := cbor.Unmarshal(u.Data, &s); err != nil {
		return err
	}
	if s == forbidden {
		return errors.New("forbidden payload")
	}
	return nil
}

// write makes a local update with payload s.
func (d *logDoc) write(t testing.TB, s string) scuttlebutt.Update {
	t.Helper()
	u, changed, err := d.LocalUpdate(txt(s))
	if err != nil {
		t.Fatalf("%s: LocalUpdate(%q): %v", d.ID(), s, err)
	}
	if !changed {
		t.Fatalf("%s: LocalUpdate(%q) reported no change", d.ID(), s)
	}
	return u
}

// values returns "source:payload" of every update applied, sorted, the
// replica's state for convergence checks.
func (d *logDoc) values() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.applied))
	for _, u := range d.applied {
		var s string
		if err := cbor.Unmarshal(u.Data, &s); err != nil {
			s = fmt.Sprintf("%x", u.Data)
		}
		out = append(out, u.Source+":"+s)
	}
	sort.Strings(out)
	return out
}

// log returns a copy of the updates applied, in apply order.
func (d *logDoc) log() []scuttlebutt.Update {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.applied)
}

// recorder is a shared, ordered event log.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// dir names one direction of a session: from's link sends to to.
type dir struct{ from, to string }

func (d dir) String() string { return d.from + "→" + d.to }

// handNet is a deterministic in-memory network of Links stepped by hand, no
// goroutines: each direction has a FIFO of messages that Ready produced and
// the peer has not yet been stepped with. Every delivered message is
// recorded, and each direction is checked for the prefix property: per
// source, updates strictly increase in timestamp and never fall at or below
// a clock the direction already sent.
type handNet struct {
	t     testing.TB
	links map[dir]*scuttlebutt.Link
	queue map[dir][]scuttlebutt.Message
	sent  map[dir][]scuttlebutt.Message // delivered, in order
	mark  map[dir]vclock.Clock          // per direction: what was advertised
	trace []string
}

func newHandNet(t testing.TB) *handNet {
	return &handNet{
		t:     t,
		links: map[dir]*scuttlebutt.Link{},
		queue: map[dir][]scuttlebutt.Message{},
		sent:  map[dir][]scuttlebutt.Message{},
		mark:  map[dir]vclock.Clock{},
	}
}

// connect starts a session between a and b; nil options mean defaults.
func (n *handNet) connect(a, b scuttlebutt.Document, oa, ob *scuttlebutt.LinkOptions) (la, lb *scuttlebutt.Link) {
	ia, ib := a.Base().ID(), b.Base().ID()
	la, lb = a.Base().NewLink(oa), b.Base().NewLink(ob)
	n.links[dir{ia, ib}] = la
	n.links[dir{ib, ia}] = lb
	n.t.Cleanup(la.Close)
	n.t.Cleanup(lb.Close)
	return la, lb
}

func (n *handNet) dirs() []dir {
	ds := make([]dir, 0, len(n.links))
	for d := range n.links {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(x, y dir) int { return strings.Compare(x.String(), y.String()) })
	return ds
}

// pump moves what d's link has ready into d's queue and reports how many
// messages it moved.
func (n *handNet) pump(d dir) int {
	ms := n.links[d].Ready()
	n.queue[d] = append(n.queue[d], ms...)
	return len(ms)
}

// deliver steps the peer with the first queued message of d, if any, and
// reports whether there was one. A Step error fails the test.
func (n *handNet) deliver(d dir) bool {
	q := n.queue[d]
	if len(q) == 0 {
		return false
	}
	m := q[0]
	n.queue[d] = q[1:]
	n.check(d, m)
	n.trace = append(n.trace, d.String()+" "+m.String())
	n.sent[d] = append(n.sent[d], m)
	if err := n.links[dir{d.to, d.from}].Step(m); err != nil {
		n.fail("%s: Step(%v): %v", d, m, err)
	}
	return true
}

// check asserts the prefix property of direction d for m.
func (n *handNet) check(d dir, m scuttlebutt.Message) {
	mk := n.mark[d]
	if mk == nil {
		mk = vclock.Clock{}
		n.mark[d] = mk
	}
	switch m.Kind {
	case scuttlebutt.MsgUpdates:
		for _, u := range m.Updates {
			if !mk.Advance(u.Source, u.Timestamp) {
				n.fail("%s: prefix property broken: %s sent after %s had been advertised up to %v",
					d, u, u.Source, mk.Get(u.Source))
			}
		}
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		mk.Merge(m.Clock)
	}
}

func (n *handNet) fail(format string, args ...any) {
	n.t.Helper()
	n.t.Fatalf("%s\ntrace:\n  %s", fmt.Sprintf(format, args...), strings.Join(n.trace, "\n  "))
}

// stabilize pumps and delivers until no link has anything to send and
// every queue is empty, and returns how many messages it delivered.
func (n *handNet) stabilize() int {
	n.t.Helper()
	total := 0
	for round := 0; ; round++ {
		if round > 10000 {
			n.fail("no quiescence after %d rounds", round)
		}
		moved := 0
		for _, d := range n.dirs() {
			moved += n.pump(d)
			for n.deliver(d) {
				moved++
				total++
			}
		}
		if moved == 0 {
			return total
		}
	}
}

// count returns how many messages of kind went in direction d, and how many
// updates they carried.
func (n *handNet) count(d dir, kind scuttlebutt.MessageKind) (msgs, updates int) {
	for _, m := range n.sent[d] {
		if m.Kind == kind {
			msgs++
			updates += len(m.Updates)
		}
	}
	return msgs, updates
}

// kinds lists the kinds of the messages that went in direction d.
func (n *handNet) kinds(d dir) []string {
	var out []string
	for _, m := range n.sent[d] {
		out = append(out, m.Kind.String())
	}
	return out
}

// resetCounts forgets the recorded messages, so that later counts cover
// only what follows.
func (n *handNet) resetCounts() { n.sent = map[dir][]scuttlebutt.Message{} }

package scuttlebutt_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
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

// newNet returns a hand-stepped simnet.Network of docs, replica i being
// docs[i]. It checks every message it delivers for the prefix property and
// traces it to the test's log; a broken property or a failed Step fails the
// test where it happens. The network is closed when the test ends.
func newNet(t testing.TB, docs ...scuttlebutt.Document) *simnet.Network {
	n := simnet.New(1, &simnet.Options{
		Logf:        t.Logf,
		LogMessages: true,
		OnError:     func(err error) { t.Error(err) },
	})
	for _, d := range docs {
		n.Add(d)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// count returns how many of ms are of kind, and how many updates they
// carry.
func count(ms []scuttlebutt.Message, kind scuttlebutt.MessageKind) (msgs, updates int) {
	for _, m := range ms {
		if m.Kind == kind {
			msgs++
			updates += len(m.Updates)
		}
	}
	return msgs, updates
}

// kinds lists the kinds of ms.
func kinds(ms []scuttlebutt.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Kind.String())
	}
	return out
}

// syncedLinks links a and b by hand, steps them through hellos, then
// histories and syncs, and closes both links when the test ends.
func syncedLinks(tb testing.TB, a, b *scuttlebutt.Scuttlebutt) (la, lb *scuttlebutt.Link) {
	tb.Helper()
	la, lb = a.NewLink(nil), b.NewLink(nil)
	tb.Cleanup(func() {
		la.Close()
		lb.Close()
	})
	for range 2 {
		deliver(tb, la, lb)
		deliver(tb, lb, la)
	}
	if !la.Synced() || !lb.Synced() {
		tb.Fatal("not synced")
	}
	return la, lb
}

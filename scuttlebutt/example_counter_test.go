package scuttlebutt_test

import (
	"fmt"
	"slices"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Counter is a grow-only counter replicated with scuttlebutt. Each replica
// counts its own increments and publishes its running total as an update;
// the counter's value is the sum of the latest totals of every source
// (every start of every replica: a restarted replica counts afresh under
// its new Source, and its earlier counts stay). A
// replica's newer total supersedes its older ones, so History sends only the
// latest update per replica.
type Counter struct {
	*scuttlebutt.Scuttlebutt

	add    sync.Mutex // serializes Add, so totals never go backwards
	mu     sync.Mutex // guards latest against concurrent readers
	latest map[string]counted
}

// counted is the latest total of one replica and the update that carried it.
type counted struct {
	total  uint64
	update scuttlebutt.Update
}

// NewCounter returns a counter with replica id id; nil cfg means the
// defaults.
func NewCounter(id string, cfg *scuttlebutt.Config) (*Counter, error) {
	c := &Counter{latest: make(map[string]counted)}
	sb, err := scuttlebutt.New(id, c, cfg)
	if err != nil {
		return nil, err
	}
	c.Scuttlebutt = sb
	return c, nil
}

// Add adds n to the counter and replicates the change.
func (c *Counter) Add(n uint64) error {
	c.add.Lock()
	defer c.add.Unlock()
	c.mu.Lock()
	total := c.latest[c.Source()].total + n // per source: this start's own count
	c.mu.Unlock()
	data, err := cbor.Marshal(total)
	if err != nil {
		return err
	}
	_, _, err = c.LocalUpdate(data)
	return err
}

// Value returns the sum over all replicas.
func (c *Counter) Value() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum uint64
	for _, l := range c.latest {
		sum += l.total
	}
	return sum
}

// History implements scuttlebutt.Replica: each replica's latest update, if
// sources has not seen it.
func (c *Counter) History(sources vclock.Clock) []scuttlebutt.Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []scuttlebutt.Update
	for src, l := range c.latest {
		if !sources.Covers(src, l.update.Timestamp) {
			out = append(out, l.update)
		}
	}
	slices.SortFunc(out, scuttlebutt.Compare)
	return out
}

// ApplyUpdate implements scuttlebutt.Replica: a higher total of a replica
// replaces its lower one.
func (c *Counter) ApplyUpdate(u scuttlebutt.Update) bool {
	var total uint64
	if err := cbor.Unmarshal(u.Data, &total); err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if total <= c.latest[u.Source].total {
		return false
	}
	c.latest[u.Source] = counted{total: total, update: u}
	return true
}

// ValidateUpdate implements scuttlebutt.Validator: a peer's payload must be
// an unsigned integer.
func (c *Counter) ValidateUpdate(u scuttlebutt.Update) error {
	var total uint64
	return cbor.Unmarshal(u.Data, &total)
}

var (
	_ scuttlebutt.Replica   = (*Counter)(nil)
	_ scuttlebutt.Validator = (*Counter)(nil)
)

// exchange runs a session between a and b by hand until neither has
// anything left to send; a real program uses package stream instead.
func exchange(a, b scuttlebutt.Document) error {
	la, lb := a.Base().NewLink(nil), b.Base().NewLink(nil)
	defer la.Close()
	defer lb.Close()
	for {
		ma, mb := la.Ready(), lb.Ready()
		if len(ma) == 0 && len(mb) == 0 {
			return nil
		}
		for _, m := range ma {
			if err := lb.Step(m); err != nil {
				return err
			}
		}
		for _, m := range mb {
			if err := la.Step(m); err != nil {
				return err
			}
		}
	}
}

// Example_counter replicates a grow-only counter between two replicas.
func Example_counter() {
	a, _ := NewCounter("a", nil)
	b, _ := NewCounter("b", nil)
	a.Add(2)
	a.Add(1)
	b.Add(4)
	fmt.Println("before:", a.Value(), b.Value())

	if err := exchange(a, b); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("after:", a.Value(), b.Value())
	// Output:
	// before: 3 4
	// after: 7 7
}

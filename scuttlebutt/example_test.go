package scuttlebutt_test

import (
	"fmt"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// ExampleLink drives two Links by hand: whatever one side's Ready returns is
// stepped into the other side, in order, until both are synced. After the
// sync, a local write is queued on the link and goes out with the next Ready.
func ExampleLink() {
	// A fixed wall clock and incarnation make the timestamps and sources
	// printable; a program leaves Incarnation to the base.
	cfg := &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(1795385884149) }, Incarnation: "1"}
	a, _ := NewCounter("a", cfg)
	b, _ := NewCounter("b", cfg)
	a.Add(1)

	la, lb := a.NewLink(nil), b.NewLink(nil)
	defer la.Close()
	defer lb.Close()
	send := func(from string, l *scuttlebutt.Link, to *scuttlebutt.Link) bool {
		ms := l.Ready()
		for _, m := range ms {
			fmt.Println(from, m)
			if err := to.Step(m); err != nil {
				fmt.Println("error:", err)
			}
		}
		return len(ms) > 0
	}
	for !la.Synced() || !lb.Synced() {
		send("a→b", la, lb)
		send("b→a", lb, la)
	}
	fmt.Println("synced:", a.Value(), b.Value())

	b.Add(5)
	send("b→a", lb, la)
	fmt.Println("live:", a.Value(), b.Value())
	// Output:
	// a→b hello(v1 a~1 {a~1:1795385884149})
	// b→a hello(v1 b~1 {})
	// b→a sync({})
	// a→b updates(a~1@1795385884149(1B))
	// a→b sync({a~1:1795385884149})
	// synced: 1 1
	// b→a updates(b~1@1795385884149.001(1B))
	// live: 6 6
}

package vclock_test

import (
	"fmt"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

func ExampleClock_Compare() {
	a := vclock.Clock{"alice": 1795385884149, "bob": 1795385884150}
	b := a.Clone()
	b.Advance("bob", 1795385884151)
	fmt.Println(a.Compare(b), b.Compare(a))

	a.Advance("carol", 1795385884152)
	fmt.Println(a.Compare(b))

	a.Merge(b)
	fmt.Println(a, a.Compare(b))
	// Output:
	// before after
	// concurrent
	// {alice:1795385884149 bob:1795385884151 carol:1795385884152} after
}

func ExampleHLC() {
	wall := time.UnixMilli(1795385884149)
	h := vclock.NewHLC(func() time.Time { return wall })

	// Three timestamps within one millisecond of the wall clock.
	fmt.Println(h.Now(), h.Now(), h.Now())

	// The wall clock steps back; timestamps keep increasing.
	wall = wall.Add(-time.Second)
	fmt.Println(h.Now())

	// A remote update from the future: the next local one is later.
	h.Observe(1795385890000)
	fmt.Println(h.Now())
	// Output:
	// 1795385884149 1795385884149.001 1795385884149.002
	// 1795385884149.003
	// 1795385890000.001
}

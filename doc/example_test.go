package doc_test

import (
	"context"
	"fmt"
	"log"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/stream"
)

// A patch applies all its ops as one update: every replica gets all of
// them or none.
func ExampleDoc_Patch() {
	d, err := doc.New("alice", nil)
	if err != nil {
		log.Fatal(err)
	}
	err = d.Patch(
		doc.Set("/users/ada", map[string]any{"name": "Ada", "admin": true}),
		doc.Inc("/users/ada/logins", 1),
		doc.Push("/log", "ada joined"),
	)
	if err != nil {
		log.Fatal(err)
	}
	name, _ := d.Get("/users/ada/name")
	first, _ := d.Get("/log/0")
	fmt.Println(name, first)
	fmt.Println(d.Snapshot())

	// An invalid op fails the whole patch, and nothing changes.
	err = d.Patch(doc.Set("/users/bob", "Bob"), doc.Inc("/users/ada/name", 1))
	fmt.Println(err)
	_, ok := d.Get("/users/bob")
	fmt.Println("bob:", ok)
	// Output:
	// Ada ada joined
	// map[log:[ada joined] users:map[ada:map[admin:true logins:1 name:Ada]]]
	// doc: inc "/users/ada/name": doc: not a number
	// bob: false
}

// Observers get every change at, below or above their path, local or
// remote, once the whole patch is applied.
func ExampleDoc_Observe() {
	d, err := doc.New("alice", nil)
	if err != nil {
		log.Fatal(err)
	}
	cancel := d.Observe("/users", func(c doc.Change) {
		switch {
		case c.Deleted:
			fmt.Printf("%s deleted (was %v)\n", c.Path, c.Old)
		default:
			fmt.Printf("%s: %v -> %v\n", c.Path, c.Old, c.New)
		}
	})
	defer cancel()
	d.Patch(doc.Set("/users/ada", map[string]any{"name": "Ada"}), doc.Set("/other", 1))
	d.Patch(doc.Set("/users/ada/name", "Ada L."), doc.Inc("/users/ada/logins", 1))
	d.Patch(doc.Unset("/users/ada"))
	// Output:
	// /users: <nil> -> map[ada:map[name:Ada]]
	// /users/ada/name: Ada -> Ada L.
	// /users/ada/logins: <nil> -> 1
	// /users deleted (was map[ada:map[logins:1 name:Ada L.]])
}

// Two replicas increment one counter while apart; once linked, both count
// every increment.
func Example() {
	a, err := doc.New("a", nil)
	if err != nil {
		log.Fatal(err)
	}
	b, err := doc.New("b", nil)
	if err != nil {
		log.Fatal(err)
	}
	a.Patch(doc.Inc("/visits", 2), doc.Push("/seen", "from a"))
	b.Patch(doc.Inc("/visits", 3), doc.Push("/seen", "from b"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := stream.Pipe(ctx, a, b); err != nil { // returns once both are synced
		log.Fatal(err)
	}
	va, _ := a.Get("/visits")
	vb, _ := b.Get("/visits")
	seen, _ := b.Get("/seen")
	fmt.Println(va, vb, len(seen.([]any)))
	// Output:
	// 5 5 2
}

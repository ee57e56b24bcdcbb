package model_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// ExampleModel replicates two models over an in-process pipe: each has a
// key the other lacks and both wrote "color"; after the sync both hold the
// same snapshot.
func ExampleModel() {
	a, _ := model.New("alice", nil)
	b, _ := model.New("bob", nil)
	a.Set("color", "red")
	a.Set("size", 3)
	b.Set("shape", []string{"round"})
	b.Set("color", "blue") // the later write wins on both

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := stream.Pipe(ctx, a, b); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.Snapshot())
	fmt.Println(b.Snapshot())
	// Output:
	// map[color:blue shape:[round] size:3]
	// map[color:blue shape:[round] size:3]
}

// ExampleModel_Watch prints every change of a model as it happens.
func ExampleModel_Watch() {
	m, _ := model.New("a", nil)
	cancel := m.Watch(func(c model.Change) {
		switch {
		case c.Deleted:
			fmt.Printf("%s deleted (was %v)\n", c.Key, c.Old)
		case c.Old != nil:
			fmt.Printf("%s = %v (was %v), local %v\n", c.Key, c.Value, c.Old, c.Local)
		default:
			fmt.Printf("%s = %v, local %v\n", c.Key, c.Value, c.Local)
		}
	})
	defer cancel()

	m.Set("greeting", "hello")
	m.Set("greeting", "hi")
	m.Delete("greeting")
	// Output:
	// greeting = hello, local true
	// greeting = hi (was hello), local true
	// greeting deleted (was hi)
}

// ExampleModel_Checkpoint takes a model's state together with the clock it
// corresponds to: the clock says exactly what the snapshot holds, so what a
// replica has since the checkpoint is its history after that clock.
func ExampleModel_Checkpoint() {
	m, _ := model.New("a", nil)
	m.Set("color", "red")
	m.Set("size", 3)
	snap, clock := m.Checkpoint()
	m.Set("color", "blue")

	fmt.Println(snap)
	fmt.Println("checkpoint is", clock.Compare(m.Clock()), "the model")
	fmt.Println(len(m.History(clock)), "update since the checkpoint")
	// Output:
	// map[color:red size:3]
	// checkpoint is before the model
	// 1 update since the checkpoint
}

// ExampleModel_SetTTL writes a presence key that lives for 3 s, moves a
// fake clock past it, and lets Expire tell the watcher.
func ExampleModel_SetTTL() {
	now := time.UnixMilli(1795385884149)
	m, _ := model.New("a", &scuttlebutt.Config{Now: func() time.Time { return now }})
	defer m.Watch(func(c model.Change) {
		fmt.Printf("%s: deleted %v, expired %v\n", c.Key, c.Deleted, c.Expired)
	})()

	m.SetTTL("presence/a", "online", 3*time.Second)
	now = now.Add(2 * time.Second)
	fmt.Println(m.Get("presence/a"))
	now = now.Add(time.Second)
	fmt.Println(m.Get("presence/a"))
	m.Expire()
	// Output:
	// presence/a: deleted false, expired false
	// online true
	// <nil> false
	// presence/a: deleted true, expired true
}

// ExampleNewWithConfig gives two replicas a 10 s lease: the key a writes is
// a's until 10 s after its last write.
func ExampleNewWithConfig() {
	now := time.UnixMilli(1795385884149)
	cfg := &model.Config{Replica: &scuttlebutt.Config{Now: func() time.Time { return now }}, Lease: 10 * time.Second}
	a, _ := model.NewWithConfig("a", cfg)
	b, _ := model.NewWithConfig("b", cfg)
	a.Set("leader", "a")
	b.Apply(a.History(b.Clock())...) // as a link would

	err := b.Set("leader", "b")
	fmt.Println(errors.Is(err, model.ErrLeased))
	id, until, _ := b.Holder("leader")
	fmt.Println(id, until.Sub(now))

	now = now.Add(10 * time.Second) // a did not renew
	fmt.Println(b.Set("leader", "b"))
	// Output:
	// true
	// a 10s
	// <nil>
}

package model_test

import (
	"context"
	"fmt"

	"github.com/scuttle-go/scuttle/model"
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

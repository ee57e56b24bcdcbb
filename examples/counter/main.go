// Counter shows a custom replicated type: a grow-only counter (a G-Counter,
// as in weaveworks/mesh's increment-only-counter example) written only
// against scuttlebutt.Replica. See counter.go for the type.
//
// Three counters a, b and c are linked in a line, a - b - c, with
// stream.Pipe; each is incremented by several goroutines at once, before and
// while the links run. It waits for every replica to have every count,
// woken by the counters' change callbacks (Counter.OnChange), and prints
// each value, all equal to the total:
//
//	go run ./examples/counter
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/stream"
)

const (
	writers    = 4   // goroutines incrementing each counter
	increments = 250 // increments by each goroutine, half before linking
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the pipes
	var counters []*Counter
	for _, id := range []string{"a", "b", "c"} {
		c, err := NewCounter(id)
		if err != nil {
			return err
		}
		counters = append(counters, c)
	}
	a, b, c := counters[0], counters[1], counters[2]

	// Counter i adds i+1 per increment, so the total says each was counted.
	incr := func(n int) error {
		var wg sync.WaitGroup
		errs := make(chan error, len(counters)*writers)
		for i, ctr := range counters {
			for range writers {
				wg.Go(func() {
					for range n {
						if err := ctr.Incr(uint64(i + 1)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		return <-errs // nil if the channel is empty
	}
	if err := incr(increments / 2); err != nil {
		return err
	}
	// Link while more increments run.
	done := make(chan error, 1)
	go func() { done <- incr(increments - increments/2) }()
	if err := stream.Pipe(ctx, a, b); err != nil {
		return err
	}
	if err := stream.Pipe(ctx, b, c); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}

	var want uint64
	for i := range counters {
		want += uint64((i + 1) * writers * increments)
	}
	if err := waitValue(ctx, counters, want); err != nil {
		return err
	}
	for _, ctr := range counters {
		fmt.Fprintf(w, "%s = %d\n", ctr.ID(), ctr.Value())
		if ctr.Value() != want {
			return fmt.Errorf("%s = %d, want %d", ctr.ID(), ctr.Value(), want)
		}
	}
	fmt.Fprintf(w, "all equal to %d = (1+2+3) x %d goroutines x %d increments\n", want, writers, increments)
	return nil
}

// waitValue waits until every counter's value is want, for at most ten
// seconds. A change callback on each counter wakes it: the callbacks run
// on the goroutines applying changes, so they only poke a capacity-1
// channel, and the check runs here.
func waitValue(ctx context.Context, cs []*Counter, want uint64) error {
	wake := make(chan struct{}, 1)
	for _, c := range cs {
		defer c.OnChange(func(Change) {
			select {
			case wake <- struct{}{}:
			default: // a wakeup is pending already
			}
		})()
	}
	deadline := time.After(10 * time.Second)
	for {
		equal := true
		for _, c := range cs {
			equal = equal && c.Value() == want
		}
		if equal {
			return nil
		}
		select {
		case <-wake:
		case <-deadline:
			return errors.New("counters did not converge within 10s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

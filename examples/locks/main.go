// Locks shows the replicated lock table: three replicas share a mutex and
// a semaphore of two seats; a replica crashes holding a seat, and another
// is cut off while holding the mutex. It takes about three seconds, most
// of it waiting for leases to run out.
//
//	go run ./examples/locks
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/lock"
	"github.com/scuttle-go/scuttle/stream"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// link serves two tables to each other over net.Pipe until cut.
type link struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func connect(ctx context.Context, a, b *lock.Table) *link {
	ctx, cancel := context.WithCancel(ctx)
	l := &link{cancel: cancel}
	ca, cb := net.Pipe()
	x, y := stream.NewConn(a, ca, nil), stream.NewConn(b, cb, nil)
	l.wg.Go(func() { x.Run(ctx) })
	l.wg.Go(func() { y.Run(ctx) })
	return l
}

func (l *link) cut() {
	l.cancel()
	l.wg.Wait()
}

func run(ctx context.Context, w io.Writer) error {
	members := []string{"a", "b", "c"}
	tabs := map[string]*lock.Table{}
	for _, id := range members {
		t, err := lock.New(id, &lock.Config{
			Members: members,
			Lease:   time.Second,
			Renew:   200 * time.Millisecond,
			Margin:  100 * time.Millisecond,
			Limits:  map[string]int{"seats": 2},
		})
		if err != nil {
			return err
		}
		defer t.Close()
		tabs[id] = t
	}
	a, b, c := tabs["a"], tabs["b"], tabs["c"]
	ab, bc, ac := connect(ctx, a, b), connect(ctx, b, c), connect(ctx, a, c)
	defer func() { ab.cut() }()

	fmt.Fprintln(w, "a, b and c share a lock table; a locks the printer:")
	if err := a.Lock(ctx, "printer"); err != nil {
		return err
	}
	holder, _ := b.Holder("printer")
	fmt.Fprintf(w, "  b: TryLock(printer): %v (b sees %s holding it)\n", b.TryLock(ctx, "printer"), holder)

	fmt.Fprintln(w, "b waits in Lock(printer) while a prints; a unlocks:")
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "printer") }()
	time.Sleep(50 * time.Millisecond) // a prints
	if err := a.Unlock("printer"); err != nil {
		return err
	}
	if err := <-got; err != nil {
		return err
	}
	fmt.Fprintln(w, "  b holds the printer")

	fmt.Fprintln(w, "the seats semaphore admits two; a and c take one each:")
	for _, t := range []*lock.Table{a, c} {
		if err := t.Lock(ctx, "seats"); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "  b: TryLock(seats): %v\n", b.TryLock(ctx, "seats"))

	fmt.Fprintln(w, "c crashes holding its seat; a and b remove it from their members:")
	free, _ := c.Deadline("seats")
	free = free.Add(100 * time.Millisecond) // the others' view: the holder's deadline plus the margin
	bc.cut()
	ac.cut()
	c.Close()
	for _, t := range []*lock.Table{a, b} {
		if err := t.SetMembers([]string{"a", "b"}); err != nil {
			return err
		}
	}
	if err := b.Lock(ctx, "seats"); err != nil {
		return err
	}
	fmt.Fprintf(w, "  b got c's seat once c's lease ran out (not before: %v)\n", !time.Now().Before(free))
	for _, t := range []*lock.Table{a, b} {
		if err := t.Unlock("seats"); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "b is cut off from a while it holds the printer:")
	lost := make(chan string, 1)
	defer b.OnLost(func(name string) {
		select { // OnLost callbacks must not block
		case lost <- name:
		default:
		}
	})()
	done := b.Done("printer")
	ab.cut()
	<-done
	fmt.Fprintf(w, "  b lost the %s: its renewals went unacknowledged\n", <-lost)
	err := b.Unlock("printer")
	fmt.Fprintf(w, "  b: Unlock(printer): %v (ErrNotOwner: %v)\n", err, errors.Is(err, lock.ErrNotOwner))

	fmt.Fprintln(w, "the network heals; a takes the printer:")
	ab = connect(ctx, a, b)
	if err := a.Lock(ctx, "printer"); err != nil {
		return err
	}
	holder, _ = a.Holder("printer")
	fmt.Fprintf(w, "  %s holds the printer\n", holder)
	return nil
}

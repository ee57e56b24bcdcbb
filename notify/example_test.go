package notify_test

import (
	"fmt"
	"sync"

	"github.com/scuttle-go/scuttle/notify"
)

// register is a tiny replicated-type stand-in: set changes its value under
// its lock, queues the change there, and delivers it after unlocking, as
// ApplyUpdate and AfterApply do.
type register struct {
	mu      sync.Mutex
	v       int
	changes notify.Notifier[int]
}

func (r *register) set(v int) {
	r.mu.Lock()
	r.v = v
	r.changes.Queue(v) // under the lock: only buffers
	r.mu.Unlock()
	r.changes.Deliver() // outside it: callbacks may call set
}

func (r *register) get() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v
}

func Example() {
	var r register
	cancel := r.changes.Add(func(v int) {
		fmt.Println("changed to", v, "- reads", r.get())
		if v == 1 {
			r.set(2) // delivered after this callback returns
			fmt.Println("callback for 1 returns")
		}
	})
	r.set(1)
	cancel()
	r.set(3) // nobody listens: dropped
	// Output:
	// changed to 1 - reads 1
	// callback for 1 returns
	// changed to 2 - reads 2
}

func ExampleChan() {
	var n notify.Notifier[string]
	ch := make(chan string, 2) // room for what is sent before it is read
	cancel := notify.Chan(n.Add, ch)
	n.Queue("a")
	n.Queue("b")
	n.Deliver()
	cancel()
	close(ch) // safe: nothing is sent once cancel has returned
	for v := range ch {
		fmt.Println(v)
	}
	// Output:
	// a
	// b
}

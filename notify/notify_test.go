package notify_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/notify"
)

// harness is a Notifier of ints with named callbacks that log what they
// receive, and may react to it.
type harness struct {
	n       notify.Notifier[int]
	cancels map[string]func()
	log     []string
	react   func(h *harness, who string, v int) // nil: no reactions
}

func (h *harness) add(who string) {
	h.cancels[who] = h.n.Add(func(v int) {
		h.log = append(h.log, fmt.Sprintf("%s:%d", who, v))
		if h.react != nil {
			h.react(h, who, v)
		}
	})
}

func (h *harness) send(vs ...int) {
	for _, v := range vs {
		h.n.Queue(v)
	}
	h.n.Deliver()
}

func TestNotifier(t *testing.T) {
	tests := []struct {
		name  string
		run   func(h *harness) // adds callbacks, queues and delivers
		react func(h *harness, who string, v int)
		want  []string
	}{
		{
			name: "queued without callbacks: dropped",
			run: func(h *harness) {
				h.n.Queue(1)
				h.add("a")
				h.send(2)
			},
			want: []string{"a:2"},
		},
		{
			name: "values in queue order, callbacks in the order added",
			run: func(h *harness) {
				h.add("b")
				h.add("a")
				h.send(1, 2, 3)
			},
			want: []string{"b:1", "a:1", "b:2", "a:2", "b:3", "a:3"},
		},
		{
			name: "queued over several calls, one Deliver",
			run: func(h *harness) {
				h.add("a")
				h.n.Queue(1)
				h.n.Queue(2)
				h.n.Deliver()
				h.n.Deliver() // nothing left
			},
			want: []string{"a:1", "a:2"},
		},
		{
			name: "cancelled before delivery: hears nothing",
			run: func(h *harness) {
				h.add("a")
				h.add("b")
				h.n.Queue(1)
				h.cancels["a"]()
				h.cancels["a"]() // idempotent
				h.n.Deliver()
			},
			want: []string{"b:1"},
		},
		{
			name: "a callback cancels itself: nothing more of the batch",
			run: func(h *harness) {
				h.add("a")
				h.add("b")
				h.send(1, 2)
			},
			react: func(h *harness, who string, v int) {
				if who == "a" {
					h.cancels["a"]()
				}
			},
			want: []string{"a:1", "b:1", "b:2"},
		},
		{
			name: "a callback cancels a later one mid-batch",
			run: func(h *harness) {
				h.add("a")
				h.add("b")
				h.send(1, 2)
			},
			react: func(h *harness, who string, v int) {
				if who == "a" {
					h.cancels["b"]()
				}
			},
			want: []string{"a:1", "a:2"},
		},
		{
			name: "a callback's own change comes after it returns, and after the batch",
			run: func(h *harness) {
				h.add("a")
				h.add("b")
				h.send(1, 2)
			},
			react: func(h *harness, who string, v int) {
				if who == "a" && v == 1 {
					h.send(10) // Deliver returns at once: the outer loop delivers 10
					h.log = append(h.log, "a returns")
				}
			},
			want: []string{"a:1", "a returns", "b:1", "a:2", "b:2", "a:10", "b:10"},
		},
		{
			name: "added by a callback: hears the next batch, not the rest of this one",
			run: func(h *harness) {
				h.add("a")
				h.send(1, 2)
				h.send(3)
			},
			react: func(h *harness, who string, v int) {
				if who == "a" && v == 1 {
					h.add("c")
				}
			},
			want: []string{"a:1", "a:2", "a:3", "c:3"},
		},
		{
			name: "re-added after cancel: a new callback, at the end",
			run: func(h *harness) {
				h.add("a")
				h.add("b")
				h.cancels["a"]()
				h.add("a")
				h.send(1)
			},
			want: []string{"b:1", "a:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &harness{cancels: map[string]func(){}, react: tt.react}
			tt.run(h)
			if diff := cmp.Diff(tt.want, h.log); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeliverConcurrent queues and delivers from several goroutines at
// once: callbacks never run concurrently, each gets every value once, and
// each goroutine's values in the order it queued them.
func TestDeliverConcurrent(t *testing.T) {
	const goroutines, each, callbacks = 4, 500, 3
	type value struct{ g, i int }
	var n notify.Notifier[value]
	var running atomic.Int32
	got := make([][]value, callbacks)
	for c := range callbacks {
		defer n.Add(func(v value) {
			if running.Add(1) != 1 {
				t.Error("two callbacks ran at once")
			}
			got[c] = append(got[c], v)
			running.Add(-1)
		})()
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				n.Queue(value{g, i})
				n.Deliver()
			}
		})
	}
	wg.Wait()
	n.Deliver() // nothing is left: every Deliver that returned early had a drainer
	for c, vs := range got {
		if len(vs) != goroutines*each {
			t.Errorf("callback %d got %d values, want %d", c, len(vs), goroutines*each)
		}
		next := make([]int, goroutines)
		for _, v := range vs {
			if v.i != next[v.g] {
				t.Fatalf("callback %d got value %d of goroutine %d, want %d", c, v.i, v.g, next[v.g])
			}
			next[v.g]++
		}
		if c > 0 && !slices.Equal(got[0], vs) {
			t.Errorf("callbacks 0 and %d got the values in different orders", c)
		}
	}
}

// TestCancelConcurrent cancels a callback from another goroutine while
// values are delivered: once cancel has returned it is not called again.
func TestCancelConcurrent(t *testing.T) {
	var n notify.Notifier[int]
	var cancelled atomic.Bool
	var calledAfter atomic.Int32
	cancel := n.Add(func(int) {
		if cancelled.Load() {
			calledAfter.Add(1)
		}
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n.Queue(i)
			n.Deliver()
		}
	})
	time.Sleep(time.Millisecond)
	cancel()
	cancelled.Store(true)
	time.Sleep(time.Millisecond)
	close(stop)
	wg.Wait()
	if k := calledAfter.Load(); k != 0 {
		t.Errorf("callback called %d times after cancel returned", k)
	}
}

func TestDeliverAfterPanic(t *testing.T) {
	var n notify.Notifier[int]
	var got []int
	defer n.Add(func(v int) {
		got = append(got, v)
		if v == 1 {
			panic("boom")
		}
	})()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the callback's panic", r)
			}
		}()
		n.Queue(1)
		n.Queue(2) // in the batch that panicked: dropped
		n.Deliver()
	}()
	n.Queue(3)
	n.Deliver() // not stuck: a new drainer
	if diff := cmp.Diff([]int{1, 3}, got); diff != "" {
		t.Errorf("values delivered (-want +got):\n%s", diff)
	}
}

func TestChan(t *testing.T) {
	var n notify.Notifier[int]
	ch := make(chan int, 3)
	cancel := notify.Chan(n.Add, ch)
	n.Queue(1)
	n.Queue(2)
	n.Deliver()
	cancel()
	cancel() // idempotent
	n.Queue(3)
	n.Deliver()
	close(ch) // safe once cancel has returned
	var got []int
	for v := range ch {
		got = append(got, v)
	}
	if diff := cmp.Diff([]int{1, 2}, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

// TestChanCancelReleasesBlockedSend: an unread channel holds up Deliver
// until cancel, which releases it; nothing is sent after.
func TestChanCancelReleasesBlockedSend(t *testing.T) {
	var n notify.Notifier[int]
	ch := make(chan int) // never read
	started := make(chan struct{}, 1)
	defer n.Add(func(int) { // added first: runs before the send
		select {
		case started <- struct{}{}:
		default:
		}
	})()
	cancel := notify.Chan(n.Add, ch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Queue(1)
		n.Deliver()
	}()
	<-started
	cancel() // concurrent with the send: releases it and waits for it
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("cancel did not release the blocked send within 20s")
	}
	n.Queue(2)
	n.Deliver()
	close(ch) // must not race with a send
}

// TestChanCancelledMidBatch: a channel whose cancel is called by another
// callback during a batch receives nothing more of it, though it has room.
func TestChanCancelledMidBatch(t *testing.T) {
	var n notify.Notifier[int]
	ch := make(chan int, 10)
	var cancel func()
	defer n.Add(func(int) { cancel() })()
	cancel = notify.Chan(n.Add, ch)
	n.Queue(1)
	n.Queue(2)
	n.Deliver()
	close(ch)
	for v := range ch {
		t.Errorf("received %d after cancel", v)
	}
}

// BenchmarkQueueDeliver queues and delivers one value at a time, as a
// replica does per local write, to 0, 1 and 8 callbacks.
func BenchmarkQueueDeliver(b *testing.B) {
	for _, subs := range []int{0, 1, 8} {
		b.Run(fmt.Sprintf("callbacks=%d", subs), func(b *testing.B) {
			var n notify.Notifier[int]
			sum := 0
			for range subs {
				defer n.Add(func(v int) { sum += v })()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n.Queue(i)
				n.Deliver()
				i++
			}
		})
	}
}

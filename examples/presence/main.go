// Presence shows keys with a time to live, the everyday use of gossip:
// five replicas announce themselves with a key each ("presence/n1" ...),
// refreshed every second with a ttl of 3 s. One is killed: it stops
// refreshing and its links go, and its key vanishes from every other
// replica's view within its ttl, by each replica's own clock, with no
// message from anyone.
//
// The story runs on a fake clock shared by the replicas, moved one second
// per step, so that it takes no time and prints the same every run; the
// replicas are linked pairwise over net.Pipe, as real processes would be
// over TCP.
//
//	go run ./examples/presence
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

const (
	ttl   = 3 * time.Second // how long an announcement lives
	every = time.Second     // how often a live replica refreshes it
	steps = 9               // seconds the story runs
	kill  = 3               // the second at which n3 is killed
)

// clock is the fake wall clock every replica reads (Config.Replica.Now):
// time is an input, so the story moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// replica is one process: its Model, its links, and the expiries its
// watcher heard of.
type replica struct {
	name    string
	m       *model.Model
	alive   bool
	links   []*link
	mu      sync.Mutex
	expired []string
}

// link serves two replicas to each other over net.Pipe until cut.
type link struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func connect(ctx context.Context, a, b *replica) *link {
	ctx, cancel := context.WithCancel(ctx)
	l := &link{cancel: cancel}
	ca, cb := net.Pipe()
	x, y := stream.NewConn(a.m, ca, nil), stream.NewConn(b.m, cb, nil)
	l.wg.Go(func() { x.Run(ctx) })
	l.wg.Go(func() { y.Run(ctx) })
	<-x.Synced()
	<-y.Synced()
	a.links, b.links = append(a.links, l), append(b.links, l)
	return l
}

func (l *link) cut() {
	l.cancel()
	l.wg.Wait()
}

// announce refreshes r's presence key, and waits until every live replica
// has the write, so that each replica's next write is stamped after it
// and the story does not depend on how the goroutines ran.
func announce(r *replica, all []*replica) error {
	if err := r.m.SetTTL("presence/"+r.name, "online", ttl); err != nil {
		return err
	}
	src := r.m.Source()
	ts := r.m.Clock().Get(src)
	deadline := time.Now().Add(10 * time.Second)
	for _, o := range all {
		for o.alive && o.m.Clock().Get(src) < ts {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not get %s's announcement", o.name, r.name)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// view returns who r sees.
func view(r *replica) string {
	var names []string
	for _, k := range r.m.Keys() {
		names = append(names, strings.TrimPrefix(k, "presence/"))
	}
	return strings.Join(names, " ")
}

func run(ctx context.Context, w io.Writer) error {
	clk := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	var all []*replica
	for i := range 5 {
		r := &replica{name: fmt.Sprintf("n%d", i+1), alive: true}
		m, err := model.NewWithConfig(r.name, &model.Config{Replica: &scuttlebutt.Config{Now: clk.Now}})
		if err != nil {
			return err
		}
		r.m = m
		defer m.Watch(func(c model.Change) {
			if c.Expired {
				r.mu.Lock()
				r.expired = append(r.expired, strings.TrimPrefix(c.Key, "presence/"))
				r.mu.Unlock()
			}
		})()
		all = append(all, r)
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			defer connect(ctx, a, b).cut()
		}
	}

	fmt.Fprintf(w, "five replicas announce themselves every %v with a ttl of %v\n", every, ttl)
	for s := range steps {
		if s == kill {
			victim := all[2]
			victim.alive = false
			for _, l := range victim.links {
				l.cut()
			}
			fmt.Fprintf(w, "t=%ds  %s is killed: no more refreshes, no links; its last one, stamped a hair after t=%ds, runs out %v later\n",
				s, victim.name, s-1, ttl)
		}
		for _, r := range all {
			if r.alive {
				if err := announce(r, all); err != nil {
					return err
				}
			}
		}
		// Group the live replicas by what they see, and by the expiries
		// their watchers heard of.
		var seers []string
		views := map[string][]string{}
		for _, r := range all {
			if !r.alive {
				continue
			}
			r.m.Expire() // what the program's timer does: expiries reach the watchers
			v := view(r)
			r.mu.Lock()
			if len(r.expired) > 0 {
				v += "; watchers hear " + strings.Join(r.expired, ", ") + " expire"
				r.expired = nil
			}
			r.mu.Unlock()
			if views[v] == nil {
				seers = append(seers, v)
			}
			views[v] = append(views[v], r.name)
		}
		slices.Sort(seers)
		for _, v := range seers {
			fmt.Fprintf(w, "t=%ds  %s see %s\n", s, strings.Join(views[v], ", "), v)
		}
		clk.advance(every)
	}
	for _, r := range all {
		if r.alive && r.m.Len() != 4 {
			return fmt.Errorf("%s still sees %s", r.name, view(r))
		}
	}
	fmt.Fprintf(w, "every live replica holds %d keys and %d updates: an expired key costs nothing\n", all[0].m.Len(), len(all[0].m.History(nil)))
	return nil
}

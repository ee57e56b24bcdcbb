package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

var demoCommand = &command{
	name:    "demo",
	summary: "three replicas in a line over TCP loopback: writes, a partition, a heal",
	setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
		var o demoOptions
		fs.IntVar(&o.keys, "keys", 1000, "how many keys A writes in the bulk step")
		fs.BoolVar(&o.quiet, "quiet", false, "print only the result line")
		fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for each sync and for convergence")
		fs.BoolVar(&o.crash, "crash", true, "end with a replica in a child process that is killed and restarted from its log")
		fs.BoolVar(&o.cluster, "cluster", false, "instead: three scuttle serve processes, one killed and restarted, one leaving")
		return func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			if o.cluster {
				return demoCluster(ctx, stdout, o)
			}
			return demo(ctx, stdout, o)
		}
	},
}

// demoOptions are the demo's flags.
type demoOptions struct {
	keys    int           // keys A writes in the bulk step
	quiet   bool          // print only the result line
	timeout time.Duration // bound on each wait
	crash   bool          // run the crash step (crashStep)
	cluster bool          // run demoCluster instead
}

// errNotConverged is the demo's failure: the replicas did not reach the same
// state in time, or reached different ones.
var errNotConverged = errors.New("replicas did not converge")

// demo runs three Model replicas A - B - C in a line over TCP on 127.0.0.1,
// writes on both ends, partitions B away, writes on every side, heals, and
// prints what happened to w. It returns nil only if the replicas converged.
// Every goroutine it starts has stopped and every listener is closed when it
// returns.
func demo(ctx context.Context, w io.Writer, o demoOptions) (err error) {
	if o.keys < 0 {
		return fmt.Errorf("-keys %d is negative", o.keys)
	}
	if o.timeout <= 0 {
		o.timeout = 10 * time.Second
	}
	p := &printer{w: w, quiet: o.quiet}
	c := &cluster{timeout: o.timeout, notify: make(chan struct{}, 1)}
	defer func() {
		if cerr := c.close(); err == nil {
			err = cerr
		}
	}()

	p.printf("scuttle demo: three replicas in a line, A - B - C, over TCP on 127.0.0.1\n")

	// 1. Start.
	p.step("Start three replicas and link them in a line")
	a, err := c.addNode("A")
	if err != nil {
		return err
	}
	b, err := c.addNode("B")
	if err != nil {
		return err
	}
	cn, err := c.addNode("C")
	if err != nil {
		return err
	}
	ab, err := c.addLink(a, b)
	if err != nil {
		return err
	}
	bc, err := c.addLink(b, cn)
	if err != nil {
		return err
	}
	for _, l := range c.links {
		if err := l.connect(ctx); err != nil {
			return err
		}
		p.event("%s  listening on %s, connected, synced", l.name, l.ln.Addr())
	}

	// 2. Writes on the ends reach the middle and the other end.
	p.step("Write on both ends")
	start := time.Now()
	if err := a.set(p, "color", "red"); err != nil {
		return err
	}
	if err := cn.set(p, "shape", "circle"); err != nil {
		return err
	}
	d, err := c.waitConverged(ctx, start)
	if err != nil {
		return err
	}
	for _, n := range c.nodes {
		p.event("%s  has %s", n.name, n.describe("color", "shape"))
	}
	p.event("everyone has both writes after %s (B relays A's to C and C's to A)", ms(d))

	// 3. Bulk writes stream live through B.
	p.step(fmt.Sprintf("A writes %d keys while linked", o.keys))
	start = time.Now()
	for i := range o.keys {
		if err := a.m.Set(bulkKey(i, o.keys), int64(i)); err != nil {
			return err
		}
	}
	if d, err = c.waitConverged(ctx, start); err != nil {
		return err
	}
	p.event("every replica holds %d keys, %s after the first write", cn.m.Len(), ms(d))

	// 4. Partition.
	p.step("Partition: cut B's links")
	for _, l := range c.links {
		if err := l.cut(); err != nil {
			return err
		}
		p.event("%s  cut", l.name)
	}

	// 5. Writes on every side of the cut, a conflict among them.
	p.step("Write on every side of the cut")
	green, err := a.write(p, "color", "green")
	if err != nil {
		return err
	}
	blue, err := cn.write(p, "color", "blue")
	if err != nil {
		return err
	}
	if err := b.set(p, "note", "written while alone"); err != nil {
		return err
	}
	if err := cn.del(p, "shape"); err != nil {
		return err
	}
	rewrites := (o.keys + 9) / 10
	for i := range rewrites {
		if err := a.m.Set(bulkKey(i, o.keys), "rewritten"); err != nil {
			return err
		}
	}
	if rewrites > 0 {
		p.event("A  set %s = %q (%d keys)", keyRange(0, rewrites, o.keys), "rewritten", rewrites)
	}
	for _, n := range c.nodes {
		p.event("%s  clock %s", n.name, n.m.Clock())
	}
	p.event("A's and C's clocks are %s: each has writes the other lacks", a.m.Clock().Compare(cn.m.Clock()))
	winner, why := "blue", "C's timestamp is later"
	switch {
	case green.Timestamp > blue.Timestamp:
		winner, why = "green", "A's timestamp is later"
	case green.Timestamp == blue.Timestamp && blue.Less(green):
		winner, why = "green", "same timestamp, and A's source id is greater"
	case green.Timestamp == blue.Timestamp:
		why = "same timestamp, and C's source id is greater"
	}
	p.event("color conflicts: A wrote green @%s, C wrote blue @%s; %q must win (%s)", green.Timestamp, blue.Timestamp, winner, why)

	// 6. Heal.
	p.step("Heal: reconnect B's links")
	start = time.Now()
	for _, l := range c.links {
		if err := l.connect(ctx); err != nil {
			return err
		}
		p.event("%s  reconnected, synced", l.name)
	}
	if d, err = c.waitConverged(ctx, start); err != nil {
		return err
	}
	p.event("converged %s after the heal began", ms(d))

	// 7. Final state.
	p.step("Final state")
	digests := map[string]bool{}
	var bad []string
	for _, n := range c.nodes {
		snap, clock := n.m.Checkpoint()
		dg := digest(snap)
		digests[dg] = true
		p.event("%s  clock %s", n.name, clock)
		p.event("%s  %d keys, digest %s: %s", n.name, len(snap), dg, describe(snap, slices.Sorted(nonBulk(snap))...))
		if v := snap["color"]; v != winner {
			bad = append(bad, fmt.Sprintf("%s has color=%v, want %s", n.name, v, winner))
		}
	}
	if len(digests) != 1 || len(bad) > 0 {
		return fmt.Errorf("%w: %d different snapshots %s", errNotConverged, len(digests), strings.Join(bad, "; "))
	}
	p.event("equal everywhere; color is %q on every replica", winner)

	// 8. Traffic.
	p.step("Bytes carried over TCP (frames included): before the cut | after the heal")
	for _, l := range []*link{ab, bc} {
		for i, dir := range [2]string{l.left.name + "->" + l.right.name, l.right.name + "->" + l.left.name} {
			before, after := l.sent(0, i), l.sent(1, i)
			p.event("%s  %8d B %6d updates | %8d B %6d updates", dir,
				before.BytesOut, before.UpdatesOut, after.BytesOut, after.UpdatesOut)
		}
	}

	// The result is the partition story's; the crash step adds a replica
	// and keys of its own.
	result := fmt.Sprintf("converged: 3 replicas, %d keys each, equal clocks, %s after the heal\n", cn.m.Len(), ms(d))
	if o.crash {
		if err := crashStep(ctx, p, c, o); err != nil {
			return err
		}
	}
	p.result("%s", result)
	return nil
}

// printer writes the story: numbered steps and one indented line per event.
// With quiet set it prints only the result.
type printer struct {
	w     io.Writer
	quiet bool
	n     int
}

func (p *printer) printf(format string, args ...any) {
	if !p.quiet {
		fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) step(title string) {
	p.n++
	p.printf("\n%d. %s\n", p.n, title)
}

func (p *printer) event(format string, args ...any) {
	p.printf("   "+format+"\n", args...)
}

func (p *printer) result(format string, args ...any) {
	if !p.quiet {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, format, args...)
}

// cluster owns the demo's replicas and links, and closes them all.
type cluster struct {
	timeout time.Duration
	nodes   []*replica
	links   []*link
	notify  chan struct{} // capacity 1: some replica changed
}

// replica is one replica and the watch that reports its changes to the cluster.
type replica struct {
	name   string
	m      *model.Model
	cancel func() // stops the watch
}

func (c *cluster) addNode(name string) (*replica, error) {
	m, err := model.New(name, nil)
	if err != nil {
		return nil, err
	}
	n := &replica{name: name, m: m}
	n.cancel = m.Watch(func(model.Change) {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	})
	c.nodes = append(c.nodes, n)
	return n, nil
}

func (n *replica) set(p *printer, key string, value any) error {
	if err := n.m.Set(key, value); err != nil {
		return err
	}
	p.event("%s  set %s = %s", n.name, key, fmtValue(value))
	return nil
}

func (n *replica) del(p *printer, key string) error {
	if err := n.m.Delete(key); err != nil {
		return err
	}
	p.event("%s  delete %s", n.name, key)
	return nil
}

// write sets key to value on n, as set does, and returns the update it
// made. Nothing else may be applied to n meanwhile: the update is what n's
// history gained.
func (n *replica) write(p *printer, key string, value any) (scuttlebutt.Update, error) {
	before := n.m.Clock()
	if err := n.set(p, key, value); err != nil {
		return scuttlebutt.Update{}, err
	}
	h := n.m.History(before)
	if len(h) != 1 {
		return scuttlebutt.Update{}, fmt.Errorf("%s: set %s made %d updates, want 1: something else was applied meanwhile", n.name, key, len(h))
	}
	return h[0], nil
}

// describe formats the given keys of n as k=v, with k=- for a missing key.
func (n *replica) describe(keys ...string) string {
	snap := make(map[string]any, len(keys))
	for _, k := range keys {
		if v, ok := n.m.Get(k); ok {
			snap[k] = v
		}
	}
	return describe(snap, keys...)
}

// describe formats the given keys of snap as k=v, with k=- for a missing
// key.
func describe(snap map[string]any, keys ...string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, ok := snap[k]
		if !ok {
			parts[i] = k + "=-"
			continue
		}
		parts[i] = k + "=" + fmtValue(v)
	}
	return strings.Join(parts, " ")
}

// waitConverged waits until every replica's clock is equal, and returns the
// time since start. It wakes on every change a replica applies, and polls
// every millisecond for the changes that move only a clock.
func (c *cluster) waitConverged(ctx context.Context, start time.Time) (time.Duration, error) {
	deadline := time.NewTimer(c.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		clocks := make([]vclock.Clock, len(c.nodes))
		equal := true
		for i, n := range c.nodes {
			clocks[i] = n.m.Clock()
			equal = equal && clocks[i].Compare(clocks[0]) == vclock.Equal
		}
		if equal {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline.C:
			var b strings.Builder
			for i, n := range c.nodes {
				fmt.Fprintf(&b, " %s%s", n.name, clocks[i])
			}
			return 0, fmt.Errorf("%w within %s: clocks%s", errNotConverged, c.timeout, b.String())
		case <-c.notify:
		case <-tick.C:
		}
	}
}

func (c *cluster) addLink(left, right *replica) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{
		name: left.name + "-" + right.name, left: left, right: right, timeout: c.timeout,
		ln: ln, accepted: make(chan net.Conn), quit: make(chan struct{}), acceptDone: make(chan struct{}),
	}
	go l.acceptLoop()
	c.links = append(c.links, l)
	return l, nil
}

// close cuts every link, closes every listener, stops every watch, and
// returns the first error a session ended with on its own.
func (c *cluster) close() error {
	var errs []error
	for _, l := range c.links {
		errs = append(errs, l.close())
	}
	for _, n := range c.nodes {
		n.cancel()
	}
	return errors.Join(errs...)
}

// link is one TCP link between two replicas: its own listener, on which the
// right replica accepts what the left one dials, and the sessions run over
// it so far.
type link struct {
	name        string
	left, right *replica
	timeout     time.Duration

	ln         net.Listener
	accepted   chan net.Conn
	quit       chan struct{} // closed by close: stop accepting
	acceptDone chan struct{} // closed when acceptLoop returns

	cur      *session   // the running session, nil when cut
	sessions []*session // every session, in order
}

// session is one connection of a link: a stream.Conn at each end.
type session struct {
	cancel context.CancelFunc
	conns  [2]*stream.Conn // [0] the left replica's end, [1] the right's
	errs   [2]error        // what each Run returned, once done is closed
	done   chan struct{}   // closed when both Runs have returned
}

func (l *link) acceptLoop() {
	defer close(l.acceptDone)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			return // the listener is closed
		}
		select {
		case l.accepted <- nc:
		case <-l.quit:
			nc.Close()
			return
		}
	}
}

// connect dials the link's listener, serves both replicas over the
// connection, and waits until both ends are synced.
func (l *link) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: l.timeout}
	dc, err := d.DialContext(ctx, "tcp", l.ln.Addr().String())
	if err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	var ac net.Conn
	select {
	case ac = <-l.accepted:
	case <-ctx.Done():
		dc.Close()
		return ctx.Err()
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &session{cancel: cancel, done: make(chan struct{})}
	s.conns[0] = stream.NewConn(l.left.m, dc, nil)
	s.conns[1] = stream.NewConn(l.right.m, ac, nil)
	var wg sync.WaitGroup
	for i, sc := range s.conns {
		wg.Go(func() { s.errs[i] = sc.Run(sctx) })
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	l.cur = s
	l.sessions = append(l.sessions, s)

	timeout := time.NewTimer(l.timeout)
	defer timeout.Stop()
	for _, sc := range s.conns {
		select {
		case <-sc.Synced():
		case <-s.done:
			return fmt.Errorf("%s: session ended before the sync: %w", l.name, errors.Join(s.errs[:]...))
		case <-timeout.C:
			return fmt.Errorf("%s: not synced within %s", l.name, l.timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// cut ends the running session, if any, and waits for both ends to stop. It
// returns the error the session ended with if it ended on its own before the
// cut; what a cut itself makes the ends report is not an error.
func (l *link) cut() error {
	s := l.cur
	if s == nil {
		return nil
	}
	l.cur = nil
	var err error
	select {
	case <-s.done:
		if err = errors.Join(s.errs[:]...); err != nil {
			err = fmt.Errorf("%s: session failed: %w", l.name, err)
		}
	default:
	}
	s.cancel()
	<-s.done
	return err
}

// close cuts the link and closes its listener, and waits for its accept
// loop to return.
func (l *link) close() error {
	err := l.cut()
	close(l.quit)
	l.ln.Close()
	<-l.acceptDone
	return err
}

// sent returns what end i (0 left, 1 right) of session k sent, or zeros if
// there is no such session.
func (l *link) sent(k, i int) stream.Stats {
	if k >= len(l.sessions) {
		return stream.Stats{}
	}
	return l.sessions[k].conns[i].Stats()
}

// bulkKey names the i-th of n bulk keys, zero-padded so they sort.
func bulkKey(i, n int) string {
	return fmt.Sprintf("key/%0*d", len(fmt.Sprint(max(n-1, 0))), i)
}

func keyRange(from, to, n int) string {
	if to-from == 1 {
		return bulkKey(from, n)
	}
	return bulkKey(from, n) + ".." + bulkKey(to-1, n)
}

// nonBulk yields the keys of snap that are not bulk keys.
func nonBulk(snap map[string]any) iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range snap {
			if !strings.HasPrefix(k, "key/") && !yield(k) {
				return
			}
		}
	}
}

// digest fingerprints a snapshot: the first 8 hex digits of the SHA-256 of
// its sorted key=value lines.
func digest(snap map[string]any) string {
	h := sha256.New()
	keys := make([]string, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%s\n", k, fmtValue(snap[k]))
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:4])
}

func fmtValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// ms formats d in milliseconds with one decimal.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/scuttle-go/scuttle/stream"
)

// link is one replication connection to a peer, carrying a stream.Mux with
// every document of the node.
type link struct {
	peer   string
	dialed bool // we dialled; else the peer did
	remote string
	since  time.Time
	conn   *countConn
	mux    *stream.Mux
	cancel context.CancelFunc
}

// reconcile makes the links follow membership: it starts a dialer for each
// live member the link policy pairs us with and that we must dial (the
// smaller id dials), stops the dialers of the others, and drops accepted
// links from members that left or failed. A leaving node drops everything.
func (n *Node) reconcile() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	want := make(map[string]bool)
	if !n.leaving {
		live := n.liveLocked()
		if i, ok := slices.BinarySearch(live, n.id); ok {
			epoch := n.cfg.Now().UnixNano() / int64(n.cfg.RelinkInterval)
			for j, p := range live {
				if p > n.id && n.members[p].Addr != "" && n.policy.linked(live, i, j, epoch) {
					want[p] = true
				}
			}
		}
	}
	for p, cancel := range n.dialers {
		if !want[p] {
			cancel()
			delete(n.dialers, p)
		}
	}
	for p := range want {
		if n.dialers[p] == nil {
			ctx, cancel := context.WithCancel(n.ctx)
			n.dialers[p] = cancel
			n.wg.Add(1)
			go n.dialLoop(ctx, p)
		}
	}
	for p, l := range n.links {
		m := n.members[p]
		gone := m != nil && (m.State == Left || m.State == Failed)
		if n.leaving || (!l.dialed && gone) {
			l.cancel()
		}
	}
	// Lock tables follow the live members.
	var setters []memberSetter
	if members := n.lockMembersLocked(); !n.leaving && !slices.Equal(members, n.lockSet) {
		n.lockSet = members
		for _, d := range n.docs {
			if ms, ok := d.doc.(memberSetter); ok {
				setters = append(setters, ms)
			}
		}
	}
	n.mu.Unlock()
	for _, ms := range setters {
		n.setMembers(ms)
	}
}

// lockMembers returns the member set of lock tables: the live members,
// this node always among them.
func (n *Node) lockMembers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lockMembersLocked()
}

func (n *Node) lockMembersLocked() []string {
	live := n.liveLocked()
	if _, ok := slices.BinarySearch(live, n.id); !ok {
		live = append(live, n.id)
		slices.Sort(live)
	}
	return live
}

// setMembers hands a lock table the current member set.
func (n *Node) setMembers(ms memberSetter) {
	n.mu.Lock()
	leaving := n.leaving
	members := n.lockMembersLocked()
	n.mu.Unlock()
	if leaving {
		return
	}
	if err := ms.SetMembers(members); err != nil {
		n.log.Error("updating a lock table's members", "members", members, "err", err)
	}
}

// liveLocked returns the sorted ids of the live members, this node
// included. n.mu is held.
func (n *Node) liveLocked() []string {
	live := make([]string, 0, len(n.members))
	for id, m := range n.members {
		if m.State == Alive {
			live = append(live, id)
		}
	}
	slices.Sort(live)
	return live
}

// backoff returns how long to wait after the failures-th consecutive
// failure (counting from 0): a random time in [0, min(max, base*2^n)),
// "full jitter".
func (n *Node) backoff(failures int) time.Duration {
	ceil := n.cfg.ReconnectMax
	if failures < 32 {
		ceil = min(ceil, n.cfg.ReconnectBase<<failures)
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil)
}

// dialLoop keeps a link to peer until ctx ends: it dials the peer's
// current address, runs the session, and after a failure or the end of a
// session waits with backoff before dialling again.
func (n *Node) dialLoop(ctx context.Context, peer string) {
	defer n.wg.Done()
	failures := 0
	for ctx.Err() == nil {
		n.mu.Lock()
		addr := ""
		if m := n.members[peer]; m != nil {
			addr = m.Addr
		}
		n.mu.Unlock()
		if addr != "" {
			start := time.Now()
			up, err := n.dial(ctx, peer, addr)
			if ctx.Err() != nil {
				return
			}
			if up && time.Since(start) >= n.cfg.ReconnectMax {
				failures = 0
			}
			n.log.Debug("link to peer ended", "peer", peer, "addr", addr, "was_up", up, "err", err)
		}
		if !sleepCtx(ctx, n.backoff(failures)) {
			return
		}
		failures++
	}
}

// dial connects to peer at addr, authenticates, and runs the session until
// it ends. up reports whether the session started.
func (n *Node) dial(ctx context.Context, peer, addr string) (up bool, err error) {
	d := net.Dialer{Timeout: n.cfg.DialTimeout}
	n.dials.Add(1)
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		n.dialFailures.Add(1)
		return false, err
	}
	raw := &countConn{Conn: c}
	conn, _, err := n.secure(ctx, raw, true, peer)
	if err != nil {
		n.dialFailures.Add(1)
		n.handshakeFailed(err, peer, addr)
		return false, err
	}
	return true, n.session(ctx, raw, conn, peer, true)
}

// acceptLoop accepts replication connections until the listener closes.
func (n *Node) acceptLoop() {
	defer n.wg.Done()
	failures := 0
	for {
		c, err := n.ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, most likely: wait rather than spin.
			n.log.Warn("accept failed", "err", err)
			if !sleepCtx(n.ctx, n.backoff(failures)) {
				return
			}
			failures++
			continue
		}
		failures = 0
		n.accepted.Add(1)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.serveAccepted(c)
		}()
	}
}

func (n *Node) serveAccepted(c net.Conn) {
	n.mu.Lock()
	leaving := n.leaving
	n.mu.Unlock()
	if leaving {
		c.Close()
		return
	}
	raw := &countConn{Conn: c}
	conn, peer, err := n.secure(n.ctx, raw, false, "")
	if err != nil {
		n.handshakeFailed(err, "", c.RemoteAddr().String())
		return
	}
	if err := n.session(n.ctx, raw, conn, peer, false); err != nil {
		n.log.Debug("link from peer ended", "peer", peer, "err", err)
	}
}

// handshakeFailed counts and logs a connection refused in the handshake.
func (n *Node) handshakeFailed(err error, peer, addr string) {
	switch {
	case n.ctx.Err() != nil || errors.Is(err, context.Canceled):
	case errors.Is(err, ErrAuth):
		n.refused.Add(1)
		n.log.Warn("peer refused: authentication failed", "peer", peer, "addr", addr, "err", err)
	default:
		n.log.Info("handshake failed", "peer", peer, "addr", addr, "err", err)
	}
}

// session serves every document to peer over conn until ctx ends or the
// connection fails. A newer session with the same peer replaces this one:
// the peer redialled, so the old connection is dead or dying.
func (n *Node) session(ctx context.Context, raw *countConn, conn net.Conn, peer string, dialed bool) error {
	mux, err := stream.NewMux(conn, dialed, &stream.MuxOptions{
		KeepAliveInterval: n.cfg.KeepAliveInterval,
		OnError: func(doc string, err error) {
			n.log.Warn("document stream failed", "peer", peer, "doc", doc, "err", err)
		},
	})
	if err != nil {
		conn.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &link{peer: peer, dialed: dialed, remote: raw.RemoteAddr().String(), since: n.cfg.Now(), conn: raw, mux: mux, cancel: cancel}
	n.mu.Lock()
	if n.closed || n.leaving {
		n.mu.Unlock()
		conn.Close()
		return ErrLeft
	}
	if old := n.links[peer]; old != nil {
		old.cancel()
	}
	n.links[peer] = l
	for _, d := range n.docs {
		mux.Add(d.stream(), d.doc)
	}
	mux.Handle(rpcService, n.serveRPC)
	n.mu.Unlock()
	n.log.Info("link up", "peer", peer, "remote", l.remote, "dialed", dialed)
	err = mux.Run(ctx)
	conn.Close()
	if serr := sealError(conn); serr != nil {
		// The session only saw its connection end: say why.
		err = serr
		n.log.Warn("link broken: a record failed authentication", "peer", peer, "remote", l.remote, "err", serr)
	}
	n.mu.Lock()
	if n.links[peer] == l {
		delete(n.links, peer)
	}
	n.mu.Unlock()
	select {
	case n.ended <- struct{}{}:
	default:
	}
	n.log.Info("link down", "peer", peer, "err", err)
	return err
}

package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/scuttle-go/scuttle/model"
)

// Ready reports whether the node is ready to serve: err is nil once the
// node has joined the cluster (if Config.Join named seeds), opened the
// documents its catalog names, and finished a first sync with a peer
// (or found no live peer to sync with). The first sync, once done, stays
// done: a link that drops later does not make the node unready, since its
// documents stay readable and writable. A node that is leaving or closed
// is not ready. err says what is missing. Safe for concurrent use.
func (n *Node) Ready() (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.leaving:
		return ErrLeft
	case len(n.cfg.Join) > 0 && !n.joined.Load():
		return fmt.Errorf("node: not ready: joining %v", n.cfg.Join)
	case n.synced.Load():
		return nil
	}
	peers := 0
	for id, m := range n.members {
		if id != n.id && m.State == Alive {
			peers++
		}
	}
	synced := peers == 0
	for _, l := range n.links {
		if synced = synced || linkSynced(l); synced {
			break
		}
	}
	if !synced {
		return fmt.Errorf("node: not ready: no first sync yet with any of %d live peers", peers)
	}
	// Only now, after the sync: a catalog read before it may miss the
	// names the sync brought, which the link's streams do not list yet.
	if missing := n.catalogMissingLocked(); missing != "" {
		return fmt.Errorf("node: not ready: document %q of the catalog not opened", missing)
	}
	n.synced.Store(true)
	return nil
}

// linkSynced reports whether every document stream on l has exchanged
// its history with the peer.
func linkSynced(l *link) bool {
	names := l.mux.Names()
	if len(names) == 0 {
		return false
	}
	for _, name := range names {
		c := l.mux.Conn(name)
		if c == nil {
			return false
		}
		select {
		case <-c.Synced():
		default:
			return false
		}
	}
	return true
}

// catalogMissingLocked returns a name the catalog lists that the node has
// not opened, "" if none (names it cannot honour, which ensureCatalog
// logged, do not count). n.mu is held.
func (n *Node) catalogMissingLocked() string {
	cat := n.catalog.doc.(*model.Model)
	for _, name := range cat.Keys() {
		if n.docs[name] != nil || n.warned[name] {
			continue
		}
		if v, ok := cat.Get(name); ok {
			if e, err := parseEntry(v); err == nil && e.deleted() {
				continue
			}
		}
		return name
	}
	return ""
}

// ForceLeave removes a member that failed, or is leaving, from the
// cluster as this node and every live member it can reach see it: it is
// dropped from Status at once, as a reaped member is, instead of after
// Config.ReapAfter. Members that are alive cannot be forced out (stop them
// first, or let them Leave): ErrMemberAlive. An id the node does not know
// is ErrUnknownMember. A forced member that comes back joins again as a
// new member would.
func (n *Node) ForceLeave(id string) error {
	n.mu.Lock()
	switch m := n.members[id]; {
	case n.closed:
		n.mu.Unlock()
		return ErrClosed
	case id == n.id:
		n.mu.Unlock()
		return fmt.Errorf("%w: %q is this node: use Leave", ErrMemberAlive, id)
	case m == nil:
		n.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownMember, id)
	case m.State == Alive:
		n.mu.Unlock()
		return fmt.Errorf("%w: %q answers the failure detector: stop it first", ErrMemberAlive, id)
	}
	delete(n.members, id)
	n.mu.Unlock()
	n.log.Info("member forced out", "member", id)
	n.announce(leaveNotice{Leaving: id, Force: true}, n.cfg.DialTimeout)
	n.poke()
	return nil
}

// reapMembers forgets the members that failed or left more than
// Config.ReapAfter ago: they leave Status (lock tables already count only
// live members). A reaped member that comes back is recorded anew.
func (n *Node) reapMembers() {
	now := n.cfg.Now()
	n.mu.Lock()
	var reaped []string
	for id, m := range n.members {
		if (m.State == Left || m.State == Failed) && now.Sub(m.Since) >= n.cfg.ReapAfter {
			delete(n.members, id)
			reaped = append(reaped, id)
		}
	}
	for id, at := range n.forced {
		if now.Sub(at) >= n.cfg.ReapAfter {
			delete(n.forced, id)
		}
	}
	n.mu.Unlock()
	slices.Sort(reaped)
	for _, id := range reaped {
		n.log.Info("member reaped", "member", id, "after", n.cfg.ReapAfter)
	}
}

// reapPeriod is how often manage looks for members to reap.
func (n *Node) reapPeriod() time.Duration {
	return min(max(n.cfg.ReapAfter/4, 10*time.Millisecond), time.Minute)
}

// alivePeers counts the members other than this node that are alive, in
// this node's view (Leaving ones are on their way out).
func (n *Node) alivePeers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for id, m := range n.members {
		if id != n.id && m.State == Alive {
			k++
		}
	}
	return k
}

// leaveMemberlist runs memberlist's Leave, which broadcasts the leave and
// waits until it has gone out in gossip or wait has passed. It returns
// early, and without an error, once no other member is alive: peers that
// left meanwhile (a whole cluster stopping at once) take no gossip, so
// the broadcast never goes out, and nobody is left to hear it. memberlist's
// Leave goes on waiting on its own goroutine until wait has passed (it
// cannot be interrupted); Close need not wait for it.
func (n *Node) leaveMemberlist(wait time.Duration) error {
	if n.alivePeers() == 0 {
		wait = time.Millisecond
	}
	done, started := make(chan error, 1), make(chan struct{})
	go func() {
		defer func() {
			// memberlist panics in a Leave that begins after Shutdown:
			// Close may come first once this function has returned.
			if r := recover(); r != nil {
				done <- fmt.Errorf("memberlist: %v", r)
			}
		}()
		close(started)
		done <- n.ml.Leave(wait)
	}()
	<-started
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && n.alivePeers() == 0 {
				err = nil // nobody to tell: the queued message goes nowhere
			}
			return err
		case <-tick.C:
			if n.alivePeers() == 0 {
				return nil
			}
		}
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/rpc"
)

// registryName is the node's own document that says who serves which rpc
// method: keys "method/nodeid", values {"idempotent": bool}. Every member
// holds it, so every member knows where to send a call. Like the catalog
// it is not a user document (names starting with "_" are reserved), and
// it keeps no log: a restarted node registers its handlers again.
const registryName = "_rpc"

// rpcService is the stream.Mux service of the rpc calls between members.
const rpcService = "rpc"

type handler struct {
	m  rpc.Method
	fn rpc.Handler
}

// Handle registers fn under name on this node and, through the registry,
// in the whole cluster: a Call of name from any member may run it. It is
// not idempotent: a call whose server dies before answering is not tried
// elsewhere. Handle panics as rpc.Server.Handle does for a bad name or a
// nil fn.
func (n *Node) Handle(name string, fn rpc.Handler) error {
	return n.HandleMethod(rpc.Method{Name: name}, fn)
}

// HandleMethod registers fn under m.Name as Handle does, with m's options:
// a call of an idempotent method whose server dies before answering is
// tried on another member that serves it. It returns ErrClosed after
// Close.
func (n *Node) HandleMethod(m rpc.Method, fn rpc.Handler) error {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	n.rpcSrv.HandleMethod(m, fn) // panics on a bad name or nil fn
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.rpcSrv.Remove(m.Name)
		return ErrClosed
	}
	n.handlers[m.Name] = handler{m: m, fn: fn}
	n.mu.Unlock()
	return n.registryModel().Set(registryKey(m.Name, n.id), registryValue(m))
}

// registryKey is the registry's key for the handler of method on node id.
func registryKey(method, id string) string { return method + "/" + id }

// parseRegistryKey splits a registry key into a method and a node id,
// which has no "/".
func parseRegistryKey(k string) (method, id string, ok bool) {
	i := strings.LastIndexByte(k, '/')
	if i <= 0 || i == len(k)-1 {
		return "", "", false
	}
	return k[:i], k[i+1:], true
}

// registryValue is the registry's value for a handler of m.
func registryValue(m rpc.Method) map[string]any {
	return map[string]any{"idempotent": m.Idempotent}
}

// Unhandle removes the handler of name from this node and the registry.
// Calls already running go on.
func (n *Node) Unhandle(name string) error {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	n.rpcSrv.Remove(name)
	n.mu.Lock()
	_, ok := n.handlers[name]
	delete(n.handlers, name)
	n.mu.Unlock()
	if !ok {
		return nil
	}
	return n.registryModel().Delete(registryKey(name, n.id))
}

// Methods returns the methods this node serves.
func (n *Node) Methods() []rpc.Method { return n.rpcSrv.Methods() }

func (n *Node) registryModel() *model.Model { return n.registry.doc.(*model.Model) }

// registered returns the registry's entries: for each method, the ids of
// the members that registered it, sorted.
func (n *Node) registered() map[string][]string {
	out := make(map[string][]string)
	for _, k := range n.registryModel().Keys() {
		if method, id, ok := parseRegistryKey(k); ok {
			out[method] = append(out[method], id)
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// server is one member that serves a method, as the registry says.
type server struct {
	id         string
	idempotent bool
}

// servers returns the live members the registry lists for name: this node
// first if it serves name, then the others it has a link to, in random
// order so that calls spread.
func (n *Node) servers(name string) []server {
	reg := n.registryModel()
	prefix := name + "/"
	var self *server
	var peers []server
	n.mu.Lock()
	_, local := n.handlers[name]
	if local {
		self = &server{id: n.id, idempotent: n.handlers[name].m.Idempotent}
	}
	n.mu.Unlock()
	for _, k := range reg.Keys() {
		id, ok := strings.CutPrefix(k, prefix)
		if !ok || strings.Contains(id, "/") || id == n.id {
			continue
		}
		v, _ := reg.Get(k)
		idem, _ := v.(map[string]any)["idempotent"].(bool)
		n.mu.Lock()
		m, l := n.members[id], n.links[id]
		n.mu.Unlock()
		if m == nil || m.State != Alive || l == nil {
			continue
		}
		peers = append(peers, server{id: id, idempotent: idem})
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	if self != nil {
		peers = append([]server{*self}, peers...)
	}
	return peers
}

// Call calls the method name with args on a live member that serves it:
// this node first, in process, then a member it has a link to, over that
// link. Arguments and the result are values as in package rpc (an int
// reaches the handler as an int64). If the member dies before answering
// and the method is idempotent, the call is tried on the next member that
// serves it; a call refused without running (the member no longer serves
// name, or was busy, or the link went before the call was sent) is tried
// on the next whatever the method. With no member to serve it, Call
// returns an error wrapping rpc.ErrUnknownMethod. A handler's error
// wraps a *rpc.RemoteError (and rpc.ErrRemote) with its message, whether
// the handler ran on this node or another; ctx's end returns ctx.Err().
func (n *Node) Call(ctx context.Context, name string, args ...any) (result any, err error) {
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	var last error
	for _, s := range n.servers(name) {
		if s.id == n.id {
			res, err, ran := n.callLocal(ctx, name, args)
			if ran {
				return res, err
			}
			last = err
			continue
		}
		res, err := n.callPeer(ctx, s.id, name, args)
		switch {
		case err == nil:
			return res, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, rpc.ErrUnknownMethod), errors.Is(err, rpc.ErrBusy), errors.Is(err, errNotSent):
			last = err
		case errors.Is(err, rpc.ErrClosed) && s.idempotent:
			n.log.Debug("rpc server went before answering: trying another", "method", name, "peer", s.id, "err", err)
			last = err
		default:
			return nil, err
		}
	}
	if last != nil {
		return nil, fmt.Errorf("node: call %q: no member could serve it: %w", name, last)
	}
	return nil, fmt.Errorf("node: call %q: no live member serves it: %w", name, rpc.ErrUnknownMethod)
}

// errNotSent means the call could not reach the member: no link, or the
// stream could not be opened. Nothing ran.
var errNotSent = errors.New("node: call not sent")

// callPeer calls name on peer over the link to it, through one client per
// peer, made on first use and dropped once its connection ends.
func (n *Node) callPeer(ctx context.Context, peer, name string, args []any) (any, error) {
	cl, err := n.rpcClient(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errNotSent, peer, err)
	}
	res, err := cl.Call(ctx, name, args...)
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("node: call %q on %s: %w", name, peer, err)
	}
	return res, err
}

func (n *Node) rpcClient(ctx context.Context, peer string) (*rpc.Client, error) {
	n.mu.Lock()
	cl, l := n.clients[peer], n.links[peer]
	n.mu.Unlock()
	if cl != nil {
		select {
		case <-cl.Done():
			n.dropClient(peer, cl)
		default:
			return cl, nil
		}
	}
	if l == nil {
		return nil, errors.New("no link")
	}
	rwc, err := l.mux.Open(ctx, rpcService)
	if err != nil {
		return nil, err
	}
	cl = rpc.NewClient(rwc, nil)
	n.mu.Lock()
	if old := n.clients[peer]; old != nil && n.links[peer] == l {
		select {
		case <-old.Done():
		default: // another caller was first: use its client
			n.mu.Unlock()
			cl.Close()
			return old, nil
		}
	}
	if n.closed {
		n.mu.Unlock()
		cl.Close()
		return nil, ErrClosed
	}
	n.clients[peer] = cl
	n.mu.Unlock()
	return cl, nil
}

func (n *Node) dropClient(peer string, cl *rpc.Client) {
	n.mu.Lock()
	if n.clients[peer] == cl {
		delete(n.clients, peer)
	}
	n.mu.Unlock()
	cl.Close()
}

// callLocal runs this node's handler of name through the node's
// rpc.Server, in process: its arguments, result and errors are those of
// a call over a link (rpc.Server.Invoke), and its error names this node
// as callPeer's names the peer. ran is false if the node has no such
// handler. The node's Close ends the call with ErrClosed.
func (n *Node) callLocal(ctx context.Context, name string, args []any) (result any, err error, ran bool) {
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(n.ctx, func() { cancel(ErrClosed) })
	defer stop()
	res, err := n.rpcSrv.Invoke(lctx, name, args...)
	switch {
	case err == nil:
		return res, nil, true
	case ctx.Err() != nil:
		return nil, ctx.Err(), true
	case lctx.Err() != nil:
		return nil, fmt.Errorf("node: call %q on %s: %w", name, n.id, ErrClosed), true
	}
	return nil, fmt.Errorf("node: call %q on %s: %w", name, n.id, err), !errors.Is(err, rpc.ErrUnknownMethod)
}

// serveRPC serves the calls a peer sends over one stream of a link.
func (n *Node) serveRPC(ctx context.Context, rwc io.ReadWriteCloser) {
	if err := n.rpcSrv.Serve(ctx, rwc); err != nil && ctx.Err() == nil {
		n.log.Debug("rpc stream ended", "err", err)
	}
}

// unregisterAll removes this node's handlers from the registry, so that
// members stop sending calls (Close).
func (n *Node) unregisterAll() {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	n.mu.Lock()
	names := make([]string, 0, len(n.handlers))
	for name := range n.handlers {
		names = append(names, name)
	}
	n.mu.Unlock()
	for _, name := range names {
		n.registryModel().Delete(registryKey(name, n.id))
	}
}

// closeClients closes the rpc clients of the node (Close).
func (n *Node) closeClients() {
	n.mu.Lock()
	cls := n.clients
	n.clients = map[string]*rpc.Client{}
	n.mu.Unlock()
	for _, cl := range cls {
		cl.Close()
	}
}

// tidyRegistry brings the registry in line with this node's handlers and
// with membership. manage calls it after every wakeup (membership
// changes, and any change of the registry, which pokes it) and every
// tick; only manage calls it.
//
//  1. This node's own entries are those of its handlers, until it leaves
//     or closes: an entry missing is set again (a member deleted it,
//     taking this node for gone; this node's write comes after the
//     delete it saw, so it wins everywhere), and an entry of a name it
//     does not serve is deleted (the registry of an earlier run of this
//     node, brought back by a peer), once per name in a run: a second
//     process with this node's id, an error that the node reports, does
//     not make the two undo each other's writes forever.
//  2. The live member with the smallest id deletes the entries of
//     members that are gone: failed or left, or unknown to it for
//     ReapAfter (reaped, forgotten, or never seen). One member does it,
//     so each entry is deleted once; while members disagree on who is
//     smallest, two may delete the same entry, and the deletes agree. It
//     deletes a member's entries once per failure or departure: entries
//     set again meanwhile come from the member itself, alive after all,
//     and calls skip it until it is alive here too.
func (n *Node) tidyRegistry() {
	others, active := n.tidyOwnEntries()
	gone := n.goneServers(others, active)
	reg := n.registryModel()
	for _, id := range gone {
		n.log.Info("rpc registry: deleting the entries of a member that is gone", "member", id, "entries", len(others[id]))
		for _, k := range others[id] {
			reg.Delete(k)
		}
	}
}

// tidyOwnEntries is step 1 of tidyRegistry. It returns the keys of the
// other members' entries by member, and whether this node is active
// (neither leaving nor closed).
func (n *Node) tidyOwnEntries() (others map[string][]string, active bool) {
	reg := n.registryModel()
	n.regMu.Lock()
	defer n.regMu.Unlock()
	n.mu.Lock()
	active = !n.leaving && !n.closed
	own := make(map[string]rpc.Method, len(n.handlers))
	for name, h := range n.handlers {
		own[name] = h.m
	}
	n.mu.Unlock()
	others = make(map[string][]string)
	for _, k := range reg.Keys() {
		method, id, ok := parseRegistryKey(k)
		if !ok {
			continue
		}
		if id != n.id {
			others[id] = append(others[id], k)
			continue
		}
		if _, serves := own[method]; active && !serves && !n.regCleaned[method] {
			n.log.Debug("rpc registry: deleting an entry of an earlier run", "method", method)
			n.regCleaned[method] = true
			reg.Delete(k)
		}
	}
	if !active {
		return others, false
	}
	for name, m := range own {
		k := registryKey(name, n.id)
		if _, ok := reg.Get(k); !ok {
			n.log.Debug("rpc registry: setting this node's entry again", "method", name)
			reg.Set(k, registryValue(m))
		}
	}
	return others, true
}

// goneServers is step 2 of tidyRegistry: it returns the members whose
// entries this node is to delete now, sorted, and records them as swept.
func (n *Node) goneServers(others map[string][]string, active bool) []string {
	now := n.cfg.Now()
	var gone []string
	n.mu.Lock()
	defer n.mu.Unlock()
	live := n.liveLocked()
	sweeper := active && len(live) > 0 && live[0] == n.id
	for id, sw := range n.regSweep {
		switch m := n.members[id]; {
		case m == nil:
			sw.swept = time.Time{} // reaped: from now on unknown
		case m.State == Alive || m.State == Leaving:
			sw = sweep{} // back, or going by itself
		default:
			sw.unknown = time.Time{}
		}
		if others[id] == nil {
			sw.unknown = time.Time{} // no entries to time
		}
		if sw == (sweep{}) {
			delete(n.regSweep, id)
		} else {
			n.regSweep[id] = sw
		}
	}
	for id := range others {
		m, sw := n.members[id], n.regSweep[id]
		switch {
		case m != nil && m.State == Alive, m != nil && m.State == Leaving:
			continue
		case m != nil: // failed or left
			if sw.swept.Equal(m.Since) {
				continue // swept already
			}
			sw.swept = m.Since
		case sw.unknown.IsZero():
			sw.unknown = now
			n.regSweep[id] = sw
			continue
		case now.Sub(sw.unknown) < n.cfg.ReapAfter:
			continue
		default:
			sw.unknown = time.Time{}
		}
		if sweeper {
			gone = append(gone, id)
			n.regSweep[id] = sw
		}
	}
	slices.Sort(gone)
	return gone
}

// sweep is what goneServers remembers of a member whose entries it has
// seen, between calls.
type sweep struct {
	// unknown is when this node first found entries of the member while
	// it knew no such member.
	unknown time.Time
	// swept is the Since of the failure or departure for which this node
	// deleted the member's entries.
	swept time.Time
}

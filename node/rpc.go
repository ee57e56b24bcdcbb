package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

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
	n.rpcSrv.HandleMethod(m, fn) // panics on a bad name or nil fn
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.rpcSrv.Remove(m.Name)
		return ErrClosed
	}
	n.handlers[m.Name] = handler{m: m, fn: fn}
	n.mu.Unlock()
	return n.registryModel().Set(m.Name+"/"+n.id, map[string]any{"idempotent": m.Idempotent})
}

// Unhandle removes the handler of name from this node and the registry.
// Calls already running go on.
func (n *Node) Unhandle(name string) error {
	n.rpcSrv.Remove(name)
	n.mu.Lock()
	_, ok := n.handlers[name]
	delete(n.handlers, name)
	n.mu.Unlock()
	if !ok {
		return nil
	}
	return n.registryModel().Delete(name + "/" + n.id)
}

// Methods returns the methods this node serves.
func (n *Node) Methods() []rpc.Method { return n.rpcSrv.Methods() }

func (n *Node) registryModel() *model.Model { return n.registry.doc.(*model.Model) }

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
	n.mu.Lock()
	names := make([]string, 0, len(n.handlers))
	for name := range n.handlers {
		names = append(names, name)
	}
	n.mu.Unlock()
	for _, name := range names {
		n.registryModel().Delete(name + "/" + n.id)
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

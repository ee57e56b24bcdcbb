package node

import (
	"slices"
	"strings"
	"time"

	"github.com/scuttle-go/scuttle/stream"
)

// Status is a snapshot of a node: membership, links, documents and
// counters. It is a copy; nothing in it changes afterwards.
type Status struct {
	ID         string `json:"id"`
	Addr       string `json:"addr"`        // replication address
	GossipAddr string `json:"gossip_addr"` // memberlist address
	// Members lists every member the node knows of, itself included,
	// sorted by id. Members that left or failed stay listed for Config.ReapAfter.
	Members []Member `json:"members"`
	// Links lists the replication links that are up, sorted by peer.
	Links []LinkStatus `json:"links"`
	// Documents lists the node's documents with their clocks.
	Documents []DocumentInfo `json:"documents"`
	// Methods is the rpc registry as this node holds it: for each method
	// registered in the cluster (Handle), the ids of the members that
	// registered a handler of it, sorted. Call picks among those that are
	// alive and linked; the entries of members that are gone are deleted
	// (see the package documentation).
	Methods  map[string][]string `json:"methods"`
	Counters Counters            `json:"counters"`
}

// Member is one member of the cluster as this node sees it.
type Member struct {
	ID    string      `json:"id"`
	State MemberState `json:"state"`
	// Addr is the member's replication address; GossipAddr its memberlist
	// address.
	Addr       string `json:"addr"`
	GossipAddr string `json:"gossip_addr"`
	// Since is when this node saw the member enter State (Config.Now).
	Since time.Time `json:"since"`
}

// LinkStatus is one replication link.
type LinkStatus struct {
	Peer   string `json:"peer"`
	Remote string `json:"remote"` // the connection's remote address
	Dialed bool   `json:"dialed"` // this node dialled; else the peer did
	// Since is when the link came up (Config.Now).
	Since time.Time `json:"since"`
	// BytesIn and BytesOut count what the connection carried, TLS, yamux
	// framing and keepalives included.
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// Documents has the counters of each document stream on the link that
	// is up, by document name ("_catalog" is the node's own catalog).
	Documents map[string]stream.Stats `json:"documents"`
}

// Counters count connection events since the node started.
type Counters struct {
	// Dials counts outgoing connection attempts, DialFailures those that
	// did not reach a session (refused, unreachable, failed handshake).
	Dials        int64 `json:"dials"`
	DialFailures int64 `json:"dial_failures"`
	// Accepted counts incoming connections.
	Accepted int64 `json:"accepted"`
	// AuthFailures counts connections, either way, closed because a side
	// failed authentication: a wrong or missing secret, a certificate from
	// another CA.
	AuthFailures int64 `json:"auth_failures"`
}

// Status returns a snapshot of the node.
func (n *Node) Status() Status {
	s := Status{
		ID:         n.id,
		Addr:       n.Addr(),
		GossipAddr: n.GossipAddr(),
		Documents:  n.Documents(),
		Methods:    n.registered(),
		Counters: Counters{
			Dials:        n.dials.Load(),
			DialFailures: n.dialFailures.Load(),
			Accepted:     n.accepted.Load(),
			AuthFailures: n.refused.Load(),
		},
	}
	n.mu.Lock()
	for _, m := range n.members {
		s.Members = append(s.Members, m.Member)
	}
	for _, l := range n.links {
		s.Links = append(s.Links, LinkStatus{
			Peer: l.peer, Remote: l.remote, Dialed: l.dialed, Since: l.since,
			BytesIn: l.conn.in.Load(), BytesOut: l.conn.out.Load(),
			Documents: l.mux.Stats(),
		})
	}
	n.mu.Unlock()
	slices.SortFunc(s.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Links, func(a, b LinkStatus) int { return strings.Compare(a.Peer, b.Peer) })
	return s
}

// Members returns the ids of the live members, this node included, sorted.
func (n *Node) Members() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.liveLocked()
}

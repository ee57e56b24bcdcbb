package node

import (
	"fmt"
	"net"

	"github.com/hashicorp/memberlist"
)

// Refusing a duplicate node id.
//
// memberlist names members by id, and a second process that joins with an
// id already in the cluster is not refused by memberlist itself: the two
// fight over the name ("Conflicting address"), links flap, and the live
// node loses its locks. The check runs in memberlist's MergeDelegate,
// which both sides of a join's push-pull call before merging anything
// (memberlist.Config.Merge, called with join set):
//
//   - The joiner sees the seed's member list. A live member with its own
//     id at another gossip address means the id is taken: it refuses the
//     merge, so it learns no member and no member learns of it; Join fails
//     and Fatal delivers an error wrapping ErrDuplicateID that names the
//     id and the address holding it.
//   - The seed sees the joiner's list. A member it holds alive under the
//     same id at another address, itself included, is refused too, so a
//     joiner of another version, or one that joined a partition first,
//     cannot replace a live member either. Only a node inside Join (the
//     joiner) takes the conflict as fatal: the seed, which sees the
//     joiner claim its own id, keeps running.
//
// Checking with the seed before joining (a request and an answer of our
// own) would leave a window between the check and the join, and would
// need a second protocol on the gossip port; the merge delegate is the
// join itself. A member with the id that failed or left, or one at the
// same address (a restart on the same ports), is not a conflict.
type conflictDelegate struct{ n *Node }

var _ memberlist.MergeDelegate = conflictDelegate{}

// NotifyMerge is called by memberlist from its goroutines, never
// concurrently for one join; it must not call memberlist.
func (d conflictDelegate) NotifyMerge(peers []*memberlist.Node) error {
	n := d.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range peers {
		if p.State != memberlist.StateAlive && p.State != memberlist.StateSuspect {
			continue
		}
		m := n.members[p.Name]
		if m == nil || (m.State != Alive && m.State != Leaving) || sameAddr(m.GossipAddr, p.Addr, p.Port) {
			continue
		}
		if p.Name == n.id && n.joining.Load() > 0 {
			// We are the joiner (inside Join): our id is taken by p. The
			// member holding it sees the same conflict from its side,
			// outside Join, and only refuses the merge.
			err := fmt.Errorf("%w: %s is held by the member at %s", ErrDuplicateID, p.Name, p.Address())
			n.idRefused.Store(true)
			select {
			case n.fatal <- err:
			default:
			}
			return err
		}
		// We are the seed, or the joiner holds a member we know at another
		// address: refuse the merge.
		err := fmt.Errorf("%w: refused a join claiming %s at %s; the member at %s holds it", ErrDuplicateID, p.Name, p.Address(), m.GossipAddr)
		n.log.Warn("refused a join: duplicate node id", "id", p.Name, "claimed_by", p.Address(), "held_by", m.GossipAddr)
		return err
	}
	return nil
}

// sameAddr reports whether addr ("host:port") is ip:port.
func sameAddr(addr string, ip net.IP, port uint16) bool {
	host, p, err := splitPort(addr)
	if err != nil {
		return false
	}
	h := net.ParseIP(host)
	return h != nil && h.Equal(ip) && p == int(port)
}

// Fatal delivers at most one error: the cluster refused this node, because
// another live member holds its id (ErrDuplicateID). The node stops
// joining; the caller should Close it and report the error. A node that
// never joins (no Config.Join) never gets one.
func (n *Node) Fatal() <-chan error { return n.fatal }

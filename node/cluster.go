package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberState is what the node knows of a member.
type MemberState string

// The member states. A member is live while Alive; Leaving, Left and
// Failed members get no links.
const (
	// Alive members answer the failure detector (memberlist counts its
	// suspects as alive until they are declared dead).
	Alive MemberState = "alive"
	// Leaving members have announced that they are leaving.
	Leaving MemberState = "leaving"
	// Left members left gracefully (Leave).
	Left MemberState = "left"
	// Failed members were declared dead by the failure detector, or left
	// without announcing it first.
	Failed MemberState = "failed"
)

// meta is the node metadata carried by memberlist, as JSON: small (the
// limit is memberlist.MetaMaxSize, 512 bytes) and readable in a dump.
type meta struct {
	// Addr is the replication address; a missing host means the member's
	// gossip address.
	Addr string `json:"addr"`
	// Leaving is set by Leave before the leave message, so that members
	// tell a graceful departure from a failure.
	Leaving bool `json:"leaving,omitempty"`
}

// member is the node's record of one member, itself included.
type member struct {
	Member
	leaving bool
}

// delegate is memberlist's view of the node: it hands out the metadata and
// hears membership events. memberlist calls it from its own goroutines,
// with its locks held: it must not block or call memberlist.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	m := meta{Addr: d.n.metaAddr, Leaving: d.n.leaving}
	d.n.mu.Unlock()
	b, _ := json.Marshal(m)
	if len(b) > limit {
		d.n.log.Error("node metadata over memberlist's limit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (d delegate) NotifyMsg(b []byte)              { d.n.leavingNotice(b) }
func (delegate) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (delegate) LocalState(bool) []byte            { return nil }
func (delegate) MergeRemoteState(_ []byte, _ bool) {}
func (d delegate) NotifyJoin(m *memberlist.Node)   { d.n.memberUp(m) }
func (d delegate) NotifyUpdate(m *memberlist.Node) { d.n.memberUp(m) }
func (d delegate) NotifyLeave(m *memberlist.Node)  { d.n.memberDown(m) }

// memberUp records a member that joined or changed its metadata.
func (n *Node) memberUp(m *memberlist.Node) {
	var md meta
	if err := json.Unmarshal(m.Meta, &md); err != nil && m.Name != n.id {
		n.log.Warn("member has unreadable metadata; no links to it", "member", m.Name, "err", err)
	}
	addr := ""
	if md.Addr != "" {
		host, port, err := net.SplitHostPort(md.Addr)
		if err == nil {
			if host == "" {
				host = m.Addr.String()
			}
			addr = net.JoinHostPort(host, port)
		}
	}
	state := Alive
	if md.Leaving {
		state = Leaving
	}
	n.mu.Lock()
	old := n.members[m.Name]
	rec := &member{Member: Member{ID: m.Name, State: state, Addr: addr, GossipAddr: m.Address(), Since: n.cfg.Now()}, leaving: md.Leaving}
	if old != nil && old.State == state {
		rec.Since = old.Since
	}
	n.members[m.Name] = rec
	n.mu.Unlock()
	if old == nil || old.State != state {
		n.log.Info("member "+string(state), "member", m.Name, "gossip", m.Address(), "addr", addr)
	}
	n.poke()
}

// leaveNotice is the message Leave sends every live member directly.
// UpdateNode's gossip of the leaving metadata reaches only a few members
// for sure (memberlist retransmits a broadcast a few times, then leaves the
// rest to push-pull, 30 s later), and memberlist's leave message, queued
// next, can overtake it: a member that hears of the leave first records a
// failure. The notice makes every member that can be reached know first.
//
// ForceLeave sends one with Force set for a member that failed: its
// receivers forget the member at once (a receiver that predates Force
// records it as left).
type leaveNotice struct {
	Leaving string `json:"leaving"`         // the id of the member leaving
	Force   bool   `json:"force,omitempty"` // forced out by another member
}

// announceLeave sends the leave notice to every live member, in parallel,
// each send bounded by memberlist's TCP timeout and all by timeout.
func (n *Node) announceLeave(timeout time.Duration) {
	n.announce(leaveNotice{Leaving: n.id}, timeout)
}

// announce sends a leave notice to every member this node records as
// alive or leaving, in parallel, each send bounded by memberlist's TCP
// timeout and all by timeout. The addresses come from the node's records:
// the *memberlist.Node values of Members are memberlist's own, which it
// updates under its lock while a send would read them.
func (n *Node) announce(notice leaveNotice, timeout time.Duration) {
	msg, _ := json.Marshal(notice)
	var targets []*memberlist.Node
	n.mu.Lock()
	for id, m := range n.members {
		if id == n.id || (m.State != Alive && m.State != Leaving) {
			continue
		}
		host, port, err := splitPort(m.GossipAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil {
			continue
		}
		targets = append(targets, &memberlist.Node{Name: id, Addr: ip, Port: uint16(port)})
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range targets {
		wg.Go(func() {
			if err := n.ml.SendReliable(m, msg); err != nil {
				n.log.Debug("leave notice not delivered", "member", m.Name, "err", err)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// leavingNotice records the member named by a leave notice as leaving, or
// as left if its departure was already recorded as a failure.
// memberlist calls it from its goroutines: it must not block.
func (n *Node) leavingNotice(b []byte) {
	var ln leaveNotice
	if json.Unmarshal(b, &ln) != nil || ln.Leaving == "" || ln.Leaving == n.id {
		return
	}
	if ln.Force {
		n.forgotten(ln.Leaving)
		return
	}
	n.mu.Lock()
	rec := n.members[ln.Leaving]
	var state MemberState
	switch {
	case rec == nil:
	case rec.State == Alive:
		state = Leaving
	case rec.State == Failed:
		// memberlist's leave message overtook the notice, which is
		// delivered over TCP and handled on another goroutine: only a
		// member that leaves sends one, so it left.
		state = Left
	}
	if state != "" {
		rec.State, rec.leaving, rec.Since = state, true, n.cfg.Now()
	}
	n.mu.Unlock()
	if state != "" {
		n.log.Info("member "+string(state), "member", ln.Leaving)
		n.poke()
	}
}

// forgotten forgets a member another member forced out. A member this
// node still sees alive (its failure detector has not caught up) is
// forgotten when it is declared dead, if that happens within ReapAfter.
// It must not block (memberlist's goroutines).
func (n *Node) forgotten(id string) {
	n.mu.Lock()
	rec := n.members[id]
	forget := rec != nil && rec.State != Alive
	if forget {
		delete(n.members, id)
	} else {
		n.forced[id] = n.cfg.Now()
	}
	n.mu.Unlock()
	if forget {
		n.log.Info("member forced out by a peer", "member", id)
		n.poke()
	}
}

// memberDown records a member that left or was declared dead.
func (n *Node) memberDown(m *memberlist.Node) {
	n.mu.Lock()
	if at, ok := n.forced[m.Name]; ok {
		delete(n.forced, m.Name)
		if n.cfg.Now().Sub(at) < n.cfg.ReapAfter {
			delete(n.members, m.Name)
			n.mu.Unlock()
			n.log.Info("member forced out by a peer", "member", m.Name)
			n.poke()
			return
		}
	}
	rec := n.members[m.Name]
	if rec == nil {
		rec = &member{Member: Member{ID: m.Name, GossipAddr: m.Address()}}
		n.members[m.Name] = rec
	}
	rec.State = Failed
	if rec.leaving {
		rec.State = Left
	}
	rec.Since = n.cfg.Now()
	state := rec.State
	n.mu.Unlock()
	n.log.Info("member "+string(state), "member", m.Name)
	n.poke()
}

// memberlistConfig assembles memberlist's configuration from the node's.
func (n *Node) memberlistConfig() (*memberlist.Config, error) {
	var mc memberlist.Config
	if n.cfg.Memberlist != nil {
		mc = *n.cfg.Memberlist
	} else {
		mc = *memberlist.DefaultLANConfig()
	}
	mc.Name = n.id
	host, port, err := splitPort(n.cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: GossipAddr: %w", ErrInvalidConfig, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", 0
	if a := n.cfg.GossipAdvertiseAddr; a != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitPort(a); err != nil {
			return nil, fmt.Errorf("%w: GossipAdvertiseAddr: %w", ErrInvalidConfig, err)
		}
	}
	mc.Delegate = delegate{n}
	mc.Events = delegate{n}
	mc.Merge = conflictDelegate{n}
	mc.LogOutput = nil
	mc.Logger = log.New(logWriter{n.log.With("component", "memberlist")}, "", 0)
	switch {
	case len(n.cfg.GossipKey) > 0:
		mc.SecretKey = n.cfg.GossipKey
	case len(n.cfg.Secret) > 0:
		mc.SecretKey = gossipKey(n.cfg.Secret)
	}
	if len(mc.SecretKey) > 0 {
		mc.Keyring = nil
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	return &mc, nil
}

// gossipKey derives memberlist's AES-256 key from the shared secret, so
// that the secret itself is never used as a cipher key.
func gossipKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("scuttle node v1 gossip key"))
	return m.Sum(nil)
}

func splitPort(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at the matching level, one record per line memberlist
// logs: memberlist's log.Logger calls Write once per message, and a
// message that spans lines (an error that wraps others) becomes one record
// whose message has its lines joined with "; ".
type logWriter struct{ log *slog.Logger }

// memberlistLevels maps memberlist's level prefixes to slog levels.
var memberlistLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

func (w logWriter) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(string(p))
	if msg != "" {
		w.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// parseMemberlistLine returns the level and message of one log message of
// memberlist: the level prefix and "memberlist: " removed, lines folded
// into one, blank lines dropped. A message without a prefix is Info.
func parseMemberlistLine(s string) (level slog.Level, msg string) {
	s = strings.TrimSpace(s)
	level = slog.LevelInfo
	for _, l := range memberlistLevels {
		if rest, ok := strings.CutPrefix(s, l.prefix); ok {
			level, s = l.level, strings.TrimSpace(rest)
			break
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	if strings.ContainsAny(s, "\r\n") {
		var parts []string
		for line := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if line = strings.TrimSpace(line); line != "" {
				parts = append(parts, line)
			}
		}
		s = strings.Join(parts, "; ")
	}
	return level, s
}

// linkPolicy decides which pairs of live members keep a replication link.
// It is a pure function of the sorted ids of the live members and the
// epoch, symmetric in the pair, so that the member with the smaller id can
// decide alone whether to dial: see the package documentation.
type linkPolicy struct {
	fullMesh int // clusters of at most this many members are a full mesh
	ring     int // ring distance within which members are linked
	random   int // extra random links per member, on average
}

// linked reports whether members[i] and members[j] (sorted, distinct) are
// linked in epoch.
func (p linkPolicy) linked(members []string, i, j int, epoch int64) bool {
	n := len(members)
	if n <= p.fullMesh {
		return true
	}
	d := (j - i + n) % n
	if min(d, n-d) <= p.ring {
		return true
	}
	if p.random <= 0 {
		return false
	}
	a, b := members[i], members[j]
	if b < a {
		a, b = b, a
	}
	h := fnv.New64a()
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(epoch))
	h.Write(e[:])
	h.Write([]byte(a))
	h.Write([]byte{0})
	h.Write([]byte(b))
	// Each of the n-1 possible partners is picked with probability
	// random/(n-1), for random extra links on average.
	return h.Sum64()%uint64(n-1) < uint64(p.random)
}

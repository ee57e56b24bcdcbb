package node

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/lock"
)

// Defaults of Config's fields.
const (
	// DefaultBindAddr and DefaultGossipAddr are on loopback: a node
	// reaches other machines only when told which interface to use, and
	// should then be given a Secret or TLS files (New warns without).
	DefaultBindAddr          = "127.0.0.1:7947"
	DefaultGossipAddr        = "127.0.0.1:7946"
	DefaultReconnectBase     = 100 * time.Millisecond
	DefaultReconnectMax      = 30 * time.Second
	DefaultDialTimeout       = 5 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultKeepAliveInterval = 10 * time.Second
	DefaultFullMeshSize      = 8
	DefaultRingLinks         = 2
	DefaultRandomLinks       = 2
	DefaultRelinkInterval    = 10 * time.Minute
	DefaultReapAfter         = time.Minute
	DefaultLeaveWait         = 2 * time.Second
	DefaultMaxDocuments      = 10000
	DefaultMaxOpenLogs       = 128
	// MinSecretSize is the shortest Config.Secret accepted, in bytes. The
	// handshake exposes MACs to an eavesdropper, who can test guesses of
	// the secret offline: it must be random, not a password.
	MinSecretSize = 16
)

// Config configures a Node. New copies it and never modifies the caller's;
// a nil *Config and every zero field mean the default.
type Config struct {
	// ID names the node: its memberlist name and the replica id of every
	// document it holds. It must be unique in the cluster and, with a
	// DataDir, the same across restarts (the logs belong to it). 1 to 128
	// bytes of [A-Za-z0-9._-], starting with a letter or digit. "" means
	// the id stored in DataDir, or a new random one (stored there, if there
	// is a DataDir).
	ID string

	// DataDir holds the node's state: its id, the catalog of documents and
	// one log per document (package filelog), so that a restarted node
	// gets back every document it held and catches up from its peers
	// with only what it missed. "" means memory only: a restart starts
	// empty and gets everything again from its peers. New creates it with
	// DirMode (0700) and the logs with filelog.FileMode (0600); an existing
	// directory or log open to group or others is tightened, with a
	// warning.
	DataDir string

	// FileLog configures the document logs under DataDir; nil means
	// filelog.DefaultConfig (every update fsynced before it is
	// acknowledged). Its Logger, if nil, is the node's.
	FileLog *filelog.Config

	// MaxDocuments caps the documents the node holds, of every type (its
	// own _catalog and _rpc do not count); 0 means DefaultMaxDocuments
	// (10,000). Creating one more is ErrTooManyDocuments, and a name the
	// catalog brings from a peer past the cap is not opened here (it is
	// logged once, and opened when deletions make room). Each document
	// costs its memory, a log file under DataDir, and a stream on every
	// link; give every member the same cap.
	MaxDocuments int

	// MaxOpenLogs bounds the document log files the node keeps open at
	// once (file descriptors); 0 means DefaultMaxOpenLogs (128). A log
	// past the bound closes its file, the least recently written first,
	// and reopens it at its next write (filelog.Files): a document
	// written to rarely costs no descriptor. The catalog's log stays open,
	// and its lock keeps a second process off DataDir. New lowers it, with
	// a warning, to a quarter of the process's open file limit
	// (RLIMIT_NOFILE, ulimit -n) if that is lower.
	MaxOpenLogs int

	// Emitter configures the node's emitters (retention); nil means
	// emitter's defaults. Its Now, if nil, is the node's.
	Emitter *emitter.Config

	// Lock configures the node's lock tables (leases, limits); nil means
	// lock's defaults. Members is ignored: the node sets it to the live
	// members of the cluster. Its Now, if nil, is the node's.
	Lock *lock.Config

	// BindAddr is the TCP address ("host:port") the node listens on for
	// replication links. "" means DefaultBindAddr (loopback, port 7947):
	// set it to an interface other machines reach, or 0.0.0.0:7947, for a
	// cluster of several machines. Port 0 picks a free port (tests).
	BindAddr string

	// AdvertiseAddr is the replication address peers dial, carried in the
	// node's memberlist metadata. "" means BindAddr's actual address, with
	// an unspecified host (0.0.0.0, ::) replaced by the address memberlist
	// advertises for gossip.
	AdvertiseAddr string

	// GossipAddr is the address ("host:port", TCP and UDP) memberlist binds
	// to. "" means DefaultGossipAddr (loopback, port 7946): as for
	// BindAddr, set it for a cluster of several machines. Port 0 picks a
	// free port.
	GossipAddr string

	// GossipAdvertiseAddr is the gossip address other members use, when it
	// differs from GossipAddr (NAT). "" lets memberlist choose: GossipAddr,
	// or a private address of the machine when GossipAddr is unspecified.
	GossipAdvertiseAddr string

	// Join lists gossip addresses ("host:port") of members to join. The
	// node retries, with the reconnect backoff, until one answers. Empty
	// means the node starts a cluster of its own (others join it).
	Join []string

	// CertFile, KeyFile and CAFile turn on mutual TLS for replication
	// links: the node presents the certificate (PEM files) and accepts a
	// peer, in either direction, only if the peer's certificate chains to
	// a CA in CAFile and names the peer's node id: a subject alternative
	// name, DNS equal to the id ("web1") or URI "scuttle://web1". A peer
	// whose certificate names another id is refused (ErrAuth, with the
	// names it has), and New refuses a CertFile that does not name ID.
	// Host names are not checked. Use a CA dedicated to the cluster. All
	// three or none must be set.
	CertFile, KeyFile, CAFile string

	// Secret turns on shared-secret authentication of replication links:
	// a challenge-response handshake (HMAC-SHA256 over fresh nonces from
	// both sides), so the secret never crosses the wire and a recorded
	// handshake cannot be replayed. Everything after the handshake then
	// travels in AES-256-GCM records under keys derived for the session
	// from the secret and both sides' nonces (HKDF-SHA256), so that the
	// network can neither read nor alter a link undetected. It works with
	// or without TLS. At least MinSecretSize random bytes.
	Secret []byte

	// GossipKey encrypts and authenticates memberlist's gossip (AES-GCM,
	// 16, 24 or 32 bytes), so that outsiders can neither read membership
	// nor inject members. nil means a key derived from Secret if Secret is
	// set, and unencrypted gossip otherwise (TLS protects the replication
	// links, not the gossip: set GossipKey with TLS).
	GossipKey []byte

	// ReconnectBase and ReconnectMax shape the backoff between attempts to
	// dial a peer: the n-th consecutive failure waits a random time in
	// [0, min(ReconnectMax, ReconnectBase * 2^n)) ("full jitter", so that
	// peers that lost a link at once do not redial in lockstep). A link
	// that stayed up for ReconnectMax resets the count. 0 means
	// DefaultReconnectBase (100 ms) and DefaultReconnectMax (30 s). A
	// larger base costs slower recovery after a short outage; a larger max
	// costs slower recovery after a long one.
	ReconnectBase, ReconnectMax time.Duration

	// DialTimeout bounds one TCP connect; 0 means DefaultDialTimeout (5 s).
	DialTimeout time.Duration

	// HandshakeTimeout bounds the TLS and authentication handshake of a new
	// connection, both sides; 0 means DefaultHandshakeTimeout (10 s). A
	// peer that stalls a handshake holds a goroutine and a socket this long.
	HandshakeTimeout time.Duration

	// KeepAliveInterval is how often a link pings its peer (yamux); a peer
	// silent for about twice this is dropped and redialled. 0 means
	// DefaultKeepAliveInterval (10 s).
	KeepAliveInterval time.Duration

	// FullMeshSize is the largest cluster in which every member links to
	// every other; 0 means DefaultFullMeshSize (8). Above it, each member
	// links to the RingLinks members on either side of it on the ring of
	// live members sorted by id, and to about RandomLinks more, re-chosen
	// every RelinkInterval. See the package documentation.
	FullMeshSize int

	// RingLinks is the ring distance within which members are linked in a
	// large cluster: each member has 2*RingLinks ring neighbours. 0 means
	// DefaultRingLinks (2), which keeps the link graph connected even when
	// up to three members have failed and the failure detector has not yet
	// noticed.
	RingLinks int

	// RandomLinks is how many extra links, on average, each member has in
	// a large cluster, chosen at random, to shorten the paths an update
	// takes around the ring (from about n/(2*RingLinks) hops to about
	// log n). 0 means DefaultRandomLinks (2); negative means none.
	RandomLinks int

	// RelinkInterval is how often the random links of a large cluster are
	// re-chosen; 0 means DefaultRelinkInterval (10 min). Each change costs
	// a reconnect (a clock exchange per document, no history) on the links
	// that change.
	RelinkInterval time.Duration

	// ReapAfter is how long a member that failed or left stays in Status
	// (as failed or left) before the node forgets it; 0 means
	// DefaultReapAfter (1 min). Lock tables drop a member as soon as it is
	// not alive, whatever ReapAfter. A shorter time tidies Status sooner;
	// a longer one keeps a record of what went away. A reaped member that
	// comes back is recorded anew. ForceLeave forgets one at once.
	ReapAfter time.Duration

	// LeaveWait bounds how long Leave waits for memberlist's leave message
	// to go out in gossip; 0 means DefaultLeaveWait (2 s). Leave does not
	// wait at all when no other member is alive (a whole cluster stopping
	// at once): the members learn of the departure from the direct leave
	// notices, which Leave sends first. If the wait times out, members
	// that missed both notice and message mark the node failed instead of
	// left.
	LeaveWait time.Duration

	// Memberlist is the base memberlist configuration (timers of the
	// failure detector and gossip); nil means memberlist.DefaultLANConfig.
	// It is copied; the node sets its Name, bind and advertise addresses,
	// delegates, logger and (with GossipKey or Secret) SecretKey.
	Memberlist *memberlist.Config

	// Observer receives the timings the node measures, for metrics
	// (package api's Metrics is one); nil means none.
	Observer Observer

	// Logger receives the node's messages, memberlist's included. nil
	// means no logging.
	Logger *slog.Logger

	// Now is the wall clock of the documents' hybrid logical clocks and of
	// membership timestamps; nil means time.Now.
	Now func() time.Time
}

// Observer receives timings from a node, for metrics. Its methods are
// called concurrently, from the goroutines that sync logs and apply
// updates, and must not block.
type Observer interface {
	// ObserveFsync is called after each fsync of a document log with how
	// long it took (FileLog's OnSync, unless that is set).
	ObserveFsync(d time.Duration)
	// ObserveLag is called for each update from a peer applied to the
	// document called doc, with the time from the update's timestamp (its
	// writer's clock) to its apply here (Now): replication lag, clock
	// skew included; 0 if the writer's clock is ahead.
	ObserveLag(doc string, lag time.Duration)
}

// LockObserver is an Observer that also counts lost leases. A node checks
// its Observer for it with a type assertion. ObserveLockLost is called
// from the lock table's goroutine each time this node loses a lock of the
// table called table without releasing it (its lease ran out before a
// renewal was confirmed), after the node has logged it; it must not
// block.
type LockObserver interface {
	Observer
	ObserveLockLost(table string)
}

// DefaultConfig returns the defaults: listening on loopback on ports 7947
// (replication) and 7946 (gossip), memory only, no authentication,
// memberlist's LAN timers.
func DefaultConfig() *Config {
	return &Config{
		BindAddr:          DefaultBindAddr,
		GossipAddr:        DefaultGossipAddr,
		ReconnectBase:     DefaultReconnectBase,
		ReconnectMax:      DefaultReconnectMax,
		DialTimeout:       DefaultDialTimeout,
		HandshakeTimeout:  DefaultHandshakeTimeout,
		KeepAliveInterval: DefaultKeepAliveInterval,
		FullMeshSize:      DefaultFullMeshSize,
		RingLinks:         DefaultRingLinks,
		RandomLinks:       DefaultRandomLinks,
		RelinkInterval:    DefaultRelinkInterval,
		ReapAfter:         DefaultReapAfter,
		LeaveWait:         DefaultLeaveWait,
		MaxDocuments:      DefaultMaxDocuments,
		MaxOpenLogs:       DefaultMaxOpenLogs,
		Memberlist:        memberlist.DefaultLANConfig(),
		Logger:            slog.New(slog.DiscardHandler),
		Now:               time.Now,
	}
}

// withDefaults returns a copy of c (nil allowed) with zero fields set to
// their defaults, or an error naming the field that is out of range.
func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	out.Join = append([]string(nil), out.Join...)
	out.Secret = append([]byte(nil), out.Secret...)
	out.GossipKey = append([]byte(nil), out.GossipKey...)
	d := DefaultConfig()
	if out.BindAddr == "" {
		out.BindAddr = d.BindAddr
	}
	if out.GossipAddr == "" {
		out.GossipAddr = d.GossipAddr
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReconnectBase", &out.ReconnectBase, d.ReconnectBase},
		{"ReconnectMax", &out.ReconnectMax, d.ReconnectMax},
		{"DialTimeout", &out.DialTimeout, d.DialTimeout},
		{"HandshakeTimeout", &out.HandshakeTimeout, d.HandshakeTimeout},
		{"KeepAliveInterval", &out.KeepAliveInterval, d.KeepAliveInterval},
		{"RelinkInterval", &out.RelinkInterval, d.RelinkInterval},
		{"ReapAfter", &out.ReapAfter, d.ReapAfter},
		{"LeaveWait", &out.LeaveWait, d.LeaveWait},
	}
	for _, f := range durations {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0:
			return out, fmt.Errorf("%w: %s %v is negative", ErrInvalidConfig, f.name, *f.v)
		}
	}
	if out.ReconnectMax < out.ReconnectBase {
		return out, fmt.Errorf("%w: ReconnectMax %v is below ReconnectBase %v", ErrInvalidConfig, out.ReconnectMax, out.ReconnectBase)
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"FullMeshSize", &out.FullMeshSize, d.FullMeshSize},
		{"RingLinks", &out.RingLinks, d.RingLinks},
		{"MaxDocuments", &out.MaxDocuments, d.MaxDocuments},
		{"MaxOpenLogs", &out.MaxOpenLogs, d.MaxOpenLogs},
	}
	for _, f := range ints {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0:
			return out, fmt.Errorf("%w: %s %d is negative", ErrInvalidConfig, f.name, *f.v)
		}
	}
	switch {
	case out.RandomLinks == 0:
		out.RandomLinks = d.RandomLinks
	case out.RandomLinks < 0:
		out.RandomLinks = 0
	}
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	if out.Now == nil {
		out.Now = d.Now
	}
	if out.ID != "" {
		if err := checkName(out.ID); err != nil {
			return out, fmt.Errorf("%w: ID: %w", ErrInvalidConfig, err)
		}
	}
	for name, addr := range map[string]string{"BindAddr": out.BindAddr, "GossipAddr": out.GossipAddr, "AdvertiseAddr": out.AdvertiseAddr, "GossipAdvertiseAddr": out.GossipAdvertiseAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return out, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, name, err)
		}
	}
	if n := countSet(out.CertFile, out.KeyFile, out.CAFile); n != 0 && n != 3 {
		return out, fmt.Errorf("%w: CertFile, KeyFile and CAFile must be set together", ErrInvalidConfig)
	}
	if len(out.Secret) > 0 && len(out.Secret) < MinSecretSize {
		return out, fmt.Errorf("%w: Secret of %d bytes, want at least %d", ErrInvalidConfig, len(out.Secret), MinSecretSize)
	}
	switch len(out.GossipKey) {
	case 0, 16, 24, 32:
	default:
		return out, fmt.Errorf("%w: GossipKey of %d bytes, want 16, 24 or 32", ErrInvalidConfig, len(out.GossipKey))
	}
	return out, nil
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

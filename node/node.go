package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Node is one member of a scuttle cluster: it holds named documents,
// replicates them over links to other members, and tracks membership with
// memberlist. Create it with New, which starts it; stop it with Close,
// after Leave for a graceful departure.
//
// Methods are safe for concurrent use.
type Node struct {
	cfg    Config
	id     string
	inc    string // this start's incarnation, shared by every document
	log    *slog.Logger
	tls    *tls.Config
	policy linkPolicy

	ln       net.Listener
	ml       *memberlist.Memberlist
	metaAddr string // the replication address in our metadata; may lack a host
	catalog  *document
	registry *document   // who serves which rpc method (rpc.go)
	rpcSrv   *rpc.Server // this node's handlers, served on every link
	unwatch  func()

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node started
	kick   chan struct{}  // membership or catalog changed: reconcile
	ended  chan struct{}  // a link ended (capacity 1, for Leave)
	fatal  chan error     // the cluster refused the node (capacity 1)

	createMu sync.Mutex // serialises document creation and deletion, which do file I/O
	// regMu serialises the writes of this node's own registry entries
	// with the changes of handlers they follow (rpc.go).
	regMu sync.Mutex
	// regCleaned holds the names whose entry of an earlier run of this
	// node tidyRegistry deleted; regMu guards it.
	regCleaned map[string]bool

	files *filelog.Files // bounds the document logs' open files

	catMu   sync.Mutex          // guards pending, catAll and catLive
	pending map[string]struct{} // catalog entries changed since ensureCatalog last ran
	catAll  bool                // ensureCatalog must look at every entry
	catLive int                 // the catalog's live entries (not deleted)

	mu       sync.Mutex // guards the fields below
	docs     map[string]*document
	members  map[string]*member
	links    map[string]*link
	dialers  map[string]context.CancelFunc
	warned   map[string]bool        // catalog entries already warned about
	capped   map[string]bool        // catalog entries refused for MaxDocuments
	forced   map[string]time.Time   // members a peer forced out while alive here
	lockSet  []string               // the member set last handed to lock tables
	handlers map[string]handler     // this node's rpc handlers
	regSweep map[string]sweep       // members whose registry entries tidyRegistry watches
	clients  map[string]*rpc.Client // an rpc client per peer, made on first call
	leaving  bool
	closed   bool

	// docsChanged is closed when docs changes: see DocumentsChanged.
	// Guarded by mu.
	docsChanged chan struct{}

	dials, dialFailures, accepted, refused atomic.Int64
	idRefused                              atomic.Bool  // a seed's member holds our id
	joining                                atomic.Int32 // calls of memberlist's Join under way
	joined, synced                         atomic.Bool  // Ready's latches
}

// New starts a node: it opens (or creates) the node's state under
// cfg.DataDir, listens for replication links on cfg.BindAddr, starts
// memberlist on cfg.GossipAddr, and joins cfg.Join in the background. A nil
// cfg means DefaultConfig. The node runs until Close.
func New(cfg *Config) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tlsConf, err := loadTLS(c.CertFile, c.KeyFile, c.CAFile)
	if err != nil {
		return nil, err
	}
	if c.DataDir != "" {
		if err := secureDir(c.DataDir, c.Logger); err != nil {
			return nil, err
		}
	}
	id, err := resolveID(c.ID, c.DataDir)
	if err != nil {
		return nil, err
	}
	if err := checkOwnCert(tlsConf, id); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	logger := c.Logger.With("node", id)
	n := &Node{
		cfg:      c,
		id:       id,
		inc:      scuttlebutt.NewIncarnation(),
		log:      logger,
		tls:      tlsConf,
		policy:   linkPolicy{fullMesh: c.FullMeshSize, ring: c.RingLinks, random: c.RandomLinks},
		ctx:      ctx,
		cancel:   cancel,
		kick:     make(chan struct{}, 1),
		ended:    make(chan struct{}, 1),
		fatal:    make(chan error, 1),
		docs:     make(map[string]*document),
		members:  make(map[string]*member),
		links:    make(map[string]*link),
		dialers:  make(map[string]context.CancelFunc),
		warned:   make(map[string]bool),
		capped:   make(map[string]bool),
		pending:  make(map[string]struct{}),
		files:    filelog.NewFiles(c.MaxOpenLogs),
		forced:   make(map[string]time.Time),
		rpcSrv:   rpc.NewServer(&rpc.ServerConfig{Logger: logger}), // a handler's panic is logged
		handlers: make(map[string]handler),
		clients:  make(map[string]*rpc.Client),
		regSweep: make(map[string]sweep),

		regCleaned: make(map[string]bool),
	}
	if lim := openFileLimit(); c.DataDir != "" && lim > 0 && n.cfg.MaxOpenLogs > lim/4 {
		// Sockets, the catalog's log and compactions need descriptors
		// too: the logs get a quarter of what the process may hold.
		n.log.Warn("MaxOpenLogs lowered to a quarter of the open file limit", "MaxOpenLogs", n.cfg.MaxOpenLogs, "limit", lim, "now", max(lim/4, 1))
		n.cfg.MaxOpenLogs = max(lim/4, 1)
		n.files = filelog.NewFiles(n.cfg.MaxOpenLogs)
	}
	if len(c.Secret) == 0 && tlsConf == nil {
		n.log.Warn("replication links are neither authenticated nor encrypted: set Secret or TLS files outside a trusted network")
	}
	fail := func(err error) (*Node, error) {
		cancel()
		if n.ln != nil {
			n.ln.Close()
		}
		n.closeDocuments()
		return nil, err
	}
	if n.catalog, err = n.openDocument(catalogName, kindModel, 0); err != nil {
		return fail(err)
	}
	if n.registry, err = n.openDocument(registryName, kindModel, 0); err != nil {
		return fail(err)
	}
	n.catAll = true
	n.ensureCatalog() // the documents a restarted node held, before any link
	n.sweepLogs()
	if n.ln, err = net.Listen("tcp", c.BindAddr); err != nil {
		return fail(fmt.Errorf("node: listen on %s: %w", c.BindAddr, err))
	}
	n.metaAddr = c.AdvertiseAddr
	if n.metaAddr == "" {
		a := n.ln.Addr().(*net.TCPAddr)
		host := ""
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
		n.metaAddr = net.JoinHostPort(host, fmt.Sprint(a.Port))
	}
	mc, err := n.memberlistConfig()
	if err != nil {
		return fail(err)
	}
	if n.ml, err = memberlist.Create(mc); err != nil {
		return fail(fmt.Errorf("node: memberlist: %w", err))
	}
	n.countLive() // nothing changes the catalog before the links start, below
	unwatchCatalog := n.catalog.doc.(*model.Model).Watch(n.watchCatalog)
	unwatchRegistry := n.registryModel().Watch(func(model.Change) { n.poke() }) // tidyRegistry
	n.unwatch = func() { unwatchCatalog(); unwatchRegistry() }
	n.wg.Add(2)
	go n.acceptLoop()
	go n.manage()
	if len(c.Join) > 0 {
		n.wg.Add(1)
		go n.joinLoop(c.Join)
	}
	n.log.Info("node started", "addr", n.Addr(), "gossip", n.GossipAddr(), "data", c.DataDir,
		"tls", tlsConf != nil, "secret", len(c.Secret) > 0)
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Addr returns the replication address peers dial (from memberlist's
// metadata, with the gossip host filled in if it had none).
func (n *Node) Addr() string {
	host, port, _ := net.SplitHostPort(n.metaAddr)
	if host == "" {
		host = n.ml.LocalNode().Addr.String()
	}
	return net.JoinHostPort(host, port)
}

// GossipAddr returns the address memberlist advertises ("host:port"): the
// address other nodes put in their Join lists.
func (n *Node) GossipAddr() string { return n.ml.LocalNode().Address() }

// Join asks memberlist to join the members at addrs now (gossip
// addresses), and returns how many answered. New joins Config.Join by
// itself; Join is for members learned later.
func (n *Node) Join(addrs ...string) (joined int, err error) {
	if n.ctx.Err() != nil {
		return 0, ErrClosed
	}
	n.joining.Add(1)
	joined, err = n.ml.Join(addrs)
	n.joining.Add(-1)
	if joined > 0 {
		n.joined.Store(true)
	}
	if err != nil {
		return joined, fmt.Errorf("node: join: %w", err)
	}
	return joined, nil
}

// Leave leaves the cluster gracefully: it tells the members it is leaving
// (so they record it as left, not failed, and lock tables drop it at once),
// drops every link, stops dialling and accepting, and broadcasts
// memberlist's leave, waiting for it to go out at most Config.LeaveWait
// and until ctx ends (5 s if ctx has no deadline), and not at all when no
// other member is alive. The documents stay readable until Close. Updates
// written before Leave are sent on links that are up, but Leave does not
// wait for peers to acknowledge them.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if n.leaving {
		n.mu.Unlock()
		return nil
	}
	n.leaving = true
	if self := n.members[n.id]; self != nil {
		self.State, self.leaving, self.Since = Leaving, true, n.cfg.Now()
	}
	n.mu.Unlock()
	n.closeTables() // release our locks while the links are up
	n.unregisterAll()
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	n.log.Info("leaving the cluster")
	// The metadata (leaving) is queued for gossip without waiting for it
	// to go out: the notices that announceLeave sends every live member
	// directly are what tells them first, and memberlist's own wait never
	// ends when every peer has left meanwhile (a whole cluster stopped at
	// once) but at the timeout. The queued broadcast still goes out with
	// the gossip until memberlist's leave.
	uerr := n.ml.UpdateNode(time.Millisecond)
	if uerr != nil && strings.Contains(uerr.Error(), "timeout waiting for update broadcast") {
		uerr = nil // memberlist has no error value for it
	}
	n.announceLeave(timeout)
	n.reconcile()
	werr := n.waitLinksDown(ctx)
	// memberlist's Leave waits until its leave message has gone out in
	// gossip, which never happens when every peer has left meanwhile (a
	// whole cluster stopped at once): wait at most LeaveWait, and not at
	// all when no peer is alive to hear it.
	lerr := n.leaveMemberlist(min(timeout, n.cfg.LeaveWait))
	if err := errors.Join(uerr, werr, lerr); err != nil {
		return fmt.Errorf("node: leave: %w", err)
	}
	return nil
}

// Close stops the node: it drops every link, stops memberlist without a
// leave message (call Leave first to leave gracefully; without it, the
// members' failure detectors notice the node is gone), waits for the
// node's goroutines, and closes the document logs. Documents handed out
// stay readable; writes to them fail once their logs are closed (with a
// DataDir) or just stop replicating (without). Close returns ErrClosed if
// the node was already closed.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.closed = true
	n.mu.Unlock()
	n.closeTables() // release our locks while the links are up
	n.unregisterAll()
	n.mu.Lock()
	for _, cancel := range n.dialers {
		cancel()
	}
	for _, l := range n.links {
		l.cancel()
	}
	n.mu.Unlock()
	n.cancel()
	n.closeClients()
	n.ln.Close()
	err := n.ml.Shutdown()
	n.wg.Wait()
	n.unwatch()
	if cerr := n.closeDocuments(); err == nil {
		err = cerr
	}
	n.log.Info("node closed")
	return err
}

// waitLinksDown waits until every link has ended, or ctx ends.
func (n *Node) waitLinksDown(ctx context.Context) error {
	for {
		n.mu.Lock()
		up := len(n.links)
		n.mu.Unlock()
		if up == 0 {
			return nil
		}
		select {
		case <-n.ended:
		case <-ctx.Done():
			return fmt.Errorf("%d links still up: %w", up, ctx.Err())
		}
	}
}

// closeTables closes the documents that have a Close of their own: lock
// tables, which release the locks this node holds.
func (n *Node) closeTables() {
	n.mu.Lock()
	var docs []*document
	for _, d := range n.docs {
		docs = append(docs, d)
	}
	n.mu.Unlock()
	for _, d := range docs {
		d.closeTable()
	}
}

// poke asks the manager to reconcile links and documents with membership
// and the catalog. It never blocks: wakeups coalesce.
func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// manage owns reconciliation: on every poke, and periodically (for the
// rotation of random links and to forget long-gone members), it creates
// the documents the catalog names and makes the links follow membership.
func (n *Node) manage() {
	defer n.wg.Done()
	period := min(max(n.cfg.RelinkInterval/4, time.Second), time.Minute, n.reapPeriod())
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.kick:
		case <-tick.C:
			n.reapMembers()
		}
		n.ensureCatalog()
		n.reconcile()
		n.tidyRegistry()
	}
}

// joinLoop joins the seed members, retrying with the reconnect backoff
// until one answers or the node closes.
func (n *Node) joinLoop(addrs []string) {
	defer n.wg.Done()
	for failures := 0; ; failures++ {
		n.joining.Add(1)
		k, err := n.ml.Join(addrs)
		n.joining.Add(-1)
		if n.idRefused.Load() {
			n.log.Error("join refused: another live member holds this node's id", "id", n.id, "err", err)
			return
		}
		if k > 0 {
			n.joined.Store(true)
			n.log.Info("joined the cluster", "via", k, "of", len(addrs))
			return
		}
		n.log.Warn("join failed; retrying", "seeds", addrs, "err", err)
		if !sleepCtx(n.ctx, n.backoff(failures)) {
			return
		}
	}
}

// resolveID returns the node's id: id if set, else the one stored in dir,
// else a new one (stored in dir, if any). A stored id that differs from a
// set one is an error: the logs in dir belong to the stored one.
func resolveID(id, dir string) (string, error) {
	if dir == "" {
		if id == "" {
			id = newID()
		}
		return id, nil
	}
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return "", fmt.Errorf("%w: DataDir: %w", ErrInvalidConfig, err)
	}
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if err := checkName(stored); err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrInvalidConfig, path, err)
		}
		if id != "" && id != stored {
			return "", fmt.Errorf("%w: DataDir %s belongs to node %s, not %s", ErrInvalidConfig, dir, stored, id)
		}
		return stored, nil
	case errors.Is(err, fs.ErrNotExist):
		if id == "" {
			id = newID()
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(id+"\n"), filelog.FileMode); err != nil {
			return "", fmt.Errorf("node: storing the node id: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("node: storing the node id: %w", err)
		}
		return id, nil
	default:
		return "", fmt.Errorf("node: reading the node id: %w", err)
	}
}

// DirMode is the permission of the data directory and the directories
// New creates in it: the owner's only, for the logs below hold every
// document's values.
const DirMode = 0o700

// secureDir creates dir with DirMode, or takes the permissions of group
// and others away from an existing one, with a warning (a directory
// created by an older version, or by hand). A directory it cannot change
// is used as it is, with a warning.
func secureDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("%w: DataDir: %w", ErrInvalidConfig, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: DataDir: %w", ErrInvalidConfig, err)
	}
	if old := fi.Mode().Perm(); old&0o077 != 0 {
		if err := os.Chmod(dir, old&^0o077); err != nil {
			log.Warn("data directory is open to others and cannot be changed", "dir", dir, "mode", old.String(), "err", err)
		} else {
			log.Warn("data directory was open to others: permissions tightened", "dir", dir, "was", old.String(), "now", (old &^ 0o077).String())
		}
	}
	return nil
}

// newID returns the host name (if it is a valid name) with a random
// suffix, so that two nodes on one machine differ.
func newID() string {
	prefix := "node"
	if h, err := os.Hostname(); err == nil && checkName(h) == nil && len(h) <= MaxNameSize-9 {
		prefix = h
	}
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/lock"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// The document types a node holds, by the name the catalog, Documents and
// the data directory use for them.
const (
	kindModel   = "model"
	kindEmitter = "emitter"
	kindLock    = "lock"
	kindDoc     = "doc"
)

// kind is one document type: how the node makes one, and whether it keeps
// a log of it under DataDir. Adding a type is an entry here and a typed
// getter like Model.
type kind struct {
	new     func(n *Node, name string) (scuttlebutt.Document, error)
	persist bool
}

var kinds = map[string]kind{
	kindModel: {persist: true, new: func(n *Node, name string) (scuttlebutt.Document, error) {
		return model.New(n.id, n.replicaConfig(name))
	}},
	kindEmitter: {persist: true, new: func(n *Node, name string) (scuttlebutt.Document, error) {
		var cfg emitter.Config
		if n.cfg.Emitter != nil {
			cfg = *n.cfg.Emitter
		}
		if cfg.Now == nil {
			cfg.Now = n.cfg.Now
		}
		cfg.Replica = n.replicaConfig(name)
		return emitter.New(n.id, &cfg)
	}},
	// JSON documents are logged as models are: their History holds the
	// updates that still count, which is what filelog compacts to, and
	// filelog checks each record with the document's Validator before
	// Replay applies it.
	kindDoc: {persist: true, new: func(n *Node, name string) (scuttlebutt.Document, error) {
		return doc.New(n.id, n.replicaConfig(name))
	}},
	// Lock tables keep no log: their state is leases, which the other
	// members hold for a restarted node (see package lock). Their member
	// set is the cluster's live members, kept up to date by reconcile.
	kindLock: {persist: false, new: func(n *Node, name string) (scuttlebutt.Document, error) {
		var cfg lock.Config
		if n.cfg.Lock != nil {
			cfg = *n.cfg.Lock
		}
		if cfg.Now == nil {
			cfg.Now = n.cfg.Now
		}
		cfg.Replica = n.replicaConfig(name)
		cfg.Members = n.lockMembers()
		t, err := lock.New(n.id, &cfg)
		if err != nil {
			return nil, err
		}
		t.OnLost(func(lockName string) { n.lostLease(name, lockName) })
		return t, nil
	}},
}

// replicaConfig is the base configuration of every document of the node:
// its clock, one incarnation per start of the node, so that a document's
// sources read n1~k3x9p2qd for every document of that run, its logger,
// and the replication lag of the document called name for the Observer.
func (n *Node) replicaConfig(name string) *scuttlebutt.Config {
	c := &scuttlebutt.Config{Now: n.cfg.Now, Incarnation: n.inc, Logger: n.log}
	if o := n.cfg.Observer; o != nil {
		c.Applied = func(updates []scuttlebutt.Update) {
			now := n.cfg.Now()
			for _, u := range updates {
				o.ObserveLag(name, max(now.Sub(u.Timestamp.Time()), 0))
			}
		}
	}
	return c
}

// lostLease reports that this node lost its hold of lock in the lock
// table called table without releasing it: its lease ran out before a
// renewal was confirmed (a partition, a slow member, a paused process).
// Whatever the lock protected may now be done by another node at the same
// time, so it is a warning, and counted for the Observer if it is a
// LockObserver. It runs on the table's goroutine and must not block.
func (n *Node) lostLease(table, lock string) {
	n.log.Warn("lost a lock's lease: another node may now hold it", "table", table, "lock", lock, "holder", n.id)
	if o, ok := n.cfg.Observer.(LockObserver); ok {
		o.ObserveLockLost(table)
	}
}

// memberSetter is implemented by documents whose rules depend on the
// cluster's members (lock tables): the node hands them the live members,
// itself included, when they are created and whenever membership changes.
type memberSetter interface {
	SetMembers(ids []string) error
}

var _ memberSetter = (*lock.Table)(nil)

// catalogName is the node's own document that lists every document of the
// cluster (name -> type), so that a document created on one node is
// created on every node and replicates everywhere. User names cannot start
// with "_".
const catalogName = "_catalog"

// document is one named document the node holds.
type document struct {
	name, kind string
	gen        uint64        // its generation: see entry
	dropped    chan struct{} // closed when it is dropped: see DocumentDropped
	doc        scuttlebutt.Document
	log        *filelog.Log // nil without a DataDir
}

// DocumentInfo describes one document of the node.
type DocumentInfo struct {
	Name string `json:"name"`
	// Type is the document's type: "model", "emitter", "lock" or "doc".
	Type string `json:"type"`
	// Clock is the document's vector clock: per source, the newest update
	// this node holds. A source is a replica id and an incarnation, one
	// per start of a node ("n1~k3x9p2qd").
	Clock vclock.Clock `json:"clock"`
	// Source is the source id this node writes the document under.
	Source string `json:"source"`
	// Bounds counts what peers sent past the document's bounds, and twins
	// seen: see scuttlebutt.Stats.
	Bounds scuttlebutt.Stats `json:"bounds"`
}

// Model returns the Model called name, creating it if the node has none.
// A new document is recorded in the cluster's catalog, so every member
// creates it too, and starts replicating on every link at once. The name
// must pass CheckName; a document of that name and another type is
// ErrDocumentType.
func (n *Node) Model(name string) (*model.Model, error) {
	d, err := n.document(name, kindModel)
	if err != nil {
		return nil, err
	}
	return d.(*model.Model), nil
}

// Emitter returns the Emitter called name, creating it if the node has
// none, as Model does. Its retention is Config.Emitter's.
func (n *Node) Emitter(name string) (*emitter.Emitter, error) {
	d, err := n.document(name, kindEmitter)
	if err != nil {
		return nil, err
	}
	return d.(*emitter.Emitter), nil
}

// Locks returns the lock table called name, creating it if the node has
// none, as Model does. Its members are the cluster's live members, this
// node included, updated as members join, leave or fail; its leases are
// Config.Lock's. Lock tables keep no log: a restarted node starts with
// empty tables (package lock explains why that is safe). Leave and Close
// close the node's tables, releasing the locks it holds.
func (n *Node) Locks(name string) (*lock.Table, error) {
	d, err := n.document(name, kindLock)
	if err != nil {
		return nil, err
	}
	return d.(*lock.Table), nil
}

// Doc returns the JSON document (package doc) called name, creating it if
// the node has none, as Model does.
func (n *Node) Doc(name string) (*doc.Doc, error) {
	d, err := n.document(name, kindDoc)
	if err != nil {
		return nil, err
	}
	return d.(*doc.Doc), nil
}

// Documents returns the documents the node holds, sorted by name.
func (n *Node) Documents() []DocumentInfo {
	n.mu.Lock()
	docs := make([]*document, 0, len(n.docs))
	for _, d := range n.docs {
		if d != n.catalog && d != n.registry {
			docs = append(docs, d)
		}
	}
	n.mu.Unlock()
	out := make([]DocumentInfo, 0, len(docs))
	for _, d := range docs {
		out = append(out, DocumentInfo{Name: d.name, Type: d.kind, Clock: d.doc.Base().Clock(),
			Source: d.doc.Base().Source(), Bounds: d.doc.Base().Stats()})
	}
	slices.SortFunc(out, func(a, b DocumentInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// document returns the document called name of type kind, creating it
// (and recording it in the catalog) if the node has none.
func (n *Node) document(name, kind string) (scuttlebutt.Document, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if _, ok := kinds[kind]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, kind)
	}
	e, ok, err := n.catalogEntry(name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("node: %q in the cluster's catalog: %w", name, err)
	case ok && !e.deleted() && e.kind != kind:
		return nil, fmt.Errorf("%w: %q is a %s in the cluster's catalog, not a %s", ErrDocumentType, name, e.kind, kind)
	}
	if !ok || e.deleted() {
		if err := n.checkCatalogCap(); err != nil {
			return nil, err
		}
	}
	want := entry{kind: kind, gen: e.next()}
	d, err := n.getOrCreate(name, kind, want.gen)
	if err != nil {
		return nil, err
	}
	if !ok || e != want {
		if err := n.catalog.doc.(*model.Model).Set(name, want.String()); err != nil {
			n.log.Error("recording a document in the catalog", "doc", name, "err", err)
		}
	}
	return d.doc, nil
}

// getOrCreate returns generation gen of the document called name,
// creating it with its log and adding it to every link if there is none;
// an older generation it holds is dropped first.
func (n *Node) getOrCreate(name, kind string, gen uint64) (*document, error) {
	lookup := func() (d *document, stale bool, err error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.closed {
			return nil, false, ErrClosed
		}
		d = n.docs[name]
		switch {
		case d == nil:
			return nil, false, nil
		case d.gen < gen:
			return d, true, nil
		case d.kind != kind:
			return nil, false, fmt.Errorf("%w: %q is a %s, not a %s", ErrDocumentType, name, d.kind, kind)
		}
		return d, false, nil
	}
	if d, stale, err := lookup(); err != nil || d != nil && !stale {
		return d, err
	}
	n.createMu.Lock()
	defer n.createMu.Unlock()
	d, stale, err := lookup()
	if err != nil || d != nil && !stale {
		return d, err
	}
	if stale {
		n.dropHeld(d, "a newer generation was created")
	}
	n.mu.Lock()
	err = n.checkCapLocked()
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if d, err = n.openDocument(name, kind, gen); err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		d.close()
		return nil, ErrClosed
	}
	n.docs[name] = d
	n.notifyDocsLocked()
	for _, l := range n.links {
		l.mux.Add(d.stream(), d.doc) // fails only if the link is ending
	}
	n.mu.Unlock()
	if ms, ok := d.doc.(memberSetter); ok {
		// Membership may have changed since the table was made, before
		// reconcile could see it.
		n.setMembers(ms)
	}
	n.log.Debug("document opened", "doc", name, "type", kind, "generation", gen)
	return d, nil
}

// openDocument creates a document and, with a DataDir, opens its log
// (replaying what it holds). The catalog and the rpc registry are added to
// n.docs here too; the registry keeps no log.
func (n *Node) openDocument(name, kind string, gen uint64) (*document, error) {
	sd, err := kinds[kind].new(n, name)
	if err != nil {
		return nil, fmt.Errorf("node: creating %s %q: %w", kind, name, err)
	}
	d := &document{name: name, kind: kind, gen: gen, doc: sd, dropped: make(chan struct{})}
	if n.cfg.DataDir != "" && kinds[kind].persist && name != registryName {
		path := n.logPath(name, kind, gen)
		if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		cfg := filelog.DefaultConfig()
		cfg.Logger = nil // the node's, below: the default discards
		if n.cfg.FileLog != nil {
			c := *n.cfg.FileLog
			cfg = &c
		}
		if cfg.Logger == nil {
			cfg.Logger = n.log
		}
		if o := n.cfg.Observer; o != nil && cfg.OnSync == nil {
			cfg.OnSync = o.ObserveFsync
		}
		if name != catalogName {
			cfg.Files = n.files
		}
		_, statErr := os.Stat(path)
		if d.log, err = filelog.Open(path, sd, cfg); err != nil {
			d.close()
			if errors.Is(statErr, fs.ErrNotExist) {
				filelog.Remove(path) // what the failed Open created
			}
			return nil, fmt.Errorf("node: opening the log of %q: %w", name, err)
		}
	}
	if name == catalogName || name == registryName {
		n.mu.Lock()
		n.docs[name] = d
		n.mu.Unlock()
	}
	return d, nil
}

// logPath is where the log of a generation of a document lives:
// DataDir/<type>/<name>.log for generation 0, <name>~<gen>.log for the
// next ones, and DataDir/catalog.log for the catalog.
func (n *Node) logPath(name, kind string, gen uint64) string {
	if name == catalogName {
		return filepath.Join(n.cfg.DataDir, "catalog.log")
	}
	return filepath.Join(n.cfg.DataDir, kind, streamName(name, gen)+".log")
}

// stream is the name the document replicates under on every link.
func (d *document) stream() string { return streamName(d.name, d.gen) }

// closeTable closes the document if it has a Close of its own (a lock
// table's releases its locks and stops its goroutine).
func (d *document) closeTable() {
	if c, ok := d.doc.(interface{ Close() error }); ok {
		c.Close()
	}
}

// close closes the document and its log.
func (d *document) close() error {
	d.closeTable()
	if d.log == nil {
		return nil
	}
	return d.log.Close()
}

// closeDocuments closes every document's log.
func (n *Node) closeDocuments() error {
	n.mu.Lock()
	docs := make([]*document, 0, len(n.docs))
	for _, d := range n.docs {
		docs = append(docs, d)
	}
	n.mu.Unlock()
	var errs []error
	for _, d := range docs {
		if err := d.close(); err != nil && !errors.Is(err, filelog.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package node

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
)

// The catalog's values. A document's entry is its type ("model"), with
// its generation after a slash once the name has been deleted before
// ("model/2"); a deleted document's entry is "deleted/G", G the
// generation deleted. Each creation of a name after a deletion is the
// next generation, and a generation replicates and is logged under names
// of its own (streamName, logPath), so a member that missed the deletion
// (partitioned, or down) never mixes the old data into the new document:
// the catalog tells it to drop the old one first. Two members that
// re-create a name at once make the same generation, and their writes
// merge as before. Data directories written before generations existed
// hold plain types: generation 0, whose names are the plain ones.
const (
	deletedKind   = "deleted"
	genSep        = "/"
	maxGeneration = 1 << 53 // a peer's larger claim is refused
)

// entry is one catalog value, parsed.
type entry struct {
	kind string // a key of kinds, or deletedKind
	gen  uint64
}

func (e entry) deleted() bool { return e.kind == deletedKind }

// String is the entry as the catalog holds it.
func (e entry) String() string {
	if e.gen == 0 && !e.deleted() {
		return e.kind
	}
	return e.kind + genSep + strconv.FormatUint(e.gen, 10)
}

// next is the generation a creation of the name makes: the live entry's
// own, or the one after the generation deleted.
func (e entry) next() uint64 {
	if e.deleted() {
		return e.gen + 1
	}
	return e.gen
}

// parseEntry parses a catalog value, as a peer may have written anything.
func parseEntry(v any) (entry, error) {
	s, ok := v.(string)
	if !ok {
		return entry{}, fmt.Errorf("%w: no type string", ErrUnknownType)
	}
	kind, g, hasGen := strings.Cut(s, genSep)
	e := entry{kind: kind}
	if hasGen {
		gen, err := strconv.ParseUint(g, 10, 64)
		// A generation is bounded, so that next never wraps to a used one.
		if err != nil || gen == 0 && kind != deletedKind || gen > maxGeneration {
			return entry{}, fmt.Errorf("%w: %q: bad generation", ErrUnknownType, s)
		}
		e.gen = gen
	}
	if _, known := kinds[kind]; !known && !e.deleted() {
		return entry{}, fmt.Errorf("%w: %q", ErrUnknownType, s)
	}
	return e, nil
}

// catalogEntry returns the catalog's entry for name: ok is false if the
// catalog has none, err set if it has one this node cannot read.
func (n *Node) catalogEntry(name string) (e entry, ok bool, err error) {
	v, ok := n.catalog.doc.(*model.Model).Get(name)
	if !ok {
		return entry{}, false, nil
	}
	e, err = parseEntry(v)
	return e, true, err
}

// streamName is the name a generation of a document replicates under.
func streamName(name string, gen uint64) string {
	if gen == 0 {
		return name
	}
	return name + "~" + strconv.FormatUint(gen, 10)
}

// live reports whether a catalog value names a document that exists.
func live(v any) bool {
	e, err := parseEntry(v)
	return err == nil && !e.deleted()
}

// countLive counts the catalog's live entries, once at New; the catalog's
// watch keeps the count from then on (watchCatalog).
func (n *Node) countLive() {
	cat := n.catalog.doc.(*model.Model)
	k := 0
	for _, name := range cat.Keys() {
		if v, ok := cat.Get(name); ok && live(v) {
			k++
		}
	}
	n.catMu.Lock()
	n.catLive = k
	n.catMu.Unlock()
}

// watchCatalog is the catalog's watch callback: it counts the live
// entries and queues the name for ensureCatalog.
func (n *Node) watchCatalog(c model.Change) {
	d := 0
	if live(c.Value) {
		d++
	}
	if live(c.Old) {
		d--
	}
	n.catMu.Lock()
	n.catLive += d
	n.catMu.Unlock()
	n.catalogChanged(c.Key, false)
}

// catalogChanged records that the catalog's entry for name changed (or,
// with all, that every entry must be looked at) and wakes the manager.
// It runs in the catalog's watch callback: it takes only catMu.
func (n *Node) catalogChanged(name string, all bool) {
	n.catMu.Lock()
	if all {
		n.catAll = true
	} else {
		n.pending[name] = struct{}{}
	}
	n.catMu.Unlock()
	n.poke()
}

// checkCatalogCap returns ErrTooManyDocuments if the cluster's catalog
// lists MaxDocuments documents already, as this node knows it: a new name
// would be refused by the members that hold as many. Members creating
// names at once can each pass it before they hear of the others' names;
// each then holds at most MaxDocuments, the names past it refused.
func (n *Node) checkCatalogCap() error {
	n.catMu.Lock()
	listed := n.catLive
	n.catMu.Unlock()
	if listed >= n.cfg.MaxDocuments {
		return fmt.Errorf("%w: the cap is %d (MaxDocuments, scuttle serve -max-documents) and the cluster's catalog lists %d; delete documents or raise the cap",
			ErrTooManyDocuments, n.cfg.MaxDocuments, listed)
	}
	return nil
}

// takePending returns the names whose catalog entries changed since the
// last call: every name the first time.
func (n *Node) takePending() []string {
	n.catMu.Lock()
	all, pending := n.catAll, n.pending
	n.catAll, n.pending = false, make(map[string]struct{})
	n.catMu.Unlock()
	if all {
		return n.catalog.doc.(*model.Model).Keys()
	}
	return slices.Collect(maps.Keys(pending))
}

// ensureCatalog makes the node's documents follow the catalog entries
// that changed since it last ran (every entry, the first time): it opens
// the documents it lacks, drops the deleted ones, and replaces a
// generation by the next. Its cost is the entries that changed, not the
// catalog's size, so creating the 10,000th document costs what the 10th
// did. Entries it cannot honour (an invalid name, an unknown type, a type
// clash, the MaxDocuments cap) are logged once.
func (n *Node) ensureCatalog() {
	for _, name := range n.takePending() {
		n.ensureName(name)
	}
}

// ensureName makes the node follow the catalog's entry for name.
func (n *Node) ensureName(name string) {
	e, ok, err := n.catalogEntry(name)
	if !ok {
		return // not recorded yet, or a key this node never wrote
	}
	n.mu.Lock()
	d := n.docs[name]
	n.mu.Unlock()
	if err == nil {
		err = checkName(name)
	}
	switch {
	case err != nil:
	case e.deleted():
		if d != nil && d.gen <= e.gen && d != n.catalog && d != n.registry {
			n.drop(d, "deleted in the catalog")
		}
		n.settled(name)
		return
	case d != nil && d.gen > e.gen:
		return // the catalog has not caught up with this node's own write
	case d != nil && d.gen == e.gen && d.kind != e.kind:
		err = fmt.Errorf("%w: %q is a %s here, a %s in the catalog", ErrDocumentType, name, d.kind, e.kind)
	case d != nil && d.gen == e.gen:
		n.settled(name)
		return
	default:
		_, err = n.getOrCreate(name, e.kind, e.gen)
	}
	if err == nil {
		n.settled(name)
		return
	}
	if errors.Is(err, ErrClosed) {
		return
	}
	n.mu.Lock()
	warned := n.warned[name]
	n.warned[name] = true
	if errors.Is(err, ErrTooManyDocuments) {
		n.capped[name] = true
	}
	n.mu.Unlock()
	if !warned {
		n.log.Warn("cannot hold a document of the catalog", "doc", name, "err", err)
	}
}

// settled forgets a warning about name: its entry is honoured now.
func (n *Node) settled(name string) {
	n.mu.Lock()
	delete(n.warned, name)
	delete(n.capped, name)
	n.mu.Unlock()
}

// retryCapped queues again up to k of the catalog's names refused for
// the MaxDocuments cap, now that k documents are gone. Names the catalog
// no longer lists as live are forgotten on the way, so that the room
// goes to one that is.
func (n *Node) retryCapped(k int) {
	n.mu.Lock()
	var names []string
	for name := range n.capped {
		if len(names) == k {
			break
		}
		delete(n.capped, name)
		if e, ok, err := n.catalogEntry(name); ok && err == nil && !e.deleted() {
			names = append(names, name)
		}
	}
	n.mu.Unlock()
	for _, name := range names {
		n.catalogChanged(name, false)
	}
}

// checkCapLocked returns ErrTooManyDocuments if the node holds
// MaxDocuments documents already. n.mu is held.
func (n *Node) checkCapLocked() error {
	held := len(n.docs)
	for _, d := range []*document{n.catalog, n.registry} {
		if d != nil && n.docs[d.name] == d {
			held--
		}
	}
	if held >= n.cfg.MaxDocuments {
		return fmt.Errorf("%w: the cap is %d (MaxDocuments, scuttle serve -max-documents) and the node holds %d; delete documents or raise the cap",
			ErrTooManyDocuments, n.cfg.MaxDocuments, held)
	}
	return nil
}

// Delete deletes the document called name on every member: it records
// the deletion in the cluster's catalog, and each member, this one before
// Delete returns, stops replicating the document, closes it and removes
// its log. Document values handed out before stay readable; writes to
// them fail with the log closed (with a DataDir) or reach no one. A
// member that misses the deletion (partitioned, or down) drops the
// document when it hears of it. The name can be created again, of any
// type: the new document starts empty everywhere, even on a member that
// still held the old one.
//
// Delete returns ErrNoDocument if the catalog lists no such document, and
// ErrDocumentType for a lock table: a table's locks are leases its
// holders renew, which a deletion would take from under them.
func (n *Node) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	e, ok, err := n.catalogEntry(name)
	switch {
	case err != nil:
		return fmt.Errorf("node: deleting %q: %w", name, err)
	case !ok || e.deleted():
		return fmt.Errorf("%w: %q", ErrNoDocument, name)
	case e.kind == kindLock:
		return fmt.Errorf("%w: %q is a lock table, which cannot be deleted", ErrDocumentType, name)
	}
	if err := n.catalog.doc.(*model.Model).Set(name, entry{kind: deletedKind, gen: e.gen}.String()); err != nil {
		return fmt.Errorf("node: deleting %q: %w", name, err)
	}
	n.ensureName(name)
	return nil
}

// DocumentType returns the type of the document called name if the node
// holds it ("model", "emitter", "lock" or "doc"), without creating it or
// listing every document as Documents does.
func (n *Node) DocumentType(name string) (kind string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.docs[name]
	if d == nil || d == n.catalog || d == n.registry {
		return "", false
	}
	return d.kind, true
}

// drop stops replicating d, closes it and removes its log.
func (n *Node) drop(d *document, why string) {
	n.createMu.Lock()
	defer n.createMu.Unlock()
	n.dropHeld(d, why)
}

// dropHeld is drop with createMu held.
func (n *Node) dropHeld(d *document, why string) {
	n.mu.Lock()
	if n.docs[d.name] != d {
		n.mu.Unlock()
		return // dropped already
	}
	delete(n.docs, d.name)
	close(d.dropped)
	n.notifyDocsLocked()
	for _, l := range n.links {
		l.mux.Remove(d.stream())
	}
	n.mu.Unlock()
	if err := d.close(); err != nil && !errors.Is(err, filelog.ErrClosed) {
		n.log.Warn("closing a deleted document", "doc", d.name, "err", err)
	}
	if d.log != nil {
		if err := filelog.Remove(d.log.Path()); err != nil {
			n.log.Warn("removing a deleted document's log", "doc", d.name, "err", err)
		}
	}
	n.log.Info("document dropped", "doc", d.name, "type", d.kind, "generation", d.gen, "why", why)
	n.retryCapped(1)
}

// sweepLogs removes, once at New, the logs under DataDir of generations
// the catalog has moved past: deleted, or replaced by a newer
// generation, while the node was down or before it could remove them
// (a crash). It reads each type's directory once. Logs of names the
// catalog does not list are left alone: without the catalog's word, a
// log is not garbage.
func (n *Node) sweepLogs() {
	if n.cfg.DataDir == "" {
		return
	}
	for kind, k := range kinds {
		if !k.persist {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(n.cfg.DataDir, kind))
		if err != nil {
			continue // none of this type yet
		}
		for _, ent := range ents {
			base, isLog := strings.CutSuffix(ent.Name(), ".log")
			if !isLog || ent.IsDir() {
				continue
			}
			name, gen := base, uint64(0)
			if i := strings.LastIndexByte(base, '~'); i >= 0 {
				g, err := strconv.ParseUint(base[i+1:], 10, 64)
				if err != nil {
					continue
				}
				name, gen = base[:i], g
			}
			e, ok, err := n.catalogEntry(name)
			if !ok || err != nil || gen >= e.next() {
				continue
			}
			path := filepath.Join(n.cfg.DataDir, kind, ent.Name())
			if err := filelog.Remove(path); err != nil {
				n.log.Warn("removing the log of a deleted generation", "doc", name, "path", path, "err", err)
			} else {
				n.log.Info("removed the log of a deleted generation", "doc", name, "type", kind, "generation", gen)
			}
		}
	}
}

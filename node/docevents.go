package node

// This file tells watchers when the node's documents come and go, so
// that they wait on an event rather than poll Documents.

// DocumentsChanged returns a channel that is closed the next time the
// node opens or drops a document: created here or through the catalog
// from a peer, deleted here or on a peer, or replaced by a newer
// generation. To wait for a document without missing its creation, take
// the channel first, then look (DocumentType), then wait on the channel
// and look again. It is safe for concurrent use.
func (n *Node) DocumentsChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.docsChangedLocked()
}

// DocumentDropped returns a channel that is closed when the document
// called name that the node holds now is dropped: deleted (Delete, here
// or on a peer) or replaced by a newer generation of the name. ok is
// false if the node holds no such document. Closing the node drops
// nothing. It is safe for concurrent use.
func (n *Node) DocumentDropped(name string) (dropped <-chan struct{}, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.docs[name]
	if d == nil || d == n.catalog || d == n.registry {
		return nil, false
	}
	return d.dropped, true
}

// docsChangedLocked returns the channel DocumentsChanged hands out,
// making it if there is none. n.mu is held.
func (n *Node) docsChangedLocked() chan struct{} {
	if n.docsChanged == nil {
		n.docsChanged = make(chan struct{})
	}
	return n.docsChanged
}

// notifyDocsLocked wakes the callers of DocumentsChanged: n.docs has
// changed. n.mu is held.
func (n *Node) notifyDocsLocked() {
	if n.docsChanged != nil {
		close(n.docsChanged)
		n.docsChanged = nil
	}
}

package api

import (
	"errors"
	"net/http"

	"github.com/scuttle-go/scuttle/node"
)

// documentTyper is implemented by nodes that tell one document's type
// without listing every document (*node.Node has it): the Server asks on
// each request for a document it must not create, so that the request
// costs the same however many documents the node holds. Without it, the
// Server reads Node.Documents.
type documentTyper interface {
	DocumentType(name string) (kind string, ok bool)
}

// Deleter is implemented by nodes that delete documents (*node.Node has
// it): DELETE /v1/documents/{name} calls it, and answers 501 for a Node
// without it. Delete removes the document, of any type, from the cluster;
// a name it does not know is node.ErrNoDocument (404), a document it
// cannot delete node.ErrDocumentType (409).
type Deleter interface {
	Delete(name string) error
}

var (
	_ documentTyper = (*node.Node)(nil)
	_ Deleter       = (*node.Node)(nil)
)

// existing returns whether the node holds a document called name, and its
// type.
func (s *Server) existing(name string) (kind string, ok bool) {
	if dt, ok := s.n.(documentTyper); ok {
		return dt.DocumentType(name)
	}
	for _, d := range s.n.Documents() {
		if d.Name == name {
			return d.Type, true
		}
	}
	return "", false
}

// deleteDocument serves DELETE /v1/documents/{name}: the document is
// deleted on every node, its logs removed; the name can be used again,
// and starts empty.
func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request) error {
	name, err := docName(r)
	if err != nil {
		return err
	}
	d, ok := s.n.(Deleter)
	if !ok {
		return errorf(http.StatusNotImplemented, "this node does not delete documents")
	}
	kind, _ := s.existing(name)
	if err := d.Delete(name); err != nil {
		if errors.Is(err, node.ErrNoDocument) {
			return errorf(http.StatusNotFound, "%v", err)
		}
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Name    string `json:"name"`
		Type    string `json:"type,omitempty"`
		Deleted bool   `json:"deleted"`
	}{name, kind, true})
	return nil
}

// documentNotifier is implemented by nodes that say when documents come
// and go (*node.Node has it). With it, a watch of a missing document
// waits on DocumentsChanged, and a watch (SSE or WebSocket) of a
// document that is deleted ends as DocumentDropped closes. Without it, a
// watch of a missing document polls Documents, and a deletion does not
// end a watch.
type documentNotifier interface {
	DocumentsChanged() <-chan struct{}
	DocumentDropped(name string) (dropped <-chan struct{}, ok bool)
}

var _ documentNotifier = (*node.Node)(nil)

// errDocumentDeleted ends a watch whose document was deleted.
var errDocumentDeleted = errors.New("document deleted")

// dropped returns a channel closed when the document called name that
// the node holds now is dropped, and ok false if it holds none. It is a
// nil channel (never ready) for a Node that cannot tell.
func (s *Server) dropped(name string) (dropped <-chan struct{}, ok bool) {
	if dn, is := s.n.(documentNotifier); is {
		return dn.DocumentDropped(name)
	}
	return nil, true
}

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

package node

import "errors"

// Errors returned by this package. Callers test for them with errors.Is;
// the errors returned wrap them with the detail.
var (
	// ErrInvalidConfig means a Config field is out of range, or the data
	// directory belongs to a node with another id.
	ErrInvalidConfig = errors.New("node: invalid config")
	// ErrInvalidName means a document name or node id is empty, too long,
	// or has characters outside [A-Za-z0-9._-] (the first must be a letter
	// or digit).
	ErrInvalidName = errors.New("node: invalid name")
	// ErrDocumentType means a document of that name exists with another
	// type, on this node or in the cluster's catalog.
	ErrDocumentType = errors.New("node: document has another type")
	// ErrUnknownType means a document type this node does not know, named
	// by a peer's catalog or a caller.
	ErrUnknownType = errors.New("node: unknown document type")
	// ErrTooManyDocuments means creating a document would take the node
	// past Config.MaxDocuments: delete documents, or raise the cap.
	ErrTooManyDocuments = errors.New("node: too many documents")
	// ErrNoDocument means Delete was given a name the cluster's catalog
	// does not list, or lists as deleted.
	ErrNoDocument = errors.New("node: no such document")
	// ErrClosed means the node has been closed.
	ErrClosed = errors.New("node: closed")
	// ErrLeft means the node has left the cluster: it makes no links and
	// accepts none.
	ErrLeft = errors.New("node: left the cluster")
	// ErrAuth means a peer failed authentication: a wrong shared secret,
	// a certificate the CA did not sign, or a secret on one side only. The
	// connection is closed before any document data flows.
	ErrAuth = errors.New("node: peer failed authentication")
	// ErrHandshake means a peer broke the connection handshake: bad magic,
	// an unknown version, a malformed id, or the wrong node at an address.
	ErrHandshake = errors.New("node: handshake failed")
	// ErrSealBroken means a record of a link sealed with the shared secret
	// failed authentication (altered or injected on the way) or was
	// malformed: the link ends at once, and nothing of the record is used.
	ErrSealBroken = errors.New("node: sealed link broken")
	// ErrDuplicateID means a join was refused because a live member of the
	// cluster holds the joiner's id at another address (Node.Fatal).
	ErrDuplicateID = errors.New("node: node id already in the cluster")
	// ErrUnknownMember means ForceLeave was given an id the node does not
	// know (never seen, or already reaped).
	ErrUnknownMember = errors.New("node: unknown member")
	// ErrMemberAlive means ForceLeave was given a member that is alive,
	// or this node itself.
	ErrMemberAlive = errors.New("node: member is alive")
)

package api

import (
	"errors"
	"net/http"

	"github.com/scuttle-go/scuttle/node"
)

// Readier is implemented by a Node that can tell whether it is ready to
// serve (*node.Node): nil when ready, else what it still waits for. A
// Node without it is ready as soon as the Server answers. Called
// concurrently.
type Readier interface {
	Ready() error
}

// ForceLeaver is implemented by a Node that can force a failed member out
// of the cluster (*node.Node); a Node without it answers 501 to
// POST /v1/members/{id}/force-leave. Called concurrently.
type ForceLeaver interface {
	ForceLeave(id string) error
}

var (
	_ Readier     = (*node.Node)(nil)
	_ ForceLeaver = (*node.Node)(nil)
)

// UnauthenticatedRoutes are the route patterns served to any client,
// whatever authentication the API requires of the others: the probes of
// an orchestrator or load balancer, which carry no credentials. Nothing in
// their answers is a document's data.
var UnauthenticatedRoutes = []string{
	"GET /healthz",
	"GET /readyz",
}

// Unauthenticated reports whether pattern, a route pattern as
// http.Request.Pattern holds it, is in UnauthenticatedRoutes.
func Unauthenticated(pattern string) bool {
	for _, p := range UnauthenticatedRoutes {
		if p == pattern {
			return true
		}
	}
	return false
}

// probeBody is the answer of /healthz and /readyz.
type probeBody struct {
	Status string `json:"status"`          // "ok", or "unavailable"
	Error  string `json:"error,omitempty"` // why not ready
}

// healthz answers 200 while the process serves HTTP: liveness.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, probeBody{Status: "ok"})
	return nil
}

// readyz answers 200 once the node is ready (Readier), 503 before and
// once it is leaving or closed.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if rd, ok := s.n.(Readier); ok {
		if err := rd.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, probeBody{Status: "unavailable", Error: err.Error()})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, probeBody{Status: "ok"})
	return nil
}

// forceLeave forces the member {id} out of the cluster.
func (s *Server) forceLeave(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := node.CheckName(id); err != nil {
		return errorf(http.StatusBadRequest, "member id: %v", err)
	}
	fl, ok := s.n.(ForceLeaver)
	if !ok {
		return errorf(http.StatusNotImplemented, "this node cannot force members out")
	}
	switch err := fl.ForceLeave(id); {
	case errors.Is(err, node.ErrUnknownMember):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, node.ErrMemberAlive):
		return errorf(http.StatusConflict, "%v", err)
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Member string `json:"member"`
		Forced bool   `json:"forced"`
	}{id, true})
	return nil
}

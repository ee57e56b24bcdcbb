package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/rpc"
)

// Caller is implemented by a Node that calls functions registered in the
// cluster by name (*node.Node's Call); a Node without it answers 501 to
// POST /v1/rpc/{name}. Called concurrently.
type Caller interface {
	Call(ctx context.Context, name string, args ...any) (result any, err error)
}

var _ Caller = (*node.Node)(nil)

// callBody is the answer of POST /v1/rpc/{name}.
type callBody struct {
	Result any `json:"result"`
}

// call calls the function {name...} with the JSON array of the body as
// its arguments, until the request's context ends.
func (s *Server) call(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkKey("method name", name); err != nil {
		return err
	}
	c, ok := s.n.(Caller)
	if !ok {
		return errorf(http.StatusNotImplemented, "this node cannot call functions")
	}
	v, err := s.readValue(w, r)
	if err != nil {
		return err
	}
	args, ok := v.([]any)
	if !ok {
		return errorf(http.StatusBadRequest, "the body must be a JSON array of arguments")
	}
	res, err := c.Call(r.Context(), name, args...)
	switch {
	case err == nil:
	case errors.Is(err, rpc.ErrUnknownMethod):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, rpc.ErrInvalidValue):
		return errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorf(http.StatusGatewayTimeout, "%v", err)
	case errors.Is(err, rpc.ErrBusy), errors.Is(err, node.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "%v", err)
	default: // the handler's error or panic, or its member gone (rpc.ErrClosed)
		return errorf(http.StatusBadGateway, "%v", err)
	}
	writeJSON(w, http.StatusOK, callBody{res})
	return nil
}

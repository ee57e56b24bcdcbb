package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/coder/websocket"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
)

// StatusDocumentDeleted is the WebSocket close status of a replication
// session whose model was deleted (node.Node.Delete, DELETE
// /v1/documents/{name}), here or on another node; the reason is
// "document deleted". It is in the range for applications, and echoes
// HTTP's 410 Gone.
const StatusDocumentDeleted websocket.StatusCode = 4410

// frameMargin is what an update's line holds beyond its value, at most: the
// key (MaxKeySize), its timestamp and source, the JSON punctuation.
const frameMargin = 4 << 10

// replicateModel serves GET /v1/models/{name}/replicate: a WebSocket on
// which the client is a replica of the model, speaking JavaScript
// scuttlebutt's protocol (stream.JSONLines): npm scuttlebutt's
// model.createStream() piped to the socket, one text message per line or
// several lines a message, both ways. The model is created if the node has
// none, as a write would. A line is at most Config.MaxBodySize plus a
// margin for the key and the update's header, and so is a message; a
// larger one ends the session (close code 1009). The session ends when
// either side closes, the Server is closed (1001), or the model is
// deleted (StatusDocumentDeleted).
func (s *Server) replicateModel(w http.ResponseWriter, r *http.Request) error {
	name, err := docName(r)
	if err != nil {
		return err
	}
	if kind, ok := s.existing(name); ok && kind != typeModel {
		return errorf(http.StatusConflict, "document %q is a %s, not a %s", name, kind, typeModel)
	}
	m, err := s.n.Model(name)
	if err != nil {
		return err
	}
	dropped, ok := s.dropped(name)
	if !ok { // deleted since Model
		return errorf(http.StatusNotFound, "%v: %q", errDocumentDeleted, name)
	}
	c, err := websocket.Accept(w, r, nil) // same origin only
	if err != nil {
		return nil // Accept has answered
	}
	s.watchers.Add(1)
	defer s.watchers.Add(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			c.Close(websocket.StatusGoingAway, "server closing")
			cancel()
		case <-dropped:
			c.Close(StatusDocumentDeleted, "document deleted")
			cancel()
		case <-ctx.Done():
		}
	}()
	maxFrame := int(s.cfg.MaxBodySize) + frameMargin
	conn := websocket.NetConn(ctx, c, websocket.MessageText)
	c.SetReadLimit(int64(maxFrame)) // NetConn lifts the limit; set it again
	err = serveReplica(ctx, m, conn, maxFrame)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, context.Canceled),
		websocket.CloseStatus(err) != -1:
		c.Close(websocket.StatusNormalClosure, "")
	case errors.Is(err, stream.ErrFrameTooLarge):
		c.Close(websocket.StatusMessageTooBig, "line over the size limit")
	case errors.Is(err, stream.ErrMalformed):
		c.Close(websocket.StatusUnsupportedData, truncate(err.Error(), 120))
	default:
		c.Close(websocket.StatusInternalError, truncate(err.Error(), 120))
	}
	return nil
}

func serveReplica(ctx context.Context, m *model.Model, rw io.ReadWriter, maxFrame int) error {
	return stream.NewConn(m, rw, &stream.Options{Codec: stream.JSONLines, MaxFrameSize: maxFrame}).Run(ctx)
}

// truncate cuts s to n bytes: a close reason is at most 123.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

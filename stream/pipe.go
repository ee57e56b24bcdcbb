package stream

import (
	"context"
	"errors"
	"net"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Pipe connects two in-process replicas over net.Pipe, returns once both
// are synced, and keeps them replicating live until ctx ends. It returns
// ctx's error if ctx ends first, or the session's error if it fails before
// the sync. Errors after the sync end the session silently; use Conn
// directly to see them.
func Pipe(ctx context.Context, a, b scuttlebutt.Document) error {
	ca, cb := net.Pipe()
	x, y := NewConn(a, ca, nil), NewConn(b, cb, nil)
	errs := make(chan error, 2)
	go func() { errs <- x.Run(ctx) }()
	go func() { errs <- y.Run(ctx) }()
	for _, c := range []*Conn{x, y} {
		select {
		case <-c.Synced():
		case err := <-errs:
			ca.Close()
			cb.Close()
			if err == nil {
				// One side ended cleanly because the other hung up: the
				// other's error says why.
				err = <-errs
			}
			if err == nil {
				err = ctx.Err()
			}
			if err == nil {
				err = errors.New("stream: pipe closed before sync")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

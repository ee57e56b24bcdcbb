package simnet

import (
	"errors"
	"fmt"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// ErrUnsettled means Session gave up: the two sessions kept talking.
var ErrUnsettled = errors.New("simnet: the session did not settle")

// Session runs one hand-stepped session between a and b, outside any
// Network: both Links are made with opts (nil for the defaults), messages
// go a's way first, then b's, round after round, until neither has
// anything to send, and both Links are closed. With cut >= 0 it ends, as a
// stream cut there would, once cut updates messages from a have been
// delivered: the next one is lost. A Step error ends it and is returned.
// It is the smallest replay of "a talks to b" that tests of cut histories
// need; anything with more than two replicas or a schedule belongs on a
// Network.
func Session(a, b scuttlebutt.Document, opts *scuttlebutt.LinkOptions, cut int) error {
	la, lb := a.Base().NewLink(opts), b.Base().NewLink(opts)
	defer la.Close()
	defer lb.Close()
	return PumpLinks(la, lb, cut)
}

// PumpLinks is Session over two Links the caller made: it delivers until
// neither has anything to send or, with cut >= 0, until cut updates
// messages from la have been delivered. The Links stay open.
func PumpLinks(la, lb *scuttlebutt.Link, cut int) error {
	sent := 0
	for range 100_000 {
		ma, mb := la.Ready(), lb.Ready()
		if len(ma) == 0 && len(mb) == 0 {
			return nil
		}
		for _, m := range ma {
			if m.Kind == scuttlebutt.MsgUpdates && sent == cut {
				return nil
			}
			if err := lb.Step(m); err != nil {
				return fmt.Errorf("simnet: stepping with %v: %w", m, err)
			}
			if m.Kind == scuttlebutt.MsgUpdates {
				sent++
			}
		}
		for _, m := range mb {
			if err := la.Step(m); err != nil {
				return fmt.Errorf("simnet: stepping with %v: %w", m, err)
			}
		}
	}
	return ErrUnsettled
}

package rpc

import (
	"context"
	"errors"
	"fmt"
)

// Invoke calls the handler registered as name in this process, as a
// Client's Call over a connection to s would, so that a caller cannot
// tell the two apart but by the time they take:
//
//   - the arguments cross as in a call frame: each is checked, their
//     encoding is bounded by MaxFrameSize, and the handler gets them
//     decoded afresh (an int arrives as an int64, and the handler owns
//     what it gets); the result crosses back the same way;
//   - the handler runs in a goroutine of its own, its context ends with
//     ctx and after MaxTimeout, and a panic is recovered (and logged to
//     the Logger);
//   - the errors are Call's: a *RemoteError wrapping ErrRemote with the
//     handler's message (cut to MaxMessageLen), and context.DeadlineExceeded
//     too when the handler gave up at its deadline; a *RemoteError
//     wrapping ErrUnknownMethod if no handler has the name; ctx.Err() if
//     ctx ends first (the handler's context is then cancelled, and Invoke
//     does not wait for a handler that ignores it); an error wrapping
//     ErrInvalidValue or stream.ErrFrameTooLarge for arguments that could
//     not be sent.
//
// MaxInflight does not apply: each Invoke is its caller's.
func (s *Server) Invoke(ctx context.Context, name string, args ...any) (result any, err error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownMethod, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in, err := s.crossArgs(name, args)
	if err != nil {
		return nil, err
	}
	m, ok := s.lookup(name)
	if !ok {
		return nil, remoteError(name, codeUnknown, "")
	}
	hctx, cancel := ctx, context.CancelFunc(func() {})
	if s.cfg.MaxTimeout > 0 {
		hctx, cancel = context.WithTimeout(ctx, s.cfg.MaxTimeout)
	}
	done := make(chan reply, 1)
	go func() {
		defer cancel()
		done <- s.reply(s.invoke(hctx, m, in))
	}()
	var r reply
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done: // the reply came as ctx ended
		default:
			return nil, ctx.Err()
		}
	}
	if r.code != 0 && ctx.Err() != nil {
		// The handler failed as ctx ended, most likely because it did:
		// a client would have stopped waiting.
		return nil, ctx.Err()
	}
	return r.result(name)
}

// crossArgs returns args as a server decodes them from a call frame,
// having encoded them into one as a client does.
func (s *Server) crossArgs(name string, args []any) ([]any, error) {
	c := call{id: 1, name: name}
	f := framePool.Get().(*frame)
	defer putFrame(f)
	var err error
	f.b, err = appendFrame(f.b[:0], kindCall, s.cfg.MaxFrameSize, callBody(c, args))
	if err != nil {
		return nil, err
	}
	if c, err = parseCall(f.b[headerSize:]); err != nil {
		return nil, err // unreachable: appendArgs checked the values
	}
	return decodeArgs(c.args)
}

// reply returns what a client makes of the reply to a call whose handler
// returned res and err: the result as a client decodes it, or the code
// and message of the error frame the server sends.
func (s *Server) reply(res any, err error) reply {
	if err == nil {
		f := framePool.Get().(*frame)
		defer putFrame(f)
		f.b, err = appendFrame(f.b[:0], kindResult, s.cfg.MaxFrameSize, func(b []byte) ([]byte, error) {
			return appendResultValue(b, 1, res)
		})
		if err == nil {
			var v []byte
			if _, v, err = parseResult(f.b[headerSize:]); err == nil {
				if res, err = decodeValue(v); err == nil {
					return reply{res: res}
				}
			}
		}
	}
	c, msg := s.failure(err)
	return reply{code: c, msg: s.message(msg)}
}

// appendResultValue appends the body of the result of call id, or returns
// why res is not a value.
func appendResultValue(b []byte, id uint64, res any) ([]byte, error) {
	b, err := appendValue(appendResultHead(b, id), res)
	if err != nil {
		return b, fmt.Errorf("%w: result: %v", ErrInvalidValue, err)
	}
	return b, nil
}

// failure returns the code and message of the error frame that answers a
// call that failed with err.
func (s *Server) failure(err error) (code, string) {
	if errors.Is(err, context.DeadlineExceeded) {
		return codeTimeout, err.Error()
	}
	return codeRemote, err.Error()
}

// message makes msg valid UTF-8 and cuts it to fit an error frame.
func (s *Server) message(msg string) string {
	return truncateMessage(msg, min(MaxMessageLen, s.cfg.MaxFrameSize-errorOverhead))
}

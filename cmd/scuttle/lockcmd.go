package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// The lock command holds a lock of a node's lock table for as long as a
// command runs, or until it is interrupted, through a lock session of the
// API (package api): it renews the session in the background, and the
// node releases the lock when the session ends or is not renewed in time.

var lockCommand = &command{
	name:    "lock",
	args:    "<table> <lock> [-- <command> [arg...]]",
	summary: "hold a lock while a command runs, or until interrupted (or -release it, or -show its holders)",
	help: `With a command after --, lock takes the lock (waiting up to -timeout
if it is held), runs the command with this program's stdin, stdout and
stderr, and releases the lock when the command exits; it exits with the
command's status (128+N if a signal N killed it). Without a command it
holds the lock until interrupted (SIGINT, SIGTERM), printing a line once
it is held: for work done by hand, or by another process that waits for
that line.

The lock belongs to a session of the node's API with a TTL (-ttl) that
lock renews every third of it. If this program dies (even by SIGKILL),
the node releases the lock within the TTL, and on Linux the command gets
SIGTERM at once. If the lock is lost (the node lost its lease, or the
session could not be renewed in time), the command gets SIGTERM (SIGKILL
10 s later if it is still running) and lock exits with status 1 and a
message saying so. SIGINT or SIGTERM to lock is passed on to the command
as SIGTERM; the lock is released once the command has exited.

examples:
  scuttle lock -timeout 30s jobs nightly -- ./nightly.sh --full
  scuttle lock jobs nightly            # hold it until Ctrl-C
  scuttle lock -show jobs nightly
  scuttle lock -release jobs nightly   # an operator's release, whoever holds it`,
	nargs: arity{2, -1, "<table> <lock> [-- <command> [arg...]]"},
	waits: true, // for -timeout and the hold: each request has its own bound
	client: func(fs *flag.FlagSet) clientRun {
		timeout := fs.Duration("timeout", 0, "wait this long for the lock if it is held (0: fail at once)")
		ttl := fs.Duration("ttl", 0, "the lock session's TTL: how long the node keeps the lock after this program stops renewing it, 1s to 1h (0: the node's default, 15s)")
		release := fs.Bool("release", false, "release the lock instead, whichever session holds it")
		show := fs.Bool("show", false, "print the lock's holders and take nothing")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			cmdArgs, err := lockCommandArgs(args)
			if err != nil {
				return err
			}
			table, name := args[0], args[1]
			switch {
			case *release && *show:
				return errors.New("-release and -show exclude each other")
			case (*release || *show) && cmdArgs != nil:
				return errors.New("-release and -show take no command")
			case *release:
				return releaseLock(ctx, c, table, name, stdout)
			case *show:
				return showLock(ctx, c, table, name, stdout)
			}
			h := &lockHold{c: c, table: table, name: name, wait: *timeout, ttl: *ttl}
			if cmdArgs == nil {
				return h.holdUntil(ctx, stdout)
			}
			return h.run(ctx, cmdArgs, stdout)
		}
	},
}

// lockCommandArgs returns the command after "<table> <lock> --", or nil
// if there is none.
func lockCommandArgs(args []string) ([]string, error) {
	switch {
	case len(args) == 2:
		return nil, nil
	case args[2] != "--" && strings.HasPrefix(args[2], "-"):
		return nil, fmt.Errorf("flag %s after the arguments: flags go before <table> <lock>", args[2])
	case args[2] != "--":
		return nil, fmt.Errorf("want <table> <lock> [-- <command> [arg...]]: put -- before the command %q", args[2])
	case len(args) == 3:
		return nil, errors.New("no command after --")
	}
	return args[3:], nil
}

// lockBody is a lock as the API describes it.
type lockBody struct {
	Lock     string
	Holders  []string
	Deadline *time.Time
}

// sessionBody is a lock session as the API describes it.
type sessionBody struct {
	ID      string
	TTL     string
	Expires time.Time
	Locks   []struct {
		Table, Lock string
		Held        bool
	}
}

// holds reports whether s lists table/name as held.
func (s *sessionBody) holds(table, name string) bool {
	for _, l := range s.Locks {
		if l.Table == table && l.Lock == name {
			return l.Held
		}
	}
	return false
}

func releaseLock(ctx context.Context, c *client, table, name string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var l lockBody
	if err := c.do(ctx, "DELETE", "/v1/locks"+apiPath(table, name), nil, &l); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "released %s\n", l.Lock)
	return err
}

func showLock(ctx context.Context, c *client, table, name string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var l lockBody
	if err := c.do(ctx, "GET", "/v1/locks"+apiPath(table, name), nil, &l); err != nil {
		return err
	}
	if len(l.Holders) == 0 {
		_, err := fmt.Fprintf(stdout, "%s is free\n", l.Lock)
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s is held by %s\n", l.Lock, strings.Join(l.Holders, ", "))
	return err
}

// errLockLost means a held lock was lost: the node no longer holds it for
// the session, or the session could not be renewed in time.
var errLockLost = errors.New("lock lost")

// lockHold is one hold of a lock through a session.
type lockHold struct {
	c           *client
	table, name string
	wait, ttl   time.Duration

	session sessionBody
	lock    lockBody
}

// take creates the session, starts renewing it, and takes the lock. The
// returned channel receives an error wrapping errLockLost if the lock (or
// the session, while waiting) is lost; stop stops the renewals. On error
// the session is ended.
func (h *lockHold) take(ctx context.Context) (lost <-chan error, stop func(), err error) {
	created := time.Now() // before the request: the node's expiry is later
	if err := h.createSession(ctx); err != nil {
		return nil, nil, err
	}
	ttl, err := time.ParseDuration(h.session.TTL)
	if err != nil || ttl <= 0 {
		h.end()
		return nil, nil, fmt.Errorf("the node gave the session a TTL of %q", h.session.TTL)
	}
	taken := make(chan struct{})
	lostc := make(chan error, 1)
	// The renewals outlive an interrupt: a command given SIGTERM may take
	// a while to exit, and keeps the lock until it has.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		lostc <- h.renew(rctx, ttl, created, taken)
	}()
	stop = func() { cancel(); <-renewed }

	p := "/v1/locks" + apiPath(h.table, h.name) + "?session=" + url.QueryEscape(h.session.ID)
	if h.wait > 0 {
		p += "&timeout=" + url.QueryEscape(h.wait.String())
	}
	tctx, tcancel := context.WithTimeout(ctx, requestTimeout+h.wait)
	var body struct {
		lockBody
		Session sessionBody
	}
	err = h.c.do(tctx, "POST", p, nil, &body)
	tcancel()
	if err != nil {
		stop()
		h.end()
		return nil, nil, err
	}
	h.lock = body.lockBody
	close(taken)
	return lostc, stop, nil
}

// createSession creates the lock session, with -ttl if given.
func (h *lockHold) createSession(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body []byte
	if h.ttl != 0 {
		body, _ = json.Marshal(map[string]string{"ttl": h.ttl.String()})
	}
	if err := h.c.do(ctx, "POST", "/v1/sessions", body, &h.session); err != nil {
		return fmt.Errorf("creating a lock session: %w", err)
	}
	return nil
}

// renew renews the session, created at or after created, every third of
// ttl until ctx ends (stop), and returns why it stopped: nil once ctx
// ends, or an error wrapping errLockLost when the lock is lost (once taken
// is closed: the node lists it as not held) or the session is (gone, or
// not renewed within ttl of sending the last renewal that succeeded: the
// node may end it from then on).
func (h *lockHold) renew(ctx context.Context, ttl time.Duration, created time.Time, taken <-chan struct{}) error {
	every := ttl / 3
	last := created // when the last successful renewal (or the creation) was sent: the node's expiry is later
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(ctx, last.Add(ttl))
		var s sessionBody
		err := h.c.do(rctx, "PUT", "/v1/sessions/"+url.PathEscape(h.session.ID), nil, &s)
		cancel()
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ae) && ae.code == http.StatusNotFound:
			return fmt.Errorf("%w: %s/%s: the node ended the lock session (%v)", errLockLost, h.table, h.name, err)
		case err != nil && time.Since(last) >= ttl:
			return fmt.Errorf("%w: %s/%s: the lock session could not be renewed within its TTL of %s: %v", errLockLost, h.table, h.name, ttl, err)
		case err != nil:
			timer.Reset(min(every, time.Until(last.Add(ttl)))/4 + time.Millisecond) // retry sooner
			continue
		}
		last = sent
		select {
		case <-taken:
			if !s.holds(h.table, h.name) {
				return fmt.Errorf("%w: %s/%s: the node no longer holds it (its lease ran out, or scuttle lock -release released it)", errLockLost, h.table, h.name)
			}
		default:
		}
		timer.Reset(every)
	}
}

// end ends the session, releasing the lock, with a fresh bound: the
// caller's context may have ended.
func (h *lockHold) end() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := h.c.do(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(h.session.ID), nil, nil)
	if err != nil {
		return fmt.Errorf("ending the lock session %s: %w; the node releases the lock within its TTL of %s", h.session.ID, err, h.session.TTL)
	}
	return nil
}

// describe says what is held, for people.
func (h *lockHold) describe() string {
	return fmt.Sprintf("locked %s (held by %s, session %s, TTL %s)", h.lock.Lock, strings.Join(h.lock.Holders, ", "), h.session.ID, h.session.TTL)
}

// holdUntil holds the lock until ctx ends (an interrupt), then releases
// it.
func (h *lockHold) holdUntil(ctx context.Context, stdout io.Writer) error {
	lost, stop, err := h.take(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s; holding it until interrupted\n", h.describe())
	select {
	case <-ctx.Done():
	case err = <-lost:
	}
	stop()
	if err != nil {
		h.end()
		return err
	}
	if err := h.end(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "released %s\n", h.lock.Lock)
	return err
}

// killGrace is how long a command has to exit after SIGTERM, when its
// lock is lost, before it gets SIGKILL.
const killGrace = 10 * time.Second

// run holds the lock while the command argv runs.
func (h *lockHold) run(ctx context.Context, argv []string, stdout io.Writer) error {
	lost, stop, err := h.take(ctx)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, os.Stderr
	cmd.SysProcAttr = commandAttr()
	if err := cmd.Start(); err != nil {
		stop()
		h.end()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var lostErr error
	var kill <-chan time.Time
	interrupted := ctx.Done()
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-exited:
			break wait
		case <-interrupted:
			interrupted = nil
			cmd.Process.Signal(syscall.SIGTERM)
		case lostErr = <-lost: // never nil before stop
			lost = nil
			cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(killGrace)
			defer t.Stop()
			kill = t.C
		case <-kill:
			kill = nil
			cmd.Process.Kill()
		}
	}
	stop()
	endErr := h.end()
	if lostErr != nil {
		return fmt.Errorf("%w; sent %s SIGTERM", lostErr, argv[0])
	}
	code := exitOK
	var ee *exec.ExitError
	switch {
	case errors.As(waitErr, &ee):
		code = exitStatus(ee.ProcessState)
	case waitErr != nil:
		return waitErr
	}
	if endErr != nil || code != exitOK {
		return &exitCodeError{code: code, err: endErr}
	}
	return nil
}

// exitStatus is the status a shell reports for a process that ended as ps
// says: its exit code, or 128+N if signal N killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if c := ps.ExitCode(); c >= 0 {
		return c
	}
	return exitFail
}

// exitCodeError makes run exit with code, printing err if it is not nil.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.err }

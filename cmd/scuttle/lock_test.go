package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lockProc is one "scuttle lock" process of a test.
type lockProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr syncBuffer
	exited         chan struct{} // closed once cmd has been waited for
	err            error
}

// startLock starts "scuttle lock -addr <p's API> args...".
func startLock(t *testing.T, p *proc, args ...string) *lockProc {
	t.Helper()
	lp := &lockProc{t: t, exited: make(chan struct{})}
	lp.cmd = exec.Command(scuttleBinary(t), append([]string{"lock", "-addr", p.httpAddr}, args...)...)
	lp.cmd.Stdout, lp.cmd.Stderr = &lp.stdout, &lp.stderr
	lp.cmd.SysProcAttr = childAttr()
	var err error
	if lp.stdin, err = lp.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := lp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lp.err = lp.cmd.Wait()
		close(lp.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-lp.exited:
		default:
			lp.cmd.Process.Kill()
			<-lp.exited
		}
		if t.Failed() {
			t.Logf("scuttle lock %q:\nstdout: %s\nstderr: %s", args, lp.stdout.String(), lp.stderr.String())
		}
	})
	return lp
}

// waitOutput waits until the process's stdout holds s.
func (lp *lockProc) waitOutput(s string) {
	lp.t.Helper()
	waitUntil(lp.t, fmt.Sprintf("scuttle lock prints %q", s), 60*time.Second, func() (bool, string) {
		select {
		case <-lp.exited:
			return true, ""
		default:
		}
		return strings.Contains(lp.stdout.String(), s), lp.stdout.String()
	})
	if !strings.Contains(lp.stdout.String(), s) {
		lp.t.Fatalf("scuttle lock exited (%v) without printing %q; stdout %q, stderr %q", lp.err, s, lp.stdout.String(), lp.stderr.String())
	}
}

// wait waits for the process to exit and returns its exit status.
func (lp *lockProc) wait() int {
	lp.t.Helper()
	select {
	case <-lp.exited:
	case <-time.After(2 * time.Minute):
		lp.t.Fatalf("scuttle lock still running after 2 min; stdout %q, stderr %q", lp.stdout.String(), lp.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case lp.err == nil:
		return 0
	case errors.As(lp.err, &ee):
		return ee.ExitCode()
	}
	lp.t.Fatalf("scuttle lock: %v", lp.err)
	return -1
}

// holders returns the holders of jobs/name as p sees them.
func holdersOf(t *testing.T, p *proc, name string) []string {
	t.Helper()
	var l lockBody
	if err := p.get("/v1/locks/jobs/"+name, &l); err != nil {
		t.Fatal(err)
	}
	return l.Holders
}

// waitFree waits until p sees jobs/name free.
func waitFree(t *testing.T, p *proc, name string) {
	t.Helper()
	waitUntil(t, p.id+" sees jobs/"+name+" free", 60*time.Second, func() (bool, string) {
		h := holdersOf(t, p, name)
		return len(h) == 0, fmt.Sprint(h)
	})
}

// gone reports whether process pid has ended (a zombie counts as ended:
// its parent died, and whoever inherits it may not reap it).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// TestLockCommand runs "scuttle lock ... -- CMD" against two "scuttle
// serve" processes: the lock is held while CMD runs and released when it
// exits, fails or is killed; a second "scuttle lock" on the other node
// waits and then gets it; without a command, the lock is held until
// SIGTERM.
func TestLockCommand(t *testing.T) {
	procs := newProcs(t, 2)
	for _, p := range procs {
		p.data = ""
		p.start()
	}
	n1, n2 := procs[0], procs[1]
	waitMembers(t, procs, ids(procs))
	bin := scuttleBinary(t)

	t.Run("HeldWhileRunning", func(t *testing.T) {
		// CMD asks the other node who holds the lock.
		show := bin + " lock -addr " + n2.httpAddr + " -show jobs run"
		lp := startLock(t, n1, "-timeout", "60s", "jobs", "run", "--", "sh", "-c",
			`until `+show+` | grep -q 'held by n1'; do sleep 0.05; done; echo seen held; exit 3`)
		if code := lp.wait(); code != 3 {
			t.Errorf("exit status %d, want CMD's 3; stderr %q", code, lp.stderr.String())
		}
		if got := lp.stdout.String(); got != "seen held\n" {
			t.Errorf("stdout %q, want CMD's", got)
		}
		if h := holdersOf(t, n1, "run"); len(h) != 0 {
			t.Errorf("holders on n1 once scuttle lock exited: %v, want none", h)
		}
		waitFree(t, n2, "run")
	})

	t.Run("CommandKilled", func(t *testing.T) {
		lp := startLock(t, n1, "jobs", "killed", "--", "sh", "-c", "kill -9 $$")
		if code := lp.wait(); code != 128+int(syscall.SIGKILL) {
			t.Errorf("exit status %d, want %d (SIGKILL); stderr %q", code, 128+int(syscall.SIGKILL), lp.stderr.String())
		}
		if h := holdersOf(t, n1, "killed"); len(h) != 0 {
			t.Errorf("holders on n1 once CMD was killed: %v, want none", h)
		}
	})

	t.Run("SecondWaits", func(t *testing.T) {
		// Both CMDs append to one file: the waiter's line must come after
		// the holder's last. The holder's CMD runs until its stdin
		// (passed through) closes.
		order := filepath.Join(t.TempDir(), "order")
		holder := startLock(t, n1, "jobs", "queue", "--", "sh", "-c", "echo started; cat >/dev/null; echo holder >>"+order)
		holder.waitOutput("started")
		if r := startLock(t, n2, "jobs", "queue", "--", "true"); r.wait() != exitFail || !strings.Contains(r.stderr.String(), "409 Conflict") {
			t.Fatalf("a lock without -timeout while n1 holds it: stderr %q, want 409", r.stderr.String())
		}
		waiter := startLock(t, n2, "-timeout", "60s", "jobs", "queue", "--", "sh", "-c", "echo waiter >>"+order)
		waitUntil(t, "the waiter's request waits on n2", 30*time.Second, func() (bool, string) {
			var l struct{ Sessions []struct{ Waiting int } }
			if err := n2.get("/v1/sessions", &l); err != nil {
				return false, err.Error()
			}
			return len(l.Sessions) == 1 && l.Sessions[0].Waiting == 1, fmt.Sprintf("%+v", l)
		})
		holder.stdin.Close()
		if code := holder.wait(); code != 0 {
			t.Fatalf("holder exit status %d; stderr %q", code, holder.stderr.String())
		}
		if code := waiter.wait(); code != 0 {
			t.Fatalf("waiter exit status %d; stderr %q", code, waiter.stderr.String())
		}
		if got, _ := os.ReadFile(order); string(got) != "holder\nwaiter\n" {
			t.Errorf("the CMDs wrote %q, want the holder's line, then the waiter's", got)
		}
	})

	t.Run("ScuttleKilled", func(t *testing.T) {
		// The holder's CMD prints its pid and sleeps; the holder is
		// killed with SIGKILL and cannot release or end its session.
		holder := startLock(t, n1, "-ttl", "2s", "jobs", "crash", "--", "sh", "-c", "echo pid $$; exec sleep 600")
		holder.waitOutput("\n")
		var pid int
		if _, err := fmt.Sscanf(holder.stdout.String(), "pid %d", &pid); err != nil {
			t.Fatalf("holder's CMD printed %q: %v", holder.stdout.String(), err)
		}
		waiter := startLock(t, n2, "-timeout", "60s", "jobs", "crash", "--", "echo", "after the crash")
		holder.cmd.Process.Kill()
		killed := time.Now()
		holder.wait()
		if code := waiter.wait(); code != 0 {
			t.Fatalf("waiter exit status %d; stderr %q", code, waiter.stderr.String())
		}
		t.Logf("the waiter ran its CMD %v after the holder's SIGKILL (TTL 2s)", time.Since(killed).Round(time.Millisecond))
		if got := waiter.stdout.String(); got != "after the crash\n" {
			t.Errorf("waiter's stdout %q", got)
		}
		// The kernel told the holder's CMD (SIGTERM) when scuttle died.
		waitUntil(t, "the killed holder's CMD ends", 30*time.Second, func() (bool, string) {
			return gone(pid), "pid " + strconv.Itoa(pid) + " alive"
		})
	})

	t.Run("HoldUntilInterrupted", func(t *testing.T) {
		lp := startLock(t, n1, "jobs", "manual")
		lp.waitOutput("holding it until interrupted")
		if h := holdersOf(t, n1, "manual"); len(h) != 1 || h[0] != "n1" {
			t.Errorf("holders while held: %v, want [n1]", h)
		}
		lp.cmd.Process.Signal(syscall.SIGTERM)
		if code := lp.wait(); code != 0 {
			t.Errorf("exit status after SIGTERM %d, want 0; stderr %q", code, lp.stderr.String())
		}
		if !strings.HasSuffix(lp.stdout.String(), "released manual\n") {
			t.Errorf("stdout %q, want the release last", lp.stdout.String())
		}
		if h := holdersOf(t, n1, "manual"); len(h) != 0 {
			t.Errorf("holders after SIGTERM: %v, want none", h)
		}
	})

	t.Run("SIGTERMPassedOn", func(t *testing.T) {
		lp := startLock(t, n1, "jobs", "term", "--", "sh", "-c", `trap 'echo got TERM; exit 4' TERM; echo started; while :; do sleep 0.05; done`)
		lp.waitOutput("started")
		lp.cmd.Process.Signal(syscall.SIGTERM)
		if code := lp.wait(); code != 4 {
			t.Errorf("exit status %d, want CMD's 4; stderr %q", code, lp.stderr.String())
		}
		if got := lp.stdout.String(); got != "started\ngot TERM\n" {
			t.Errorf("stdout %q", got)
		}
		if h := holdersOf(t, n1, "term"); len(h) != 0 {
			t.Errorf("holders after CMD exited: %v, want none", h)
		}
	})

	// Last: it kills n1.
	t.Run("LostWhenNodeDies", func(t *testing.T) {
		lp := startLock(t, n1, "-ttl", "2s", "jobs", "lost", "--", "sh", "-c", `trap 'echo got TERM; exit 5' TERM; echo started; while :; do sleep 0.05; done`)
		lp.waitOutput("started")
		n1.kill()
		if code := lp.wait(); code != exitFail {
			t.Errorf("exit status %d, want %d", code, exitFail)
		}
		if got := lp.stdout.String(); got != "started\ngot TERM\n" {
			t.Errorf("stdout %q, want CMD to have got SIGTERM", got)
		}
		if e := lp.stderr.String(); !strings.Contains(e, "scuttle lock: lock lost: jobs/lost: the lock session could not be renewed within its TTL of 2s") || !strings.Contains(e, "sent sh SIGTERM") {
			t.Errorf("stderr %q, want the loss explained", e)
		}
	})
}

// TestLockCommandInProcess holds a lock with "scuttle lock" without a
// command, run in the test's process: the other lock commands see it
// held, and an operator's -release makes the holder find it lost and exit
// 1; an interrupt ends a hold with the lock released.
func TestLockCommandInProcess(t *testing.T) {
	addr := serveInProcess(t)
	type result struct {
		code           int
		stdout, stderr string
	}
	hold := func(ctx context.Context, args ...string) (*syncBuffer, <-chan result) {
		var stdout syncBuffer
		done := make(chan result, 1)
		go func() {
			var stderr bytes.Buffer
			code := run(ctx, append([]string{"lock", "-addr", addr}, args...), &stdout, &stderr)
			done <- result{code, stdout.String(), stderr.String()}
		}()
		return &stdout, done
	}
	waitHeld := func(out *syncBuffer, done <-chan result) {
		t.Helper()
		waitUntil(t, "the hold is announced", 60*time.Second, func() (bool, string) {
			select {
			case r := <-done:
				t.Fatalf("scuttle lock ended: %+v", r)
			default:
			}
			return strings.Contains(out.String(), "holding it until interrupted"), out.String()
		})
	}
	cmd := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append([]string{args[0], "-addr", addr}, args[1:]...), &stdout, &stderr)
		return result{code, stdout.String(), stderr.String()}
	}

	out, done := hold(t.Context(), "-ttl", "1s", "jobs", "nightly")
	waitHeld(out, done)
	for _, c := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"lock", "-show", "jobs", "nightly"}, exitOK, "nightly is held by solo\n", ""},
		{[]string{"lock", "jobs", "nightly", "--", "true"}, exitFail, "", "409 Conflict: lock: locked: held by [solo]"},
		{[]string{"lock", "-timeout", "50ms", "jobs", "nightly", "--", "true"}, exitFail, "", "409 Conflict"},
		{[]string{"lock", "-release", "jobs", "nightly"}, exitOK, "released nightly\n", ""},
	} {
		r := cmd(c.args...)
		if r.code != c.code || r.stdout != c.stdout || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("%q: %+v, want exit %d, stdout %q, stderr with %q", c.args, r, c.code, c.stdout, c.stderr)
		}
	}
	r := <-done
	if r.code != exitFail || !strings.Contains(r.stderr, "scuttle lock: lock lost: jobs/nightly: the node no longer holds it") {
		t.Errorf("holder after an operator's release: %+v, want exit 1 with the loss", r)
	}

	ctx, cancel := context.WithCancel(t.Context())
	out, done = hold(ctx, "jobs", "nightly")
	waitHeld(out, done)
	cancel() // as SIGINT does
	r = <-done
	if r.code != exitOK || !strings.HasSuffix(r.stdout, "released nightly\n") {
		t.Errorf("holder after an interrupt: %+v, want exit 0 and the release", r)
	}
	if r := cmd("lock", "-show", "jobs", "nightly"); r.stdout != "nightly is free\n" {
		t.Errorf("after the hold: %+v, want free", r)
	}
}

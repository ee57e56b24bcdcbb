//go:build unix

package filelog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

var long = flag.Bool("long", false, "run the crash test for many more rounds")

// The crash tests run this test binary again as a child process that
// writes to a log and reports each write that returned, and kill it.
// Environment of the child:
const (
	envMode  = "FILELOG_CHILD"      // write, compact or full
	envPath  = "FILELOG_CHILD_PATH" // the log
	envStart = "FILELOG_CHILD_START"
	envStep  = "FILELOG_CHILD_STEP"
	envSeed  = "FILELOG_SEED"   // the parent's seed, to replay a failure
	envRound = "FILELOG_ROUNDS" // rounds of TestCrash
)

// The child's workload: crashWriters goroutines, each doing ops 0, 1, 2...
// on its own opKeys keys; op n sets key n%opKeys to n, or deletes it when
// n%7 == 3. Each writer waits for an op to return before the next, so
// after the child dies, a writer's keys must be as after its last
// acknowledged op, or the one after it (durable, not yet acknowledged).
const (
	crashWriters = 4
	opKeys       = 20
	childID      = "child"
)

func op(w, n int) (key string, value any, del bool) {
	key = fmt.Sprintf("w%d-%02d", w, n%opKeys)
	return key, int64(n), n%7 == 3
}

func doOp(m *model.Model, w, n int) error {
	k, v, del := op(w, n)
	if del {
		return m.Delete(k)
	}
	return m.Set(k, v)
}

// stateAfter returns writer w's keys after ops 0 to n.
func stateAfter(w, n int) map[string]any {
	s := map[string]any{}
	for i := 0; i <= n; i++ {
		k, v, del := op(w, i)
		if del {
			delete(s, k)
		} else {
			s[k] = v
		}
	}
	return s
}

// checkWriter checks writer w's keys in m against its last acknowledged op.
func checkWriter(t *testing.T, m *model.Model, w, acked int) {
	t.Helper()
	got := map[string]any{}
	prefix := fmt.Sprintf("w%d-", w)
	for k, v := range m.Snapshot() {
		if strings.HasPrefix(k, prefix) {
			got[k] = v
		}
	}
	if cmp.Equal(got, stateAfter(w, acked)) || cmp.Equal(got, stateAfter(w, acked+1)) {
		return
	}
	t.Errorf("writer %d, last acknowledged op %d: keys (-want +got):\n%s", w, acked, cmp.Diff(stateAfter(w, acked), got))
}

// TestCrashChild is the child process of the crash tests; it skips itself
// unless run by one.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(envMode)
	if mode == "" {
		t.Skip("the child process of TestCrash, TestCompactCrash and TestDiskFull")
	}
	// Die with the parent: it holds our stdin open.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n") // one write: atomic on a pipe
	}
	fail := func(format string, args ...any) {
		say("fail "+format, args...)
		os.Exit(2)
	}
	path := os.Getenv(envPath)
	m, err := model.New(childID, nil)
	if err != nil {
		fail("%v", err)
	}
	switch mode {
	case "write":
		l, err := Open(path, m, &Config{CompactMin: 64})
		if err != nil {
			fail("open: %v", err)
		}
		_ = l
		// Serve the parent's peer over fds 3 and 4.
		rw := struct {
			io.Reader
			io.Writer
		}{os.NewFile(3, "from-peer"), os.NewFile(4, "to-peer")}
		go stream.NewConn(m, rw, nil).Run(context.Background())
		start := strings.Split(os.Getenv(envStart), ",")
		say("ready")
		var wg sync.WaitGroup
		for w := range crashWriters {
			n, _ := strconv.Atoi(start[w])
			wg.Go(func() {
				for ; ; n++ {
					if err := doOp(m, w, n); err != nil {
						fail("writer %d op %d: %v", w, n, err)
					}
					say("ack %d %d", w, n)
				}
			})
		}
		wg.Wait()

	case "compact":
		l, err := Open(path, m, &Config{CompactRatio: -1})
		if err != nil {
			fail("open: %v", err)
		}
		n := 0
		write := func(count int) {
			for range count {
				if err := doOp(m, 0, n); err != nil {
					fail("op %d: %v", n, err)
				}
				say("ack 0 %d", n)
				n++
			}
		}
		write(60)
		target := os.Getenv(envStep)
		testHookCompact = func(step string) error {
			if step == target {
				say("crash at %s", step)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			if step == stepCreate || step == stepHistory {
				write(5) // appends during the compaction
			}
			return nil
		}
		if err := l.Compact(); err != nil {
			fail("compact: %v", err)
		}
		fail("compaction ended without reaching step %q", target)

	case "full":
		l, err := Open(path, m, &Config{CompactRatio: -1})
		if err != nil {
			fail("open: %v", err)
		}
		limit := l.Stats().Bytes + 4000
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}); err != nil {
			fail("setrlimit: %v", err)
		}
		for n := 0; ; n++ {
			err := doOp(m, 0, n)
			if err == nil {
				say("ack 0 %d", n)
				continue
			}
			say("error failed=%v efbig=%v %v", errors.Is(err, ErrFailed), errors.Is(err, syscall.EFBIG), err)
			break
		}
		err = m.Set("again", 1)
		say("again failed=%v", errors.Is(err, ErrFailed))
		err = l.Close()
		say("close failed=%v", errors.Is(err, ErrFailed))
		say("done")
	default:
		fail("unknown mode %q", mode)
	}
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr bytes.Buffer
	timer  *time.Timer
}

// startChild runs the child in mode on path with extra environment, and
// with extra files as fds 3 and up.
func startChild(t *testing.T, mode, path string, env []string, files ...*os.File) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")}
	c.cmd.Env = append(os.Environ(), append(env, envMode+"="+mode, envPath+"="+path)...)
	c.cmd.ExtraFiles = files
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(stdout)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.timer = time.AfterFunc(2*time.Minute, c.kill) // a stuck child
	return c
}

func (c *child) kill() { c.cmd.Process.Signal(syscall.SIGKILL) }

// wait reaps the child after its output has been read to the end and
// returns how it ended.
func (c *child) wait() error {
	c.timer.Stop()
	c.stdin.Close()
	return c.cmd.Wait()
}

// lines calls fn with each line the child writes until its stdout ends,
// and fails the test on a "fail" line.
func (c *child) lines(t *testing.T, fn func(line string)) {
	t.Helper()
	for c.out.Scan() {
		line := c.out.Text()
		if strings.HasPrefix(line, "fail ") {
			c.kill()
			t.Fatalf("child: %s\nstderr:\n%s", line, c.stderr.String())
		}
		fn(line)
	}
}

// parseAck parses "ack w n".
func parseAck(line string) (w, n int, ok bool) {
	if _, err := fmt.Sscanf(line, "ack %d %d", &w, &n); err != nil {
		return 0, 0, false
	}
	return w, n, true
}

func crashSeed(t *testing.T) uint64 {
	if s := os.Getenv(envSeed); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", envSeed, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// TestCrash kills a child writing with SyncAlways at random moments, and
// checks after each kill that every acknowledged write is in the log, that
// the log opens cleanly, that nothing the child told its peer was lost,
// and that the restarted replica converges with the peer.
func TestCrash(t *testing.T) {
	seed := crashSeed(t)
	rounds := 12
	if *long {
		rounds = 200
	}
	if s := os.Getenv(envRound); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (%s=%d to replay), %d rounds", seed, envSeed, seed, rounds)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "child.log")
	peer := newModel(t, "peer")
	acked := make([]int, crashWriters)
	for w := range acked {
		acked[w] = -1
	}
	truncated := int64(0)
	for round := range rounds {
		// Kill after this many acknowledgements; 0: as soon as it has
		// opened the log.
		killAfter := rng.IntN(150)
		if rng.IntN(8) == 0 {
			killAfter = 0
		}
		fromPeer, toChild, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		fromChild, toPeer, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		start := make([]string, crashWriters)
		for w := range start {
			start[w] = strconv.Itoa(acked[w] + 1)
		}
		c := startChild(t, "write", path, []string{envStart + "=" + strings.Join(start, ",")}, fromPeer, toPeer)
		fromPeer.Close()
		toPeer.Close()
		ctx, cancel := context.WithCancel(t.Context())
		conn := stream.NewConn(peer, struct {
			io.Reader
			io.Writer
		}{fromChild, toChild}, nil)
		connDone := make(chan struct{})
		go func() {
			conn.Run(ctx) // ends with an error when the child dies
			close(connDone)
		}()

		n := 0
		c.lines(t, func(line string) {
			if line == "ready" {
				if killAfter == 0 {
					c.kill()
				}
				return
			}
			w, op, ok := parseAck(line)
			if !ok {
				t.Fatalf("child said %q", line)
			}
			if op != acked[w]+1 {
				t.Fatalf("writer %d acknowledged op %d after op %d", w, op, acked[w])
			}
			acked[w] = op
			if n++; n == killAfter {
				c.kill()
			}
		})
		err = c.wait()
		if ws, ok := exitStatus(err); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not killed; stderr:\n%s", round, err, c.stderr.String())
		}
		cancel()
		fromChild.Close()
		toChild.Close()
		<-connDone

		// The log opens cleanly and holds every acknowledged write.
		m := newModel(t, childID)
		l, err := Open(path, m, &Config{CompactRatio: -1}) // the child compacts
		if err != nil {
			if d := os.Getenv("FILELOG_KEEP"); d != "" {
				b, _ := os.ReadFile(path)
				os.WriteFile(d, b, 0o644)
			}
			t.Fatalf("round %d (killed after %d acks): reopen: %v", round, killAfter, err)
		}
		truncated += l.Stats().Truncated
		for w := range crashWriters {
			checkWriter(t, m, w, acked[w])
		}
		if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("round %d: %s left after Open: %v", round, path+compactSuffix, err)
		}
		// Nothing the peer heard of is lost: of every start of the child
		// (each a source of its own), the log holds at least as much.
		logged := m.Clock()
		for src, p := range peer.Clock() {
			if scuttlebutt.ReplicaID(src) == childID && p > logged[src] {
				t.Errorf("round %d: the peer has the updates of %s up to %v, the log only up to %v", round, src, p, logged[src])
			}
		}
		// The restarted replica catches up with the peer, which has gone on.
		if err := peer.Set(fmt.Sprintf("peer-%d", round), round); err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithCancel(t.Context())
		if err := stream.Pipe(pctx, m, peer); err != nil {
			t.Fatalf("round %d: pipe: %v", round, err)
		}
		waitFor(t, "convergence", func() bool {
			return cmp.Equal(m.Snapshot(), peer.Snapshot()) && cmp.Equal(m.Clock(), peer.Clock())
		})
		pcancel()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d rounds, acknowledged ops per writer %v, %d torn bytes cut", rounds, acked, truncated)
}

func exitStatus(err error) (syscall.WaitStatus, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}

// TestCompactCrash kills a child at each step of a compaction, with
// appends made during it, and checks that the log reopens with all data:
// the old log before the rename, the new one after.
func TestCompactCrash(t *testing.T) {
	steps := []string{stepCreate, stepHistory, stepTail, stepSync, stepRename, stepDirSync, stepSwap}
	for i, step := range steps {
		t.Run(step, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "child.log")
			c := startChild(t, "compact", path, []string{envStep + "=" + step})
			acked, crashed := -1, false
			c.lines(t, func(line string) {
				if line == "crash at "+step {
					crashed = true
					return
				}
				_, n, ok := parseAck(line)
				if !ok || n != acked+1 {
					t.Fatalf("child said %q after op %d", line, acked)
				}
				acked = n
			})
			err := c.wait()
			if ws, ok := exitStatus(err); !crashed || !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child ended with %v before crashing at %s; stderr:\n%s", err, step, c.stderr.String())
			}
			m := newModel(t, childID)
			l := mustOpen(t, path, m, &Config{CompactRatio: -1})
			checkWriter(t, m, 0, acked)
			renamed := i >= 4
			if got := l.Stats().Records; (got < 60) != renamed {
				t.Errorf("%d records after crashing at %s: want the %s log", got, step, map[bool]string{true: "new", false: "old"}[renamed])
			}
			if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left after Open: %v", path+compactSuffix, err)
			}
			if err := doOp(m, 0, acked+1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDiskFull runs a child whose file size limit stops the log from
// growing, and checks that the write that hit it fails, and every later
// one, and that what was acknowledged is in the log.
func TestDiskFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "child.log")
	c := startChild(t, "full", path, nil)
	acked := -1
	var said []string
	c.lines(t, func(line string) {
		if _, n, ok := parseAck(line); ok {
			acked = n
			return
		}
		if len(said) == 0 || said[len(said)-1] != "done" { // then the test's own PASS
			said = append(said, line)
		}
	})
	if err := c.wait(); err != nil {
		t.Fatalf("child: %v; stderr:\n%s", err, c.stderr.String())
	}
	if len(said) != 4 || !strings.HasPrefix(said[0], "error failed=true efbig=true") ||
		said[1] != "again failed=true" || said[2] != "close failed=true" || said[3] != "done" {
		t.Fatalf("child said:\n%s", strings.Join(said, "\n"))
	}
	if acked < 10 {
		t.Errorf("only %d writes before the disk was full", acked+1)
	}
	m := newModel(t, childID)
	mustOpen(t, path, m, nil)
	checkWriter(t, m, 0, acked)
	if _, ok := m.Get("again"); ok {
		t.Errorf("a write made after the failure is in the log")
	}
}

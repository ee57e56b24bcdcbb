package node

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
)

// flakyProxy forwards TCP connections to target and cuts the first cuts
// of them after a random short time. A connection it does not cut ends
// only when both ends have closed their side, so live counts the
// connections some node still holds open.
type flakyProxy struct {
	ln     net.Listener
	target atomic.Value // string
	rng    *rand.Rand
	mu     sync.Mutex // guards rng, cuts
	cuts   int
	live   atomic.Int64
	wg     sync.WaitGroup
}

func newFlakyProxy(t *testing.T, cuts int, seed uint64) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, rng: rand.New(rand.NewPCG(seed, seed)), cuts: cuts}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *flakyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c.(*net.TCPConn))
		}()
	}
}

func (p *flakyProxy) forward(c *net.TCPConn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target.Load().(string))
	if err != nil {
		return
	}
	up := u.(*net.TCPConn)
	defer up.Close()
	p.live.Add(1)
	defer p.live.Add(-1)
	p.mu.Lock()
	var cut *time.Timer
	if p.cuts > 0 {
		p.cuts--
		after := time.Duration(5+p.rng.IntN(60)) * time.Millisecond
		cut = time.AfterFunc(after, func() { c.Close(); up.Close() })
	}
	p.mu.Unlock()
	if cut != nil {
		defer cut.Stop()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src *net.TCPConn) {
		defer wg.Done()
		io.Copy(dst, src)
		dst.CloseWrite()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
}

func TestFlappingLink(t *testing.T) {
	leak.Check(t)
	seed := rand.Uint64()
	const cuts = 12
	p := newFlakyProxy(t, cuts, seed)
	t.Cleanup(func() {
		// Runs after both nodes closed: every connection they had must be
		// closed at both ends.
		waitFor(t, "no connection left open", func() bool { return p.live.Load() == 0 })
		p.ln.Close()
		p.wg.Wait()
	})
	cfgB := testConfig(t, "b")
	cfgB.AdvertiseAddr = p.ln.Addr().String()
	b := start(t, cfgB)
	p.target.Store(b.ln.Addr().String())
	cfgA := testConfig(t, "a")
	cfgA.Join = []string{b.GossipAddr()}
	a := start(t, cfgA)

	want := map[string]any{}
	for i := range 20 {
		k := fmt.Sprint("k", i)
		mustModel(t, a, "doc").Set(k, int64(i))
		want[k] = int64(i)
		time.Sleep(5 * time.Millisecond) // spread the writes over the flaps
	}
	waitFor(t, fmt.Sprintf("the proxy cut %d connections (seed %d)", cuts, seed), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.cuts == 0
	})
	// The last cut connection may still be up; the one after it stays.
	waitFor(t, "a link past the cuts", func() bool {
		st := a.Status()
		return st.Counters.Dials > cuts && len(st.Links) == 1
	})
	waitConverged(t, "doc", want, a, b)
	mustModel(t, b, "doc").Set("from-b", true)
	want["from-b"] = true
	waitConverged(t, "doc", want, a, b)
}

func TestBackoff(t *testing.T) {
	n := &Node{cfg: Config{ReconnectBase: 10 * time.Millisecond, ReconnectMax: time.Second}}
	for failures := range 100 {
		ceil := min(time.Second, 10*time.Millisecond<<min(failures, 31))
		for range 20 {
			if d := n.backoff(failures); d < 0 || d >= ceil {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", failures, d, ceil)
			}
		}
	}
}

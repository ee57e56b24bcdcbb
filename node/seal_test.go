package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/internal/testkit/nettest"
)

// syncBuffer is a log sink the test reads while nodes write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSealedLink links a to b through a proxy that keeps every byte:
// with the secret it never sees a replicated key or value, and a byte it
// flips ends the link with ErrSealBroken, after which a fresh link
// replicates again; without a secret it sees them (the proxy works).
func TestSealedLink(t *testing.T) {
	const key, value = "launch-code", "correct-horse-battery-staple"
	for _, tt := range []struct {
		name     string
		secret   []byte
		wantSeen bool
	}{
		{"no secret", nil, true},
		{"secret", secret1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leak.Check(t)
			proxy := nettest.NewTap(t, "")
			var logs syncBuffer
			cfgB := testConfig(t, "b")
			cfgB.Secret = tt.secret
			cfgB.AdvertiseAddr = proxy.Addr()
			cfgB.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testLogWriter(t)), nil))
			b := start(t, cfgB)
			proxy.SetTarget(b.ln.Addr().String())
			cfgA := testConfig(t, "a") // "a" < "b": a dials b, through the proxy
			cfgA.Secret = tt.secret
			cfgA.Join = []string{b.GossipAddr()}
			a := start(t, cfgA)
			mustModel(t, a, "vault").Set(key, value)
			waitConverged(t, "vault", map[string]any{key: value}, a, b)
			for _, s := range []string{key, value} {
				if got := proxy.Saw(s); got != tt.wantSeen {
					t.Errorf("proxy saw %q: %v, want %v", s, got, tt.wantSeen)
				}
			}
			if tt.secret == nil {
				return
			}
			proxy.Tamper()
			mustModel(t, a, "vault").Set("after", "tamper")
			const want = "sealed link broken: record"
			waitFor(t, "b logs the broken seal", func() bool { return strings.Contains(logs.String(), want) })
			// a redials; the fresh link carries what a wrote.
			waitConverged(t, "vault", map[string]any{key: value, "after": "tamper"}, a, b)
		})
	}
}

// TestSealedConn checks records round-trip in both directions, whatever
// the sizes written, and that a record moved to the other direction or
// replayed does not authenticate.
func TestSealedConn(t *testing.T) {
	transcript := []byte("hellos")
	co, ci, _ := sealKeys(secret1, transcript, true)
	so, si, _ := sealKeys(secret1, transcript, false)
	if !bytes.Equal(co, si) || !bytes.Equal(ci, so) || bytes.Equal(co, ci) {
		t.Fatal("the two sides' keys do not pair up, or the directions share a key")
	}
	for _, size := range []int{1, 100, sizeOfRecordData - 1, sizeOfRecordData, sizeOfRecordData + 1, 3*sizeOfRecordData + 7} {
		c, s := net.Pipe()
		cc, _ := newSealedConn(c, co, ci)
		sc, _ := newSealedConn(s, so, si)
		msg := bytes.Repeat([]byte{byte(size)}, size)
		go func() { cc.Write(msg); cc.Write(msg) }()
		got := make([]byte, 2*size)
		if _, err := io.ReadFull(sc, got); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, append(msg, msg...)) {
			t.Errorf("size %d: read back other bytes", size)
		}
		c.Close()
		s.Close()
	}

	// A record replayed: the second copy has the wrong number.
	var rec bytes.Buffer
	w, _ := newSealedConn(fakeConn{w: &rec}, co, ci)
	w.Write([]byte("once"))
	one := rec.Bytes()
	r, _ := newSealedConn(fakeConn{r: bytes.NewReader(append(append([]byte(nil), one...), one...))}, so, si)
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "once" {
		t.Fatalf("first copy: %q, %v", buf, err)
	}
	if _, err := r.Read(buf); !errors.Is(err, ErrSealBroken) {
		t.Errorf("replayed record: %v, want ErrSealBroken", err)
	}
	// A record sent back the other way: the wrong key.
	r, _ = newSealedConn(fakeConn{r: bytes.NewReader(one)}, co, ci)
	if _, err := r.Read(buf); !errors.Is(err, ErrSealBroken) {
		t.Errorf("reflected record: %v, want ErrSealBroken", err)
	}
	// An oversized length is refused before it is read.
	r, _ = newSealedConn(fakeConn{r: bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})}, so, si)
	if _, err := r.Read(buf); !errors.Is(err, ErrSealBroken) {
		t.Errorf("oversized record: %v, want ErrSealBroken", err)
	}
}

// fakeConn is a net.Conn over a reader or a writer.
type fakeConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (f fakeConn) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f fakeConn) Write(p []byte) (int, error) { return f.w.Write(p) }

// BenchmarkSealedConn seals and opens writes of each size in memory: the
// cost the record layer adds to a link, without the network.
func BenchmarkSealedConn(b *testing.B) {
	out, in, _ := sealKeys(secret1, []byte("hellos"), true)
	for _, size := range []int{64, 1 << 10, 16 << 10, 64 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			var wire bytes.Buffer
			w, _ := newSealedConn(fakeConn{w: &wire}, out, in)
			r, _ := newSealedConn(fakeConn{r: &wire}, in, out)
			msg := make([]byte, size)
			got := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			overhead := 0
			for b.Loop() {
				wire.Reset()
				if _, err := w.Write(msg); err != nil {
					b.Fatal(err)
				}
				overhead = wire.Len() - size
				if _, err := io.ReadFull(r, got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(overhead), "B-overhead/write")
		})
	}
}

// TestSealWire pins the sealed link's wire numbers and key derivation: a
// change breaks links between versions, so it must be deliberate.
func TestSealWire(t *testing.T) {
	if flagSecret != 1 || flagSealed != 2 {
		t.Errorf("hello flags: secret %d, sealed %d; want 1, 2", flagSecret, flagSealed)
	}
	if sizeOfRecordHeader != 4 || sizeOfRecordData != 16384 || sizeOfSealKey != 32 {
		t.Errorf("record header %d, data %d, key %d; want 4, 16384, 32", sizeOfRecordHeader, sizeOfRecordData, sizeOfSealKey)
	}
	out, in, err := sealKeys([]byte("0123456789abcdef"), []byte("client hello|server hello"), true)
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	w, _ := newSealedConn(fakeConn{w: &wire}, out, in)
	w.Write([]byte("scuttle"))
	got := fmt.Sprintf("%x", wire.Bytes())
	// Checked independently (Python cryptography: HKDF-SHA256, AESGCM).
	const want = "00000017ea802237b55630ae70b79775a5b13be00ebd819f897a2f"
	if got != want {
		t.Errorf("the record of \"scuttle\" under the test keys is\n%s, want\n%s", got, want)
	}
}

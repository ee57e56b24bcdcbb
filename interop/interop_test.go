package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// values are written on both sides: nested values, unicode and escapes,
// large, small and fractional numbers, empty containers.
var values = []struct {
	key   string
	value any
}{
	{"nested", map[string]any{"a": []any{1, 2, map[string]any{"b": nil, "c": "x"}}, "d": map[string]any{"e": true}}},
	{"unicode", "héllo € 😀 \u2028 \"quoted\" \\ \n\t\x01 </script> ☃"},
	{"big", 1e300},
	{"small", 1.5e-7},
	{"maxsafe", 1<<53 - 1},
	{"int62", 1 << 62}, // beyond 2^53: JavaScript rounds it to a double
	{"neg", -123.456},
	{"tenth", 0.1},
	{"zero", 0},
	{"false", false},
	{"emptyarr", []any{}},
	{"emptyobj", map[string]any{}},
	{"emptystr", ""},
	{"deep", map[string]any{"l1": []any{[]any{[]any{map[string]any{"l5": []any{"bottom"}}}}}}},
}

// setValues writes values on the Go model under prefix.
func setValues(t *testing.T, m *model.Model, prefix string) {
	t.Helper()
	for _, v := range values {
		if err := m.Set(prefix+v.key, v.value); err != nil {
			t.Fatalf("Set %s%s: %v", prefix, v.key, err)
		}
	}
}

// entries returns values under prefix as setMany entries.
func entries(prefix string) [][2]any {
	var out [][2]any
	for _, v := range values {
		out = append(out, [2]any{prefix + v.key, v.value})
	}
	return out
}

// stamp is an update's identity: its source and its timestamp, exactly.
type stamp struct {
	Source string
	TS     float64
}

// nodeStamps returns the (source, timestamp) of each update in a Node
// history, sorted.
func nodeStamps(t *testing.T, history json.RawMessage) []stamp {
	t.Helper()
	var h [][]json.RawMessage
	if err := json.Unmarshal(history, &h); err != nil {
		t.Fatalf("node history %s: %v", history, err)
	}
	var out []stamp
	for _, u := range h {
		var s stamp
		if err := json.Unmarshal(u[1], &s.TS); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(u[2], &s.Source); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, cmpStamp)
	return out
}

func goStamps(m *model.Model) []stamp {
	var out []stamp
	for _, u := range m.History(nil) {
		out = append(out, stamp{u.Source, float64(u.Timestamp)})
	}
	slices.SortFunc(out, cmpStamp)
	return out
}

func cmpStamp(a, b stamp) int {
	if a.TS != b.TS {
		if a.TS < b.TS {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Source, b.Source)
}

// checkSameHistory checks that the Node peer and the Go model hold the
// same latest update of every key, tombstones included, with bit-exact
// timestamps, and the same clock.
func checkSameHistory(t *testing.T, m *model.Model, p *nodePeer) {
	t.Helper()
	st := p.state()
	if d := cmp.Diff(goStamps(m), nodeStamps(t, st.History)); d != "" {
		t.Errorf("histories differ (-go %s +node %s):\n%s", m.ID(), p.id, d)
	}
	var clock map[string]float64
	if err := json.Unmarshal(st.Clock, &clock); err != nil {
		t.Fatal(err)
	}
	goClock := map[string]float64{}
	for src, ts := range m.Clock() {
		goClock[src] = float64(ts)
	}
	if d := cmp.Diff(goClock, clock); d != "" {
		t.Errorf("clocks differ (-go %s +node %s):\n%s", m.ID(), p.id, d)
	}
}

// TestDuplex is the main scenario, with the Go side as the listener and as
// the connector: writes before the handshake (history) and live writes on
// both sides, deletes both ways, bursts with fractional timestamps.
func TestDuplex(t *testing.T) {
	for _, goListens := range []bool{true, false} {
		name := map[bool]string{true: "go-listens", false: "node-listens"}[goListens]
		t.Run(name, func(t *testing.T) {
			g := newModel(t, "go-A")
			setValues(t, g, "g-")
			if err := g.Delete("g-zero"); err != nil { // a tombstone in the history
				t.Fatal(err)
			}
			n := startNode(t, "model", "node-B")
			n.setMany(entries("n-")) // one tick: fractional timestamps
			n.set("n-false", nil)    // a JavaScript delete in the history

			var gc *goConn
			sname := "out" // the Node stream's name
			if goListens {
				srv := serveGo(t, g, stream.Options{})
				n.connect(srv.port, sname, nil)
				gc = srv.conn(t, 0)
			} else {
				port := n.listen(nil)
				gc = dialGo(t, g, port, stream.Options{})
				sname = "in1"
			}
			n.waitEvent("sync", sname)
			gc.waitSynced(t)
			converge(t, g, n)
			checkSameHistory(t, g, n)

			// Live, both ways, deletes across.
			if err := g.Set("live-g", map[string]any{"from": "go", "n": 1.25}); err != nil {
				t.Fatal(err)
			}
			n.set("live-n", []any{"from", "node", 2.5})
			if err := g.Delete("n-big"); err != nil {
				t.Fatal(err)
			}
			n.set("g-big", nil)
			n.setMany([][2]any{{"burst-1", 1}, {"burst-2", 2}, {"burst-3", 3}, {"g-tenth", 0.2}})
			for i := range 5 {
				if err := g.Set(fmt.Sprintf("go-burst-%d", i), i); err != nil {
					t.Fatal(err)
				}
			}
			converge(t, g, n)
			checkSameHistory(t, g, n)
			if st := n.state(); st.OldOwn != 0 {
				t.Errorf("node got %d of its own updates back: the Go side echoes", st.OldOwn)
			}
			gc.checkError(t, "Go session")
		})
	}
}

// TestChainGoNodeGo relays through a Node replica between two Go ones.
func TestChainGoNodeGo(t *testing.T) {
	a, c := newModel(t, "go-A"), newModel(t, "go-C")
	setValues(t, a, "a-")
	if err := c.Set("c-only", "from C"); err != nil {
		t.Fatal(err)
	}
	sa, sc := serveGo(t, a, stream.Options{}), serveGo(t, c, stream.Options{})
	n := startNode(t, "model", "node-B")
	n.set("b-only", "from B")
	n.connect(sa.port, "to-a", nil)
	n.connect(sc.port, "to-c", nil)
	n.waitEvent("sync", "to-a")
	n.waitEvent("sync", "to-c")
	convergeGo(t, a, c)

	if err := a.Set("live-a", "A"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("a-unicode"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("live-c", []any{"C", 3}); err != nil {
		t.Fatal(err)
	}
	n.set("live-b", "B")
	convergeGo(t, a, c)
	converge(t, a, n)
	checkSameHistory(t, a, n)
	checkSameHistory(t, c, n)
	sa.checkErrors(t)
	sc.checkErrors(t)
}

// TestChainNodeGoNode relays through a Go replica between two Node ones.
func TestChainNodeGoNode(t *testing.T) {
	b := newModel(t, "go-B")
	if err := b.Set("b-only", "from B"); err != nil {
		t.Fatal(err)
	}
	sb := serveGo(t, b, stream.Options{})
	na, nc := startNode(t, "model", "node-A"), startNode(t, "model", "node-C")
	na.setMany(entries("a-"))
	nc.set("c-only", "from C")
	na.connect(sb.port, "to-b", nil)
	nc.connect(sb.port, "to-b", nil)
	na.waitEvent("sync", "to-b")
	nc.waitEvent("sync", "to-b")
	converge(t, b, na, nc)

	na.set("live-a", "A")
	nc.set("a-nested", nil) // C deletes A's key, through B
	nc.setMany([][2]any{{"live-c", 1}, {"live-c2", 2}})
	if err := b.Set("live-b", "B"); err != nil {
		t.Fatal(err)
	}
	converge(t, b, na, nc)
	checkSameHistory(t, b, na)
	checkSameHistory(t, b, nc)
	for _, p := range []*nodePeer{na, nc} {
		if st := p.state(); st.OldOwn != 0 {
			t.Errorf("node %s got %d of its own updates back", p.id, st.OldOwn)
		}
	}
	sb.checkErrors(t)
}

// TestNodeRestart kills a Node replica that saves itself to a file, writes
// on the Go side while it is down, restarts it from its file, and
// reconnects.
func TestNodeRestart(t *testing.T) {
	g := newModel(t, "go-A")
	if err := g.Set("before", 1); err != nil {
		t.Fatal(err)
	}
	srv := serveGo(t, g, stream.Options{})
	file := filepath.Join(t.TempDir(), "node-B.jsonl")

	n := startNode(t, "model", "node-B")
	n.call("save", map[string]any{"file": file, "tail": true})
	n.setMany(entries("n-"))
	n.connect(srv.port, "s1", nil)
	n.waitEvent("sync", "s1")
	converge(t, g, n)
	if err := g.Set("live-before-crash", "x"); err != nil {
		t.Fatal(err)
	}
	converge(t, g, n)
	n.kill()
	first := srv.conn(t, 0)
	select {
	case <-first.done: // nil or a reset: either way the session is over
	case <-time.After(timeout):
		t.Fatal("the Go session did not end when Node died")
	}

	// Written while Node is down.
	if err := g.Set("while-down", "y"); err != nil {
		t.Fatal(err)
	}
	if err := g.Delete("n-big"); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, "model", "node-B")
	if r := n2.call("load", map[string]any{"file": file}); len(r.Errors) > 0 {
		t.Fatalf("node could not load its own file: %v", r.Errors)
	}
	n2.set("after-restart", "z")
	n2.connect(srv.port, "s2", nil)
	n2.waitEvent("sync", "s2")
	srv.conn(t, 1).waitSynced(t)
	converge(t, g, n2)
	n2.set("live-after-restart", true)
	if err := g.Set("live-go", false); err != nil {
		t.Fatal(err)
	}
	converge(t, g, n2)
	checkSameHistory(t, g, n2)
	srv.conn(t, 1).checkError(t, "Go session after restart")
}

// TestOneWay runs JavaScript's master/slave pattern against Go's one-way
// modes, both ways round. JavaScript's master sends "SYNC" twice.
func TestOneWay(t *testing.T) {
	t.Run("node-master", func(t *testing.T) {
		n := startNode(t, "model", "node-M")
		n.setMany(entries("m-"))
		port := n.listen(map[string]any{"writable": false, "sendClock": true})
		g := newModel(t, "go-S")
		gc := dialGo(t, g, port, stream.Options{Mode: scuttlebutt.ReceiveOnly})
		gc.waitSynced(t)
		n.set("live-m", "after sync")
		converge(t, g, n)
		gc.checkError(t, "Go receive-only session")
	})
	t.Run("go-master", func(t *testing.T) {
		g := newModel(t, "go-M")
		setValues(t, g, "m-")
		srv := serveGo(t, g, stream.Options{Mode: scuttlebutt.SendOnly})
		n := startNode(t, "model", "node-S")
		n.connect(srv.port, "from-master", map[string]any{"readable": false, "sendClock": true})
		n.waitEvent("sync", "from-master")
		if err := g.Set("live-m", "after sync"); err != nil {
			t.Fatal(err)
		}
		converge(t, g, n)
		n.set("slave-only", 1) // goes nowhere: the Go master ignores it
		if err := g.Set("live-m2", 2); err != nil {
			t.Fatal(err)
		}
		convergeHiding(t, g, []string{"slave-only"}, n)
		if _, ok := g.Get("slave-only"); ok {
			t.Error("the send-only Go master applied the slave's update")
		}
		srv.checkErrors(t)
	})
}

// TestPersistence loads files that Node's createReadStream wrote into Go,
// and files that Go wrote into Node.
func TestPersistence(t *testing.T) {
	t.Run("node-to-go", func(t *testing.T) {
		n := startNode(t, "model", "node-P")
		n.setMany(entries("p-"))
		n.set("gone", 1)
		n.set("gone", nil)
		dir := t.TempDir()
		oneShot, tailing := filepath.Join(dir, "oneshot.jsonl"), filepath.Join(dir, "tail.jsonl")
		n.call("save", map[string]any{"file": oneShot, "tail": false})
		n.call("save", map[string]any{"file": tailing, "tail": true})
		n.set("after-sync", "appended by the tailing save")
		waitFileContains(t, tailing, `"after-sync"`)
		for _, f := range []string{oneShot, tailing} {
			for _, id := range []string{"go-L", "node-P"} { // a fresh replica, and the same id restored
				t.Run(filepath.Base(f)+"/"+id, func(t *testing.T) {
					g := newModel(t, id)
					r, err := os.Open(f)
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					if _, err := stream.LoadJSONLines(t.Context(), g, r); err != nil {
						t.Fatalf("LoadJSONLines: %v", err)
					}
					if f == oneShot {
						if _, ok := g.Get("after-sync"); ok {
							t.Error("the one-shot file holds a write made after it was saved")
						}
						return
					}
					converge(t, g, n)
					checkSameHistory(t, g, n)
				})
			}
		}
	})
	t.Run("go-to-node", func(t *testing.T) {
		g := newModel(t, "go-S")
		setValues(t, g, "s-")
		if err := g.Delete("s-big"); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := stream.SaveJSONLines(t.Context(), g, &buf); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "go.jsonl")
		if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		n := startNode(t, "model", "node-L")
		if r := n.call("load", map[string]any{"file": file}); len(r.Errors) > 0 {
			t.Fatalf("node could not load the Go file: %v", r.Errors)
		}
		converge(t, g, n)
		checkSameHistory(t, g, n)

		// And back into Go, restoring the same replica.
		g2 := newModel(t, "go-S")
		if _, err := stream.LoadJSONLines(t.Context(), g2, bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		convergeGo(t, g, g2)
		if d := cmp.Diff(goStamps(g), goStamps(g2)); d != "" {
			t.Errorf("restored history differs (-saved +restored):\n%s", d)
		}
	})
}

// waitFileContains polls a file that another process appends to.
func waitFileContains(t *testing.T, file, s string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(file)
		if bytes.Contains(b, []byte(s)) && bytes.HasSuffix(b, []byte("\n")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not contain %s within %v:\n%s", file, s, timeout, b)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// TestRandomValuesByteCompat checks byte compatibility on random values:
// a file Node saves, loaded into Go (same replica id) and saved again, is
// the same file but for the id in its first line, which is the saver's
// source id (Go's has an incarnation); and a file Go saves, loaded into
// Node (whose id is Go's source id) and saved again, is the same file.
// Numbers are random float64 bit patterns and integers, strings random
// Unicode with control characters, objects random keys.
func TestRandomValuesByteCompat(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()

	t.Run("node-go-node", func(t *testing.T) {
		n := startNode(t, "model", "node-R")
		var es [][2]any
		for i := range 300 {
			es = append(es, [2]any{fmt.Sprintf("k%d", i), randValue(r, 3, true)})
		}
		n.setMany(es[:150])
		n.set("k7", nil)
		n.setMany(es[150:])
		jsFile := filepath.Join(dir, "node.jsonl")
		n.call("save", map[string]any{"file": jsFile, "tail": false})
		js, err := os.ReadFile(jsFile)
		if err != nil {
			t.Fatal(err)
		}
		g := newModel(t, "node-R")
		if _, err := stream.LoadJSONLines(t.Context(), g, bytes.NewReader(js)); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		var out bytes.Buffer
		if err := stream.SaveJSONLines(t.Context(), g, &out); err != nil {
			t.Fatal(err)
		}
		// Go saves as its source: node-R and an incarnation.
		js = bytes.Replace(js, []byte(`{"id":"node-R",`), []byte(`{"id":`+strconv.Quote(g.Source())+`,`), 1)
		compareLines(t, seed, "node", js, "go", out.Bytes())
	})
	t.Run("go-node-go", func(t *testing.T) {
		g := newModel(t, "go-R")
		for i := range 300 {
			if err := g.Set(fmt.Sprintf("k%d", i), randValue(r, 3, false)); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.Delete("k7"); err != nil {
			t.Fatal(err)
		}
		var gofile bytes.Buffer
		if err := stream.SaveJSONLines(t.Context(), g, &gofile); err != nil {
			t.Fatal(err)
		}
		in, out := filepath.Join(dir, "go.jsonl"), filepath.Join(dir, "go-node.jsonl")
		if err := os.WriteFile(in, gofile.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		n := startNode(t, "model", g.Source()) // the same replica
		if r := n.call("load", map[string]any{"file": in}); len(r.Errors) > 0 {
			t.Fatalf("seed %d: node could not load the Go file: %v", seed, r.Errors)
		}
		n.call("save", map[string]any{"file": out, "tail": false})
		js, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		compareLines(t, seed, "go", gofile.Bytes(), "node", js)
	})
}

func compareLines(t *testing.T, seed uint64, aName string, a []byte, bName string, b []byte) {
	t.Helper()
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	if d := cmp.Diff(al, bl); d != "" {
		t.Errorf("seed %d: the files differ (-%s +%s):\n%s", seed, aName, bName, d)
	}
	if len(al) < 100 {
		t.Errorf("only %d lines", len(al))
	}
}

// randValue returns a random JSON value. wide allows what does not survive
// Go -> JavaScript byte for byte (documented differences): integers beyond
// ±2^53 and object keys that look like array indexes, which JavaScript
// moves first.
func randValue(r *rand.Rand, depth int, wide bool) any {
	n := 8
	if depth == 0 {
		n = 6
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		if wide {
			return r.Int64() >> r.IntN(64)
		}
		return r.Int64N(1<<54) - 1<<53
	case 3, 4:
		for {
			var f float64
			switch r.IntN(3) {
			case 0:
				f = math.Float64frombits(r.Uint64())
			case 1:
				f = float64(r.Int64N(1<<40)) / float64(int64(1)<<r.IntN(40))
			default:
				f = r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
			}
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	case 5:
		return randString(r, r.IntN(12))
	case 6:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randValue(r, depth-1, wide)
		}
		return a
	default:
		o := map[string]any{}
		for range r.IntN(4) {
			k := randString(r, 1+r.IntN(3))
			if wide && r.IntN(4) == 0 {
				k = strconv.Itoa(r.IntN(100))
			}
			if i, err := strconv.Atoi(k); !wide && err == nil && strconv.Itoa(i) == k {
				k += "x" // an array index: JavaScript would move it first
			}
			o[k] = randValue(r, depth-1, wide)
		}
		return o
	}
}

func randString(r *rand.Rand, n int) string {
	alphabet := []rune("abcXYZ09 é€😀\u2028\u2029\"\\/<>&\x00\x01\x1f\x7f\n\t\r")
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

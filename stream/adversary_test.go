package stream_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// The attacks below go through the real wire: a victim model, persisted
// with filelog, is served by a stream.Conn over a net.Pipe, and the
// attacker writes hand-made bytes to the other end (SPEC.md's frames, or
// the JSON-lines codec's lines). Each attack runs over both codecs where
// the JSON-lines codec can say it. After each, the victim must still work:
// stamp its writes near the wall clock, serve honest peers, and come back
// from its log.

// msPerDay and msPerCentury are offsets from now, in milliseconds.
const (
	msPerDay     = float64(24 * time.Hour / time.Millisecond)
	msPerCentury = 100 * 365.25 * msPerDay
)

// checkUnchanged checks that the victim holds what it held before the
// attack.
func checkUnchanged(t *testing.T, m *model.Model, snap map[string]any, clock vclock.Clock) {
	t.Helper()
	if d := cmp.Diff(snap, m.Snapshot()); d != "" {
		t.Errorf("%s: the attack changed the snapshot (-before +after):\n%s", m.ID(), d)
	}
	if d := cmp.Diff(clock, m.Clock()); d != "" {
		t.Errorf("%s: the attack changed the clock (-before +after):\n%s", m.ID(), d)
	}
}

// checkRestart restarts v from its log and checks that it comes back with
// everything it held.
func checkRestart(t *testing.T, v *durable) *durable {
	t.Helper()
	snap, clock := v.Snapshot(), v.Clock()
	v2 := v.restart(t)
	if d := cmp.Diff(snap, v2.Snapshot()); d != "" {
		t.Errorf("%s: the snapshot after a restart from the log differs (-before +after):\n%s", v.ID(), d)
	}
	if d := cmp.Diff(clock, v2.Clock()); d != "" {
		t.Errorf("%s: the clock after a restart from the log differs (-before +after):\n%s", v.ID(), d)
	}
	return v2
}

// checkServes links a fresh replica named id to v with codec, both having
// written a key, and waits until they have converged; then stops the
// sessions.
func checkServes(t *testing.T, v *model.Model, id string, codec stream.Codec) {
	t.Helper()
	fresh := newTestModel(t, id)
	set(t, fresh, id, "written by "+id)
	sv, sf := serveBoth(t, v, fresh, codec)
	set(t, v, "to "+id, "written by "+v.ID())
	waitValue(t, fresh, "to "+id, "written by "+v.ID())
	waitConverged(t, v, fresh)
	stopAll(t, sv, sf)
}

// TestAttackTimestampMaxFloat: one update stamped math.MaxFloat64, after a
// valid update in the same frame, ends the session with ErrClockOffset
// naming the peer and the source; neither update is applied, the
// victim's hybrid logical clock does not jump, and the victim serves peers
// and reopens its log as before.
func TestAttackTimestampMaxFloat(t *testing.T) {
	for _, wc := range wireCodecs {
		t.Run(wc.name, func(t *testing.T) {
			leak.Check(t)
			v := newDurable(t, "victim", nil)
			set(t, v.Model, "before", int64(1))
			snap, clock := v.Snapshot(), v.Clock()

			a := newAttacker(t, "mallory~a1", v.Model, wc.codec)
			const evil = "eve~b2"
			a.send(
				a.hello(t, nil),
				a.updates(t,
					rawUpdate{source: a.id, ts: nowMS() - 1000, key: "good", value: 1},
					rawUpdate{source: evil, ts: math.MaxFloat64, key: "evil", value: 2}),
				a.again(t),
			)
			checkRefused(t, "an update stamped MaxFloat64", a.result(t), scuttlebutt.ErrClockOffset, a.id, evil)
			checkUnchanged(t, v.Model, snap, clock)
			if got := v.Stats().OffsetRefused; got != 1 {
				t.Errorf("Stats().OffsetRefused = %d, want 1", got)
			}

			setNearNow(t, v.Model, "k", int64(1), int64(2), int64(3))
			if got, ok := v.Get("k"); !ok || got != int64(3) {
				t.Errorf("Get(k) = %v, %v after three Sets; want 3, the last", got, ok)
			}
			checkServes(t, v.Model, "fresh", wc.codec)
			v = checkRestart(t, v)
			checkServes(t, v.Model, "after-restart", wc.codec)
		})
	}
}

// TestAttackFutureTimestamps: updates stamped a day, a century and 1e300 ms
// ahead are refused with ErrClockOffset; the victim's clock stays near the
// wall clock, and it goes on relaying between honest replicas.
func TestAttackFutureTimestamps(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   func() float64
	}{
		{"now+1 day", func() float64 { return nowMS() + msPerDay }},
		{"now+100 years", func() float64 { return nowMS() + msPerCentury }},
		{"1e300", func() float64 { return 1e300 }},
	} {
		for _, wc := range wireCodecs {
			t.Run(tc.name+"/"+wc.name, func(t *testing.T) {
				leak.Check(t)
				v := newDurable(t, "victim", nil)
				c, d := newTestModel(t, "c"), newTestModel(t, "d")
				serveBoth(t, c, v.Model, wc.codec)
				serveBoth(t, v.Model, d, wc.codec)
				set(t, c, "c0", "before")
				waitValue(t, d, "c0", "before")
				snap, clock := v.Snapshot(), v.Clock()

				a := newAttacker(t, "mallory~a1", v.Model, wc.codec)
				a.send(a.hello(t, nil), a.updates(t, rawUpdate{source: "eve~b2", ts: tc.ts(), key: "evil", value: 1}), a.again(t))
				checkRefused(t, "an update stamped "+tc.name, a.result(t), scuttlebutt.ErrClockOffset, a.id, "eve~b2")
				checkUnchanged(t, v.Model, snap, clock)

				setNearNow(t, v.Model, "v", int64(1))
				set(t, c, "c1", "after")
				waitValue(t, v.Model, "c1", "after")
				waitValue(t, d, "c1", "after")
				waitValue(t, d, "v", int64(1))
				waitConverged(t, c, v.Model, d)
			})
		}
	}
}

// TestAttackFutureClockEntry: a sync, clock or hello message alone, with no
// update, that claims an honest replica's source up to 1e300 is refused
// with ErrClockOffset; the victim's clock does not take it, and the honest
// replica's writes still reach the victim and the victim's neighbour.
func TestAttackFutureClockEntry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		codecs []stream.Codec
		msgs   func(t *testing.T, a *attacker, claim rawClock) [][]byte
	}{
		{"sync", []stream.Codec{stream.CBOR}, func(t *testing.T, a *attacker, claim rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, claim)}
		}},
		{"clock", []stream.Codec{stream.CBOR}, func(t *testing.T, a *attacker, claim rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, nil), a.clock(t, claim)}
		}},
		{"hello", []stream.Codec{stream.CBOR, stream.JSONLines}, func(t *testing.T, a *attacker, claim rawClock) [][]byte {
			return [][]byte{a.hello(t, claim)}
		}},
	} {
		for _, codec := range tc.codecs {
			t.Run(tc.name+"/"+codec.String(), func(t *testing.T) {
				leak.Check(t)
				honest, v, n := newTestModel(t, "honest"), newDurable(t, "victim", nil), newTestModel(t, "neighbour")
				serveBoth(t, honest, v.Model, codec)
				serveBoth(t, v.Model, n, codec)
				set(t, honest, "h0", int64(0))
				waitValue(t, n, "h0", int64(0))
				snap, clock := v.Snapshot(), v.Clock()

				a := newAttacker(t, "mallory~a1", v.Model, codec)
				a.send(append(tc.msgs(t, a, rawClock{honest.Source(): 1e300}), a.again(t))...)
				checkRefused(t, "a "+tc.name+" claiming "+honest.Source()+": 1e300", a.result(t), scuttlebutt.ErrClockOffset, a.id, honest.Source())
				checkUnchanged(t, v.Model, snap, clock)

				setNearNow(t, v.Model, "v", int64(1))
				for i := int64(1); i <= 3; i++ {
					set(t, honest, "h", i)
				}
				waitValue(t, v.Model, "h", int64(3))
				waitValue(t, n, "h", int64(3))
				waitConverged(t, honest, v.Model, n)
			})
		}
	}
}

// manySources returns a clock of n made-up sources, each id padded to
// idLen bytes, stamped a second ago and earlier. Clocks are made once per
// shape: the attacks only read them.
func manySources(n, idLen int) rawClock {
	manyMu.Lock()
	defer manyMu.Unlock()
	key := [2]int{n, idLen}
	if c, ok := manyCache[key]; ok {
		return c
	}
	ts := nowMS() - 1000
	c := make(rawClock, n)
	for i := range n {
		id := fmt.Sprintf("fake%06d", i)
		c[id+strings.Repeat("x", max(0, idLen-len(id)))] = ts - float64(i)
	}
	manyCache[key] = c
	return c
}

var (
	manyMu    sync.Mutex
	manyCache = map[[2]int]rawClock{}
)

// clockParts writes c as clock-part frames (kind 5) of at most per entries
// each, in no particular order.
func clockParts(t *testing.T, c rawClock, per int) []byte {
	var out []byte
	part := rawClock{}
	for src, ts := range c {
		part[src] = ts
		if len(part) == per {
			out = append(out, cborFrame(t, kindClockPart, map[string]float64(part))...)
			part = rawClock{}
		}
	}
	if len(part) > 0 {
		out = append(out, cborFrame(t, kindClockPart, map[string]float64(part))...)
	}
	return out
}

// TestAttackManySources: a hello, sync or clock naming 100,000 made-up
// sources is refused, with ErrTooManySources or, when it does not fit in a
// frame, ErrFrameTooLarge; the victim then serves fresh replicas, before
// and after a restart from its log. Clock parts (kind 5) do not get round
// the limit.
func TestAttackManySources(t *testing.T) {
	const n = 100_000
	refuse := []error{scuttlebutt.ErrTooManySources, stream.ErrFrameTooLarge}
	for _, tc := range []struct {
		name   string
		codecs []stream.Codec
		idLen  int     // of the made-up sources
		want   []error // Run wraps one of these
		msgs   func(t *testing.T, a *attacker, c rawClock) [][]byte
	}{
		{"hello", []stream.Codec{stream.CBOR, stream.JSONLines}, 10, refuse, func(t *testing.T, a *attacker, c rawClock) [][]byte {
			return [][]byte{a.hello(t, c)}
		}},
		{"sync", []stream.Codec{stream.CBOR}, 10, refuse, func(t *testing.T, a *attacker, c rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, c)}
		}},
		{"clock", []stream.Codec{stream.CBOR}, 10, refuse, func(t *testing.T, a *attacker, c rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, nil), a.clock(t, c)}
		}},
		{"hello larger than a frame", []stream.Codec{stream.CBOR, stream.JSONLines}, 48, refuse, func(t *testing.T, a *attacker, c rawClock) [][]byte {
			return [][]byte{a.hello(t, c)}
		}},
		{"hello in clock parts", []stream.Codec{stream.CBOR}, 10, refuse, func(t *testing.T, a *attacker, c rawClock) [][]byte {
			return [][]byte{clockParts(t, c, 10_000), a.hello(t, nil)}
		}},
		{"sync in clock parts", []stream.Codec{stream.CBOR}, 10, refuse, func(t *testing.T, a *attacker, c rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), clockParts(t, c, 10_000), a.sync(t, nil)}
		}},
	} {
		for _, codec := range tc.codecs {
			t.Run(tc.name+"/"+codec.String(), func(t *testing.T) {
				leak.Check(t)
				v := newDurable(t, "victim", nil)
				set(t, v.Model, "before", int64(1))
				snap, clock := v.Snapshot(), v.Clock()

				a := newAttacker(t, "mallory~a1", v.Model, codec)
				a.send(append(tc.msgs(t, a, manySources(n, tc.idLen)), a.again(t))...)
				err := a.result(t)
				if errors.Is(err, stream.ErrUnknownKind) && strings.Contains(tc.name, "clock parts") {
					t.Skipf("stream does not know clock parts (kind %d) yet: %v", kindClockPart, err)
				}
				if !isAny(err, tc.want) {
					t.Fatalf("a %s naming %d sources: the victim's Run = %v, want an error wrapping one of %q", tc.name, n, err, tc.want)
				}
				t.Logf("refused: %.300s", err)
				checkUnchanged(t, v.Model, snap, clock)

				checkServes(t, v.Model, "fresh", codec)
				v = checkRestart(t, v)
				checkServes(t, v.Model, "after-restart", codec)
			})
		}
	}
}

// TestAttackManySourcesWithinLimit: a clock of 16,000 legitimate-looking
// sources, within the limit, is accepted; the victim still opens
// sessions, also with frames too small for its clock's hello (clock
// parts), and comes back from its log.
func TestAttackManySourcesWithinLimit(t *testing.T) {
	for _, wc := range wireCodecs {
		t.Run(wc.name, func(t *testing.T) {
			leak.Check(t)
			const n = 16_000
			v := newDurable(t, "victim", nil)
			set(t, v.Model, "before", int64(1))
			legit := make(rawClock, n)
			now := nowMS()
			for i := range n {
				legit[scuttlebutt.SourceID(fmt.Sprintf("node-%05d", i), fmt.Sprintf("%08x", i*7919))] = now - float64(i%3_600_000)
			}

			a := newAttacker(t, "peer~a1", v.Model, wc.codec)
			if a.json() {
				// A JSON-lines sync carries no clock: the hello is the
				// only clock this codec can send.
				a.send(a.hello(t, legit), a.sync(t, nil))
			} else {
				a.send(a.hello(t, nil), a.sync(t, legit))
			}
			waitSynced(t, a.victim)
			a.hangUp()
			if err := a.result(t); err != nil {
				t.Fatalf("the session that carried %d sources: Run = %v, want nil", n, err)
			}
			if !a.json() {
				if got := len(v.Clock()); got < n {
					t.Fatalf("the victim's clock has %d sources after a sync of %d, want them all", got, n)
				}
			}

			checkServes(t, v.Model, "fresh", wc.codec)
			if !a.json() {
				// The victim's hello now needs clock parts in 64 KiB
				// frames.
				fresh := newTestModel(t, "small-frames")
				ca, cb := pipePair(t)
				opts := &stream.Options{MaxFrameSize: 64 << 10}
				sv := start(t, "victim (to small-frames)", v.Model, ca, opts)
				sf := start(t, "small-frames (to victim)", fresh, cb, opts)
				select {
				case <-sv.Synced():
				case <-sv.done:
					if errors.Is(sv.err, stream.ErrFrameTooLarge) {
						t.Skipf("stream cannot split a clock of %d sources over 64 KiB frames (clock parts, kind %d, missing): %v", n, kindClockPart, sv.err)
					}
				}
				waitSynced(t, sv, sf)
				waitConverged(t, v.Model, fresh)
				stopAll(t, sv, sf)
			}
			v = checkRestart(t, v)
			checkServes(t, v.Model, "after-restart", wc.codec)
		})
	}
}

// isAny reports whether err wraps one of targets.
func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// TestAdversaryRestartWithoutLog: a replica that lost its state (started
// again in memory, with its old id) and wrote before reconnecting gets its
// old writes back from its peer, keeps its new one, and relays both.
func TestAdversaryRestartWithoutLog(t *testing.T) {
	for _, wc := range wireCodecs {
		t.Run(wc.name, func(t *testing.T) {
			leak.Check(t)
			a, b := newTestModel(t, "a"), newDurable(t, "b", nil)
			set(t, a, "k", int64(1))
			sa, sb := serveBoth(t, a, b.Model, wc.codec)
			waitConverged(t, a, b.Model)
			stopAll(t, sa, sb)

			a2 := newTestModel(t, "a") // the same id, nothing of the first run
			set(t, a2, "k2", int64(2))
			serveBoth(t, a2, b.Model, wc.codec)
			c := newTestModel(t, "c")
			serveBoth(t, c, a2, wc.codec)

			want := map[string]any{"k": int64(1), "k2": int64(2)}
			for _, m := range []*model.Model{a2, b.Model, c} {
				eventually(t, m.ID()+" holds both writes", func() error {
					if d := cmp.Diff(want, m.Snapshot()); d != "" {
						return fmt.Errorf("%s's snapshot (-want +got):\n%s", m.ID(), d)
					}
					return nil
				})
			}
			waitConverged(t, a2, b.Model, c)
		})
	}
}

// TestAdversaryTwins: two live replicas with the same id, linked through a
// third, both keep writing: every write reaches the other twin and the
// middle, and each twin reports the other once (Stats().Twins and one
// warning). The twins' wall clock is moved past the clock offset bound
// after they start: only a write stamped later than start+MaxClockOffset
// proves a live twin rather than an earlier run of the replica.
func TestAdversaryTwins(t *testing.T) {
	for _, wc := range wireCodecs {
		t.Run(wc.name, func(t *testing.T) {
			leak.Check(t)
			clk := newFakeClock()
			newTwin := func(name string) (*model.Model, *lockedBuffer) {
				var buf lockedBuffer
				m, err := model.New("twin", &scuttlebutt.Config{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
				if err != nil {
					t.Fatalf("model.New(twin) for %s: %v", name, err)
				}
				return m, &buf
			}
			x, xlog := newTwin("x")
			y, ylog := newTwin("y")
			mid := newDurable(t, "mid", &scuttlebutt.Config{Now: clk.Now})
			serveBoth(t, x, mid.Model, wc.codec)
			serveBoth(t, mid.Model, y, wc.codec)
			clk.Advance(scuttlebutt.DefaultMaxClockOffset + time.Second)

			want := map[string]any{}
			for i := range 3 {
				for _, tw := range []struct {
					name string
					m    *model.Model
				}{{"x", x}, {"y", y}} {
					key := fmt.Sprintf("%s%d", tw.name, i)
					set(t, tw.m, key, int64(i))
					want[key] = int64(i)
				}
			}
			for _, m := range []*model.Model{x, mid.Model, y} {
				eventually(t, m.Source()+" holds every write", func() error {
					if d := cmp.Diff(want, m.Snapshot()); d != "" {
						return fmt.Errorf("%s's snapshot (-want +got):\n%s", m.Source(), d)
					}
					return nil
				})
			}
			waitConverged(t, x, mid.Model, y)

			for _, tw := range []struct {
				m     *model.Model
				log   *lockedBuffer
				other string
			}{{x, xlog, y.Source()}, {y, ylog, x.Source()}} {
				if got := tw.m.Stats().Twins; got < 1 {
					t.Errorf("%s: Stats().Twins = %d, want >= 1 (its twin %s)", tw.m.Source(), got, tw.other)
				}
				const warning = "another live process uses this replica's id"
				if got := strings.Count(tw.log.String(), warning); got != 1 {
					t.Errorf("%s: logged %q %d times, want once; the log:\n%s", tw.m.Source(), warning, got, tw.log)
				}
				if !strings.Contains(tw.log.String(), tw.other) {
					t.Errorf("%s: the log does not name the twin %s:\n%s", tw.m.Source(), tw.other, tw.log)
				}
			}
		})
	}
}

// TestAdversaryInvalidLocalUpdate: LocalUpdate of a payload the model's
// Validator refuses returns ErrInvalidUpdate and changes nothing, not
// even the log; a session afterwards works.
func TestAdversaryInvalidLocalUpdate(t *testing.T) {
	for _, wc := range wireCodecs {
		t.Run(wc.name, func(t *testing.T) {
			leak.Check(t)
			v := newDurable(t, "victim", nil)
			set(t, v.Model, "k", int64(1))
			snap, clock, appended := v.Snapshot(), v.Clock(), v.log.Stats().Appended

			u, changed, err := v.LocalUpdate([]byte{0x01}) // the CBOR 1: not [key, value]
			if !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Fatalf("LocalUpdate(0x01) = %v, %v, %v; want an error wrapping %q", u, changed, err, scuttlebutt.ErrInvalidUpdate)
			}
			checkUnchanged(t, v.Model, snap, clock)
			if got := v.log.Stats().Appended; got != appended {
				t.Errorf("the log appended %d records for a refused update", got-appended)
			}

			checkServes(t, v.Model, "peer", wc.codec)
			checkRestart(t, v)
		})
	}
}

// TestAttackForgedOwnSource: an update or clock entry of the victim's own
// source (this start's), stamped ahead of its clock but within the offset
// bound, is skipped, not applied and not fatal (the peer may only relay
// it); the victim counts it, and its next writes are stamped after it, so
// that they are applied and visible, and peers take them rather than
// think them already held.
func TestAttackForgedOwnSource(t *testing.T) {
	for _, tc := range []struct {
		name   string
		codecs []stream.Codec
		msgs   func(t *testing.T, a *attacker, src string, ts float64) [][]byte
	}{
		{"update", []stream.Codec{stream.CBOR, stream.JSONLines}, func(t *testing.T, a *attacker, src string, ts float64) [][]byte {
			// The sync makes the victim apply the history it held.
			return [][]byte{a.hello(t, nil), a.updates(t, rawUpdate{source: src, ts: ts, key: "mine", value: "forged"}), a.sync(t, nil)}
		}},
		{"hello", []stream.Codec{stream.CBOR, stream.JSONLines}, func(t *testing.T, a *attacker, src string, ts float64) [][]byte {
			return [][]byte{a.hello(t, rawClock{src: ts})}
		}},
		{"sync", []stream.Codec{stream.CBOR}, func(t *testing.T, a *attacker, src string, ts float64) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, rawClock{src: ts})}
		}},
		{"clock", []stream.Codec{stream.CBOR}, func(t *testing.T, a *attacker, src string, ts float64) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, nil), a.clock(t, rawClock{src: ts})}
		}},
	} {
		for _, codec := range tc.codecs {
			t.Run(tc.name+"/"+codec.String(), func(t *testing.T) {
				leak.Check(t)
				v := newDurable(t, "victim", nil)
				set(t, v.Model, "mine", int64(0))
				snap, clock := v.Snapshot(), v.Clock()
				forged := float64(clock[v.Source()]) + 5000 // 5 s ahead, within the 30 s bound

				a := newAttacker(t, "mallory~a1", v.Model, codec)
				a.send(append(tc.msgs(t, a, v.Source(), forged), a.again(t))...)
				// The forged message is skipped; the second hello after it
				// is what ends the session.
				err := a.result(t)
				if !errors.Is(err, scuttlebutt.ErrProtocol) || !strings.Contains(err.Error(), "second hello") {
					t.Fatalf("a forged %s of %s at +5 s, then a second hello: the victim's Run = %v; want the second hello refused, the forgery skipped", tc.name, v.Source(), err)
				}
				checkUnchanged(t, v.Model, snap, clock)
				if got := v.Stats().ForgedOwn; got < 1 {
					t.Errorf("Stats().ForgedOwn = %d, want the forgery counted", got)
				}

				for _, x := range []int64{1, 2, 3} {
					set(t, v.Model, "mine", x)
				}
				if got := float64(v.Clock()[v.Source()]); got <= forged {
					t.Errorf("the victim's own clock entry is %v, not past the forged %v: a replica that believed the forgery would drop it", got, forged)
				}
				peer := newTestModel(t, "peer")
				serveBoth(t, v.Model, peer, codec)
				waitValue(t, peer, "mine", int64(3))
				waitConverged(t, v.Model, peer)
			})
		}
	}
}

// TestAdversaryFailedStorage: a Set whose storage Sync fails returns the
// error, is never visible (neither while Sync runs nor after), and is
// never sent to a peer; the replica writes again once the storage
// recovers.
func TestAdversaryFailedStorage(t *testing.T) {
	for _, wc := range wireCodecs {
		t.Run(wc.name, func(t *testing.T) {
			leak.Check(t)
			v, peer := newTestModel(t, "victim"), newTestModel(t, "peer")
			st := &flakyStorage{}
			v.Base().Attach(st)
			serveBoth(t, v, peer, wc.codec)
			set(t, v, "before", int64(1))
			waitValue(t, peer, "before", int64(1))
			snap, clock := v.Snapshot(), v.Clock()

			var during []string
			st.set(true, func(seq uint64) {
				if got, ok := v.Get("lost"); ok {
					during = append(during, fmt.Sprintf("Get(lost) = %v while Sync(%d) ran", got, seq))
				}
			})
			err := v.Set("lost", int64(2))
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("Set(lost) with a failing Sync = %v, want an error wrapping %q", err, errDiskFull)
			}
			for _, d := range during {
				t.Errorf("visible before durable: %s", d)
			}
			if got, ok := v.Get("lost"); ok {
				t.Errorf("Get(lost) = %v after its Sync failed, want nothing", got)
			}
			checkUnchanged(t, v, snap, clock)

			st.set(false, nil)
			set(t, v, "after", int64(3))
			waitValue(t, peer, "after", int64(3))
			if got, ok := peer.Get("lost"); ok {
				t.Errorf("the peer got lost=%v, a write whose Sync failed", got)
			}
			if got, ok := v.Get("lost"); ok {
				t.Errorf("Get(lost) = %v after a later write, want nothing", got)
			}
			waitConverged(t, v, peer)
		})
	}
}

// TestAttackForgedClockWithinBound: a sync or clock message that claims an
// honest replica's source 20 s ahead, within the offset bound, must not
// cut that replica off or hide its later writes. The victim believes the
// claim and passes it on; the honest replica skips it (it made nothing
// that late) and moves its clock past it, so its next write is later than
// the claim and reaches the victim and its neighbour.
func TestAttackForgedClockWithinBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs func(t *testing.T, a *attacker, claim rawClock) [][]byte
	}{
		{"sync", func(t *testing.T, a *attacker, claim rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, claim)}
		}},
		{"clock", func(t *testing.T, a *attacker, claim rawClock) [][]byte {
			return [][]byte{a.hello(t, nil), a.sync(t, nil), a.clock(t, claim)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			honest, v, n := newTestModel(t, "honest"), newDurable(t, "victim", nil), newTestModel(t, "neighbour")
			sh, _ := serveBoth(t, honest, v.Model, stream.CBOR)
			serveBoth(t, v.Model, n, stream.CBOR)
			set(t, honest, "h", int64(0))
			waitValue(t, n, "h", int64(0))

			a := newAttacker(t, "mallory~a1", v.Model, stream.CBOR)
			a.send(tc.msgs(t, a, rawClock{honest.Source(): nowMS() + 20_000})...)
			waitSynced(t, a.victim)
			// The claim reaches honest through the victim. Writes honest
			// makes before then, stamped before the claimed time, are lost
			// to the replicas that believed it (the window the offset bound
			// limits); those after it are stamped past the claim.
			eventually(t, "honest hears the claim on its source", func() error {
				if honest.Stats().ForgedOwn == 0 {
					return errors.New("not yet")
				}
				return nil
			})

			set(t, honest, "h", int64(1))
			for _, m := range []*model.Model{v.Model, n} {
				eventually(t, m.ID()+" gets honest's write h=1", func() error {
					select {
					case <-sh.done:
						t.Fatalf("honest's session with the victim ended: %v", sh.err)
					default:
					}
					if got, ok := m.Get("h"); !ok || got != int64(1) {
						return fmt.Errorf("%s.Get(h) = %v, %v", m.ID(), got, ok)
					}
					return nil
				})
			}
		})
	}
}

// TestAttackFillSources: one sync that names as many made-up sources as
// the victim has room for is accepted (nothing tells them from the sources
// of writers whose updates are all superseded) and fills the clock of
// every replica it reaches. It cannot lock writers out: entries that no
// update came from give way, oldest first, to writers whose updates
// arrive, so the neighbour's first write, and a new replica's, still get
// through, and no clock grows past the bound.
func TestAttackFillSources(t *testing.T) {
	leak.Check(t)
	quiet := &scuttlebutt.Config{Logger: slog.New(slog.DiscardHandler)}
	v := newDurable(t, "victim", quiet)
	n, err := model.New("neighbour", quiet)
	if err != nil {
		t.Fatal(err)
	}
	serveBoth(t, v.Model, n, stream.CBOR)
	set(t, v.Model, "v", int64(1))
	waitValue(t, n, "v", int64(1))

	fill := make(rawClock)
	for i := range scuttlebutt.DefaultMaxSources - len(v.Clock()) {
		fill[fmt.Sprintf("fake%06d", i)] = nowMS() - 1000
	}
	a := newAttacker(t, "mallory~a1", v.Model, stream.CBOR)
	a.send(a.hello(t, nil), a.sync(t, fill))
	waitSynced(t, a.victim)
	eventually(t, "the made-up sources reach the neighbour", func() error {
		if got := len(n.Clock()); got < scuttlebutt.DefaultMaxSources {
			return fmt.Errorf("neighbour's clock has %d sources", got)
		}
		return nil
	})

	// Writers go on, the neighbour's first write (a new source for the
	// victim) among them.
	set(t, v.Model, "v", int64(2))
	set(t, n, "n", int64(3))
	waitValue(t, n, "v", int64(2))
	waitValue(t, v.Model, "n", int64(3))

	// So does a new replica.
	fresh, err := model.New("fresh", quiet)
	if err != nil {
		t.Fatal(err)
	}
	set(t, fresh, "f", int64(4))
	serveBoth(t, v.Model, fresh, stream.CBOR)
	waitValue(t, v.Model, "f", int64(4))
	waitValue(t, n, "f", int64(4))
	for _, m := range []*model.Model{v.Model, n, fresh} {
		if got := len(m.Clock()); got > scuttlebutt.DefaultMaxSources {
			t.Errorf("%s's clock has %d sources, past the bound %d", m.ID(), got, scuttlebutt.DefaultMaxSources)
		}
	}
	if got := v.Stats().SourcesDropped; got == 0 {
		t.Error("the victim gave up no made-up entry")
	}
}

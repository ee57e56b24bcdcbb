package scuttlebutt_test

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// updatesOf returns n updates of source, stamped from ts on.
func updatesOf(source string, ts vclock.Timestamp, n int) []scuttlebutt.Update {
	us := make([]scuttlebutt.Update, n)
	for i := range us {
		us[i] = scuttlebutt.Update{Source: source, Timestamp: ts + vclock.Timestamp(i), Data: txt(source + "-" + strconv.Itoa(i))}
	}
	return us
}

// TestLiveQueueHoldsBack queues hundreds of live updates, the later ones
// not durable yet: the link sends the durable ones, holds the rest, and
// sends them in order once the storage has synced them, along with what
// was queued meanwhile.
func TestLiveQueueHoldsBack(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	st := &memStore{}
	a.Attach(st)
	la, lb := syncedLinks(t, a.Scuttlebutt, b.Scuttlebutt)

	first := updatesOf("x~1", today-1000, 100)
	if _, err := a.Apply(first...); err != nil {
		t.Fatal(err)
	}
	second := updatesOf("x~1", today-800, 300) // not durable until release
	entered := st.hold()
	done := make(chan error, 1)
	go func() {
		_, err := a.Apply(second...)
		done <- err
	}()
	waitSync(t, entered)
	deliver(t, la, lb)
	if got, want := b.log(), first; !cmp.Equal(got, want) {
		t.Fatalf("b holds %d updates before the second batch is durable, want the %d of the first", len(got), len(want))
	}

	st.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	third := updatesOf("y~1", today-500, 200) // queued behind what is held
	if _, err := a.Apply(third...); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		deliver(t, la, lb)
	}
	want := append(append(append([]scuttlebutt.Update(nil), first...), second...), third...)
	if diff := cmp.Diff(want, b.log()); diff != "" {
		t.Errorf("b's updates, in the order applied (-want +got):\n%s", diff)
	}
}

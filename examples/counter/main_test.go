package main

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	want := "a = 6000\nb = 6000\nc = 6000\n" +
		"all equal to 6000 = (1+2+3) x 4 goroutines x 250 increments\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

// upd makes the update of source at ts carrying count.
func upd(t *testing.T, source string, ts vclock.Timestamp, count uint64) scuttlebutt.Update {
	t.Helper()
	data, err := cbor.Marshal([]uint64{count})
	if err != nil {
		t.Fatal(err)
	}
	return scuttlebutt.Update{Source: source, Timestamp: ts, Data: data}
}

func TestApplyUpdateAndHistory(t *testing.T) {
	tests := []struct {
		name    string
		apply   []scuttlebutt.Update
		changed []bool
		value   uint64
		since   vclock.Clock
		history []scuttlebutt.Update // what History(since) returns
	}{
		{
			name:    "counts grow per source",
			apply:   []scuttlebutt.Update{upd(t, "x", 1, 1), upd(t, "x", 2, 3), upd(t, "y", 1, 5)},
			changed: []bool{true, true, true},
			value:   3 + 5,
			since:   vclock.Clock{},
			history: []scuttlebutt.Update{upd(t, "y", 1, 5), upd(t, "x", 2, 3)},
		},
		{
			name:    "a lower count is stale and kept out of history",
			apply:   []scuttlebutt.Update{upd(t, "x", 1, 7), upd(t, "x", 2, 4)},
			changed: []bool{true, false},
			value:   7,
			since:   vclock.Clock{},
			history: []scuttlebutt.Update{upd(t, "x", 1, 7)},
		},
		{
			name:    "an equal count moves the latest update but not the value",
			apply:   []scuttlebutt.Update{upd(t, "x", 1, 2), upd(t, "x", 5, 2)},
			changed: []bool{true, false},
			value:   2,
			since:   vclock.Clock{"x": 1},
			history: []scuttlebutt.Update{upd(t, "x", 5, 2)},
		},
		{
			name:    "history skips what the clock covers",
			apply:   []scuttlebutt.Update{upd(t, "x", 3, 1), upd(t, "y", 4, 2), upd(t, "z", 2, 3)},
			changed: []bool{true, true, true},
			value:   6,
			since:   vclock.Clock{"x": 3, "y": 1, "z": 5},
			history: []scuttlebutt.Update{upd(t, "y", 4, 2)},
		},
		{
			name:    "history sorts equal timestamps by source",
			apply:   []scuttlebutt.Update{upd(t, "z", 9, 1), upd(t, "x", 9, 1), upd(t, "y", 8, 1)},
			changed: []bool{true, true, true},
			value:   3,
			since:   nil,
			history: []scuttlebutt.Update{upd(t, "y", 8, 1), upd(t, "x", 9, 1), upd(t, "z", 9, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCounter("me")
			if err != nil {
				t.Fatal(err)
			}
			var changed []bool
			for _, u := range tt.apply {
				changed = append(changed, c.ApplyUpdate(u))
			}
			if diff := cmp.Diff(tt.changed, changed); diff != "" {
				t.Errorf("ApplyUpdate results (-want +got):\n%s", diff)
			}
			if got := c.Value(); got != tt.value {
				t.Errorf("Value() = %d, want %d", got, tt.value)
			}
			if diff := cmp.Diff(tt.history, c.History(tt.since)); diff != "" {
				t.Errorf("History(%v) (-want +got):\n%s", tt.since, diff)
			}
		})
	}
}

func TestApplyRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		data any
	}{
		{"empty array", []uint64{}},
		{"two counts", []uint64{1, 2}},
		{"string count", []string{"1"}},
		{"negative count", []int64{-1}},
		{"bare number", 5},
		{"map", map[string]uint64{"count": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCounter("me")
			if err != nil {
				t.Fatal(err)
			}
			data, err := cbor.Marshal(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			good := upd(t, "x", 1, 4)
			bad := scuttlebutt.Update{Source: "y", Timestamp: 2, Data: data}
			if _, err := c.Apply(good, bad); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Errorf("Apply(%x) error = %v, want ErrInvalidUpdate", data, err)
			}
			if c.Value() != 0 || len(c.Clock()) != 0 {
				t.Errorf("after a refused batch: Value() = %d, Clock() = %v; want nothing applied", c.Value(), c.Clock())
			}
		})
	}
}

func TestIncrConcurrent(t *testing.T) {
	c, err := NewCounter("me")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if err := c.Incr(2); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := c.Value(); got != 8*100*2 {
		t.Errorf("Value() = %d after 800 concurrent Incr(2), want 1600", got)
	}
	// One update per source, however many increments.
	if h := c.History(nil); len(h) != 1 || h[0].Timestamp != c.Clock().Get(c.Source()) {
		t.Errorf("History(nil) = %v, want the one latest update at %v", h, c.Clock().Get(c.Source()))
	}
}

// TestRestartWithoutState restarts a replica that kept its count only in
// memory: it increments before it syncs, under its new incarnation, and
// once its earlier start's count comes back nothing is lost.
func TestRestartWithoutState(t *testing.T) {
	before, err := NewCounter("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := before.Incr(5); err != nil {
		t.Fatal(err)
	}
	after, err := NewCounter("a") // the restart: same id, no state
	if err != nil {
		t.Fatal(err)
	}
	if after.Source() == before.Source() {
		t.Fatalf("the restart writes as %s, as before it", after.Source())
	}
	if err := after.Incr(1); err != nil {
		t.Fatal(err)
	}
	if _, err := after.Apply(before.History(after.Clock())...); err != nil {
		t.Fatal(err)
	}
	if got := after.Value(); got != 6 {
		t.Errorf("Value() = %d after 5 before the restart and 1 after, want 6", got)
	}
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name  string
		apply [][]scuttlebutt.Update // batches, each applied with Apply
		want  []Change
	}{
		{
			name:  "each raise once, in apply order",
			apply: [][]scuttlebutt.Update{{upd(t, "x", 1, 1), upd(t, "y", 1, 5)}, {upd(t, "x", 2, 3)}},
			want: []Change{
				{Source: "x", Count: 1, Value: 1},
				{Source: "y", Count: 5, Value: 6},
				{Source: "x", Count: 3, Value: 8},
			},
		},
		{
			name:  "a lower or equal count is no change",
			apply: [][]scuttlebutt.Update{{upd(t, "x", 1, 7)}, {upd(t, "x", 2, 4), upd(t, "x", 3, 7)}},
			want:  []Change{{Source: "x", Count: 7, Value: 7}},
		},
		{
			name:  "this replica's earlier start is local",
			apply: [][]scuttlebutt.Update{{upd(t, "me~old", 1, 2), upd(t, "you~1", 1, 3)}},
			want: []Change{
				{Source: "me~old", Count: 2, Value: 2, Local: true},
				{Source: "you~1", Count: 3, Value: 5},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCounter("me")
			if err != nil {
				t.Fatal(err)
			}
			var got []Change
			defer c.OnChange(func(ch Change) { got = append(got, ch) })()
			ch := make(chan Change, len(tt.want))
			defer c.ChangeChan(ch)()
			for _, b := range tt.apply {
				if _, err := c.Apply(b...); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("OnChange calls (-want +got):\n%s", diff)
			}
			var sent []Change
			for range len(ch) {
				sent = append(sent, <-ch)
			}
			if diff := cmp.Diff(tt.want, sent); diff != "" {
				t.Errorf("ChangeChan values (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChangeCallbackIncrements increments from a change callback: Incr
// does not deadlock, and its change is delivered after the callback
// returns.
func TestChangeCallbackIncrements(t *testing.T) {
	c, err := NewCounter("me")
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	defer c.OnChange(func(ch Change) {
		log = append(log, fmt.Sprintf("value %d", ch.Value))
		if ch.Value == 1 {
			if err := c.Incr(10); err != nil {
				t.Error(err)
			}
			log = append(log, "callback returns")
		}
	})()
	if err := c.Incr(1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"value 1", "callback returns", "value 11"}, log); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestChangeChanCancel(t *testing.T) {
	c, err := NewCounter("me")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan Change, 4)
	cancel := c.ChangeChan(ch)
	if err := c.Incr(1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := c.Incr(1); err != nil {
		t.Fatal(err)
	}
	close(ch) // safe: nothing is sent after cancel returns
	var got []Change
	for v := range ch {
		got = append(got, v)
	}
	if diff := cmp.Diff([]Change{{Source: c.Source(), Count: 1, Value: 1, Local: true}}, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

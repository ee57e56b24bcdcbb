package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/lock"
)

func TestEmitterReplicates(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b"}, nil)
	e, err := nodes[0].Emitter("events")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Emit("hello", "world", int64(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b holds a's event", func() bool {
		eb, err := nodes[1].Emitter("events")
		return err == nil && eb.Len() == 1
	})
	eb, _ := nodes[1].Emitter("events")
	got := eb.Events(nil)
	if len(got) != 1 || got[0].Name != "hello" || got[0].Source != e.Source() {
		t.Fatalf("b's events: %+v", got)
	}
	if diff := cmp.Diff([]any{"world", int64(1)}, got[0].Args); diff != "" {
		t.Errorf("event args (-want +got):\n%s", diff)
	}
	if _, err := nodes[1].Model("events"); !errors.Is(err, ErrDocumentType) {
		t.Errorf("Model of an emitter: %v, want ErrDocumentType", err)
	}
}

// lockCfg gives lock tables short leases, so that a test that kills a
// member does not wait long.
func lockCfg(c *Config) {
	c.Lock = &lock.Config{Lease: 2 * time.Second}
}

func TestLocksFollowMembership(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b", "c", "d"}, lockCfg)
	c, d := nodes[2], nodes[3]
	tables := make([]*lock.Table, len(nodes))
	for i, n := range nodes {
		var err error
		if tables[i], err = n.Locks("jobs"); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"a", "b", "c", "d"}
	for i, tb := range tables {
		waitFor(t, nodes[i].ID()+"'s table lists every member", func() bool { return slices.Equal(tb.Members(), all) })
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := tables[0].Lock(ctx, "job1"); err != nil {
		t.Fatalf("a: Lock: %v", err)
	}
	waitFor(t, "b sees a hold job1", func() bool { h, ok := tables[1].Holder("job1"); return ok && h == "a" })
	if err := tables[1].TryLock(ctx, "job1"); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("b: TryLock of a lock a holds: %v, want ErrLocked", err)
	}
	if err := tables[0].Unlock("job1"); err != nil {
		t.Fatal(err)
	}

	// d leaves gracefully, c dies: both drop out of the lock members, and
	// locks are granted again among a and b.
	if err := d.Leave(leaveCtx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for i, tb := range tables[:2] {
		waitFor(t, nodes[i].ID()+"'s table drops c and d", func() bool { return slices.Equal(tb.Members(), []string{"a", "b"}) })
	}
	if err := tables[1].Lock(ctx, "job1"); err != nil {
		t.Fatalf("b: Lock after c and d are gone: %v", err)
	}
	waitFor(t, "a sees b hold job1", func() bool { h, ok := tables[0].Holder("job1"); return ok && h == "b" })
	if err := tables[1].Unlock("job1"); err != nil {
		t.Fatal(err)
	}
}

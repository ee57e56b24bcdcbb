package lock

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOnLostOrderAndCancel loses a lease with several OnLost callbacks:
// they are called in the order they were added, and one cancelled, before
// the loss or by another callback during it, is not called.
func TestOnLostOrderAndCancel(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	var calls []string
	on := func(who string) func() {
		return c.tabs[0].OnLost(func(name string) { calls = append(calls, who+":"+name) })
	}
	var cancelD func()
	defer on("c")()
	c.tabs[0].OnLost(func(name string) {
		calls = append(calls, "b:"+name)
		cancelD() // d, added later, hears nothing of this loss
	})
	defer on("a")()
	cancelD = on("d")
	cancelE := on("e")
	cancelE()
	cancelE() // idempotent
	dl, ok := c.tabs[0].Deadline("x")
	if !ok {
		t.Fatal("r0 does not hold x")
	}
	c.isolate(0)
	for c.clk.now().Before(dl.Add(2 * testCfg.Lease)) {
		c.advance(20*time.Millisecond, 1)
	}
	if diff := cmp.Diff([]string{"c:x", "b:x", "a:x"}, calls); diff != "" {
		t.Errorf("OnLost calls (-want +got):\n%s", diff)
	}
}

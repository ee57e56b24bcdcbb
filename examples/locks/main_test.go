package main

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatal(err)
	}
	want := `a, b and c share a lock table; a locks the printer:
  b: TryLock(printer): lock: locked (b sees a holding it)
b waits in Lock(printer) while a prints; a unlocks:
  b holds the printer
the seats semaphore admits two; a and c take one each:
  b: TryLock(seats): lock: locked
c crashes holding its seat; a and b remove it from their members:
  b got c's seat once c's lease ran out (not before: true)
b is cut off from a while it holds the printer:
  b lost the printer: its renewals went unacknowledged
  b: Unlock(printer): lock: not the owner: "printer" (ErrNotOwner: true)
the network heals; a takes the printer:
  a holds the printer
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

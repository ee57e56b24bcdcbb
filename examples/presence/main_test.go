package main

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRun runs the story and checks what it prints: the killed replica is
// seen until its last refresh runs out, then by nobody, on every live
// replica at once (they share the fake clock), and every watcher hears of
// it.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatal(err)
	}
	want := `five replicas announce themselves every 1s with a ttl of 3s
t=0s  n1, n2, n3, n4, n5 see n1 n2 n3 n4 n5
t=1s  n1, n2, n3, n4, n5 see n1 n2 n3 n4 n5
t=2s  n1, n2, n3, n4, n5 see n1 n2 n3 n4 n5
t=3s  n3 is killed: no more refreshes, no links; its last one, stamped a hair after t=2s, runs out 3s later
t=3s  n1, n2, n4, n5 see n1 n2 n3 n4 n5
t=4s  n1, n2, n4, n5 see n1 n2 n3 n4 n5
t=5s  n1, n2, n4, n5 see n1 n2 n3 n4 n5
t=6s  n1, n2, n4, n5 see n1 n2 n4 n5; watchers hear n3 expire
t=7s  n1, n2, n4, n5 see n1 n2 n4 n5
t=8s  n1, n2, n4, n5 see n1 n2 n4 n5
every live replica holds 4 keys and 4 updates: an expired key costs nothing
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

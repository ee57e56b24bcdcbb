package main

import (
	"bytes"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// TestDemoCrash runs the demo with its crash step: D runs in a child
// process (this test binary, run as main), is killed with SIGKILL and
// comes back from its log with its acknowledged writes.
func TestDemoCrash(t *testing.T) {
	before := runtime.NumGoroutine()
	var out bytes.Buffer
	err := demo(t.Context(), &out, demoOptions{keys: 50, timeout: 15 * time.Second, crash: true})
	if err != nil {
		t.Fatalf("demo: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		`(?m)^9\. Crash and restart: D, a replica in a child process, keeps a log on disk$`,
		`(?m)^   D  started \(pid \d+\), log D\.log, linked to C$`,
		`(?m)^   D  synced with C: 52 keys, digest [0-9a-f]{8}$`,
		`(?m)^   A  has d/0=0 d/2=2 \(through C\)$`,
		`(?m)^   D  killed with SIGKILL \(pid \d+\)`,
		`(?m)^   D  restarted \(pid \d+\) from its log \(\d+ records\): 55 keys, torn tail cut 0 bytes$`,
		`(?m)^   D  nothing lost: same 55 keys, digest [0-9a-f]{8} and clock as when it was killed$`,
		// D lacked only A's ten writes made while it was down.
		`(?m)^   D  caught up [0-9.]+ms after the restart: received 10 updates, only what it missed; digest [0-9a-f]{8}, as A, B and C$`,
		`(?m)^converged: 3 replicas, 52 keys each, equal clocks, [0-9.]+ms after the heal\n\z`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output does not match %q\noutput:\n%s", want, got)
		}
	}
	waitGoroutines(t, before)
}

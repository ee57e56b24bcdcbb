package main

import (
	"bytes"
	"regexp"
	"testing"
	"time"
)

// TestDemoCluster runs demo -cluster: three serve processes (this test
// binary, run as main), one killed and restarted, one leaving.
func TestDemoCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and waits for a failure detector; skipped with -short")
	}
	var out bytes.Buffer
	if err := demoCluster(t.Context(), &out, demoOptions{timeout: 30 * time.Second}); err != nil {
		t.Fatalf("demo -cluster: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		`(?m)^   every node sees n1, n2 and n3 alive after [0-9.]+ms \(memberlist\)$`,
		`(?m)^   every node holds the same 3 users after [0-9.]+ms: ada=\{"admin":true\} grace="navy" linus="kernel"$`,
		`(?m)^   n1  POST /v1/locks/jobs/nightly: 409 lock: locked: held by \[n2\]$`,
		`(?m)^   n1  after [0-9.]+ms its failure detector says: n1=alive n2=alive n3=failed$`,
		// Whatever n3 got from peers by its first answer, it has its
		// own write, from its log or back from a peer.
		`(?m)^   n3  pid \d+; its log is replayed before its API starts: first answer [34] users: ada=\{"admin":true\} grace="navy" linus="kernel"`,
		`(?m)^   n3  caught up [0-9.]+ms later: ada=\{"admin":true\} grace="navy" linus="kernel" margaret="apollo"$`,
		`(?m)^   n1  n1=alive n2=(leaving|left) n3=alive; lock table jobs: members n1, n3$`,
		`(?m)^   n3  n1=alive n2=(leaving|left) n3=alive; lock table jobs: members n1, n3$`,
		`(?m)^   n3  POST /v1/locks/jobs/nightly: held by n3 \(granted without n2\)$`,
		`(?m)^cluster converged: 3 nodes, n3 restarted from its log after SIGKILL, n2 left gracefully\n\z`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output does not match %q\noutput:\n%s", want, got)
		}
	}
}

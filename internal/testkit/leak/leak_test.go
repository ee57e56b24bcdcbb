package leak

import (
	"strings"
	"testing"
	"time"
)

func TestVerifyFindsBlockedGoroutine(t *testing.T) {
	s := Take()
	stop := make(chan struct{})
	started := make(chan struct{})
	go func() {
		close(started)
		<-stop
	}()
	<-started
	err := s.Verify(20 * time.Millisecond)
	if err == nil {
		t.Fatal("Verify = nil with a goroutine blocked on a channel, want an error")
	}
	if !strings.Contains(err.Error(), "TestVerifyFindsBlockedGoroutine") {
		t.Errorf("Verify error does not show the leaked goroutine's stack:\n%v", err)
	}
	close(stop)
	if err := s.Verify(5 * time.Second); err != nil {
		t.Errorf("Verify after the goroutine ended: %v", err)
	}
}

func TestVerifyWaitsForGoroutinesToEnd(t *testing.T) {
	s := Take()
	release := make(chan struct{})
	go func() { <-release }()
	// Release after Verify has started polling; Verify must not fail early.
	time.AfterFunc(10*time.Millisecond, func() { close(release) })
	if err := s.Verify(5 * time.Second); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestCheckPassesWithoutGoroutines(t *testing.T) {
	Check(t)
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
}

package lock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/lock"
	"github.com/scuttle-go/scuttle/stream"
)

func newTable(t *testing.T, id string, members ...string) *lock.Table {
	t.Helper()
	tab, err := lock.New(id, &lock.Config{Members: members, Lease: 2 * time.Second, Renew: 300 * time.Millisecond, Margin: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab
}

// TestCloseEndsEverything closes a table with a holder and a waiter: the
// waiter returns ErrClosed, the hold ends, the goroutine stops, and the
// other replica is granted the lock.
func TestCloseEndsEverything(t *testing.T) {
	leak.Check(t)
	a, b := newTable(t, "a", "a", "b"), newTable(t, "b", "a", "b")
	if err := stream.Pipe(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	if err := a.Lock(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	done := a.Done("x")
	if err := b.Lock(t.Context(), "y"); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- a.Lock(context.Background(), "y") }() // behind b
	bWaits := make(chan error, 1)
	go func() { bWaits <- b.Lock(context.Background(), "x") }()

	a.Close()
	if err := <-waiting; !errors.Is(err, lock.ErrClosed) {
		t.Errorf("Lock waiting at Close = %v, want ErrClosed", err)
	}
	select {
	case <-done:
	default:
		t.Error("Done(x) still open after Close")
	}
	if err := a.Lock(t.Context(), "z"); !errors.Is(err, lock.ErrClosed) {
		t.Errorf("Lock after Close = %v, want ErrClosed", err)
	}
	if err := <-bWaits; err != nil {
		t.Errorf("b's Lock(x) after a closed: %v", err)
	}
	b.Close()
}

func TestLockContextDeadline(t *testing.T) {
	a := newTable(t, "a", "a", "b") // b never answers
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := a.Lock(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock without b's acknowledgement = %v, want DeadlineExceeded", err)
	}
	if _, ok := a.Holder("x"); ok {
		t.Error("the withdrawn claim is still in line")
	}
	if err := a.Lock(t.Context(), "\xff"); !errors.Is(err, lock.ErrInvalidName) {
		t.Errorf("Lock of a name that is not UTF-8 = %v, want ErrInvalidName", err)
	}
}

// TestLocalGoroutinesQueue locks one name from many goroutines of one
// replica: they take turns.
func TestLocalGoroutinesQueue(t *testing.T) {
	a, b := newTable(t, "a", "a", "b"), newTable(t, "b", "a", "b")
	if err := stream.Pipe(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	var (
		mu           sync.Mutex
		inside, most int
	)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			if err := a.Lock(t.Context(), "x"); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond) // work under the lock
			mu.Lock()
			inside--
			mu.Unlock()
			errs <- a.Unlock("x")
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Errorf("%d goroutines of one replica held x at once", most)
	}
}

// Example takes a lock on a table whose only member is itself: no peer
// needs to acknowledge the claim.
func Example() {
	t, err := lock.New("solo", &lock.Config{Members: []string{"solo"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	ctx := context.Background()
	if err := t.Lock(ctx, "report"); err != nil {
		fmt.Println(err)
		return
	}
	owner, _ := t.Holder("report")
	fmt.Println("holder:", owner)
	fmt.Println("TryLock again:", t.TryLock(ctx, "report"))
	fmt.Println("Unlock:", t.Unlock("report"))
	fmt.Println("Unlock again:", errors.Is(t.Unlock("report"), lock.ErrNotOwner))
	// Output:
	// holder: solo
	// TryLock again: lock: locked
	// Unlock: <nil>
	// Unlock again: true
}

// TestHeld lists the locks held, on the holder and on the other replica,
// and not once released.
func TestHeld(t *testing.T) {
	a, b := newTable(t, "a", "a", "b"), newTable(t, "b", "a", "b")
	if err := stream.Pipe(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"y", "x"} {
		if err := a.Lock(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Lock(t.Context(), "z"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"x", "y", "z"})
	deadline := time.Now().Add(5 * time.Second)
	for fmt.Sprint(b.Held()) != want || fmt.Sprint(a.Held()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("Held: a %v, b %v; want %s on both", a.Held(), b.Held(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.Unlock("x"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(a.Held()); got != fmt.Sprint([]string{"y", "z"}) {
		t.Errorf("a.Held() after Unlock(x) = %s, want [y z]", got)
	}
}

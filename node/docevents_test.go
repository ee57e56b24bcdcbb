package node

import (
	"testing"
	"time"
)

// waitClosed fails t unless ch is closed within waitTimeout.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting until %s", waitTimeout, what)
	}
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestDocumentEvents: DocumentsChanged wakes a waiter when a peer creates
// a document and when it is deleted; DocumentDropped closes when the
// generation held is deleted, here before Delete returns and on the peer
// through the catalog, and a re-created name has a channel of its own.
func TestDocumentEvents(t *testing.T) {
	nodes := cluster(t, []string{"n1", "n2"}, nil)
	n1, n2 := nodes[0], nodes[1]
	if _, ok := n2.DocumentDropped("x"); ok {
		t.Fatal("DocumentDropped of a missing document: ok")
	}
	changed := n2.DocumentsChanged()
	if isClosed(changed) {
		t.Fatal("DocumentsChanged closed before any change")
	}
	mustModel(t, n1, "x").Set("k", "v")
	waitClosed(t, "n2 hears of x's creation", changed)
	waitFor(t, "n2 holds x", func() bool { _, ok := n2.DocumentType("x"); return ok })

	dropped1, ok1 := n1.DocumentDropped("x")
	dropped2, ok2 := n2.DocumentDropped("x")
	if !ok1 || !ok2 || isClosed(dropped1) || isClosed(dropped2) {
		t.Fatalf("DocumentDropped of a live document: ok %v %v, closed %v %v", ok1, ok2, isClosed(dropped1), isClosed(dropped2))
	}
	changed = n2.DocumentsChanged()
	if err := n1.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if !isClosed(dropped1) {
		t.Fatal("n1's x not dropped when Delete returned")
	}
	waitClosed(t, "n2 drops x", dropped2)
	waitClosed(t, "n2's DocumentsChanged wakes on the deletion", changed)

	mustModel(t, n2, "x").Set("k", "new")
	again, ok := n2.DocumentDropped("x")
	if !ok || isClosed(again) {
		t.Fatalf("the re-created x: ok %v, dropped %v", ok, isClosed(again))
	}
}

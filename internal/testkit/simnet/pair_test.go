package simnet

import (
	"errors"
	"testing"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Session delivers everything, or stops at the cut, and returns a Step
// error.
func TestSession(t *testing.T) {
	opts := &scuttlebutt.LinkOptions{MaxBatchBytes: 1} // one update a message
	for _, tc := range []struct {
		cut, want int
	}{{-1, 5}, {0, 0}, {3, 0}} {
		a := newLogDoc(t, "a", nil)
		b := newLogDoc(t, "b", nil)
		for v := range 5 {
			a.write(t, v)
		}
		if err := Session(a, b, opts, tc.cut); err != nil {
			t.Fatalf("cut %d: %v", tc.cut, err)
		}
		// A history is applied whole at its sync: a cut inside it applies
		// none of it.
		if got := len(b.ids()); got != tc.want {
			t.Errorf("cut %d: b holds %d updates, want %d", tc.cut, got, tc.want)
		}
	}
	same := &scuttlebutt.Config{Incarnation: "same"}
	err := Session(newLogDoc(t, "n", same), newLogDoc(t, "n", same), nil, -1)
	if !errors.Is(err, scuttlebutt.ErrSameID) {
		t.Errorf("Session of one source with itself = %v, want ErrSameID", err)
	}
}

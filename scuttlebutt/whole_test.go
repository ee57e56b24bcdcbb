package scuttlebutt_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// wholeDoc is a replica whose Validator checks Data whole (a
// WholeValidator): with cborx.Whole, as the base would, unless lax, and
// refusing the payload txt(forbidden). It counts its calls.
type wholeDoc struct {
	*scuttlebutt.Scuttlebutt
	lax     bool // accept malformed Data: a validator that breaks its promise
	calls   atomic.Int64
	applied atomic.Int64
}

var _ scuttlebutt.WholeValidator = (*wholeDoc)(nil)

func newWholeDoc(t *testing.T, id string, lax bool) *wholeDoc {
	d := &wholeDoc{lax: lax}
	sb, err := scuttlebutt.New(id, d, &scuttlebutt.Config{Now: fixedNow, Incarnation: "1"})
	if err != nil {
		t.Fatal(err)
	}
	d.Scuttlebutt = sb
	return d
}

func (d *wholeDoc) History(vclock.Clock) []scuttlebutt.Update { return nil }

func (d *wholeDoc) ApplyUpdate(scuttlebutt.Update) bool {
	d.applied.Add(1)
	return true
}

func (d *wholeDoc) ValidateUpdate(u scuttlebutt.Update) error {
	d.calls.Add(1)
	if !d.lax {
		if err := cborx.Whole(u.Data, scuttlebutt.MaxNesting); err != nil {
			return fmt.Errorf("wholeDoc: %v", err)
		}
	}
	if string(u.Data) == string(txt(forbidden)) {
		return errors.New("wholeDoc: forbidden payload")
	}
	return nil
}

func (d *wholeDoc) ValidatesWhole() {}

// TestWholeValidator checks that a WholeValidator is what refuses a
// malformed payload, of a peer's and of a local write alike, and that the
// base leaves the scan of Data to it: a validator that lets malformed
// Data through (which the contract forbids) gets it applied.
func TestWholeValidator(t *testing.T) {
	malformed := map[string][]byte{
		"empty":          {},
		"trailing bytes": append(txt("x"), 0x01),
		"tag":            {0xc1, 0x01},
		"indefinite":     {0x9f, 0xff},
		"text not UTF-8": {0x61, 0xff},
		"too deep":       append([]byte(strings.Repeat("\x81", scuttlebutt.MaxNesting+1)), 0x01),
	}
	t.Run("refuses", func(t *testing.T) {
		d := newWholeDoc(t, "a", false)
		ts := vclock.Timestamp(today)
		for name, data := range malformed {
			ts++
			calls := d.calls.Load()
			if _, err := d.Apply(scuttlebutt.Update{Source: "b~1", Timestamp: ts, Data: data}); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) ||
				!strings.Contains(err.Error(), "wholeDoc:") {
				t.Errorf("%s: Apply = %v, want ErrInvalidUpdate from the validator", name, err)
			}
			if _, _, err := d.LocalUpdate(data); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) ||
				!strings.Contains(err.Error(), "wholeDoc:") {
				t.Errorf("%s: LocalUpdate = %v, want ErrInvalidUpdate from the validator", name, err)
			}
			if got := d.calls.Load() - calls; got != 2 {
				t.Errorf("%s: the validator was called %d times, want 2", name, got)
			}
		}
		if _, err := d.Apply(scuttlebutt.Update{Source: "b~1", Timestamp: ts + 1, Data: txt(forbidden)}); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
			t.Errorf("Apply(forbidden) = %v, want ErrInvalidUpdate", err)
		}
		if n, err := d.Apply(scuttlebutt.Update{Source: "b~1", Timestamp: ts + 2, Data: txt("ok")}); n != 1 || err != nil {
			t.Errorf("Apply(ok) = %d, %v; want 1, nil", n, err)
		}
		if got := d.applied.Load(); got != 1 {
			t.Errorf("%d updates applied, want only the well-formed one", got)
		}
	})
	t.Run("the base does not scan", func(t *testing.T) {
		d := newWholeDoc(t, "a", true)
		data := malformed["trailing bytes"]
		if n, err := d.Apply(scuttlebutt.Update{Source: "b~1", Timestamp: today + 1, Data: data}); n != 1 || err != nil {
			t.Errorf("Apply of what the validator accepts = %d, %v; want 1, nil", n, err)
		}
		if _, changed, err := d.LocalUpdate(data); !changed || err != nil {
			t.Errorf("LocalUpdate of what the validator accepts = %v, %v; want true, nil", changed, err)
		}
	})
}

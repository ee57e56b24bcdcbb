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
	want := `alice says hello; bob relays it to carol:
  alice hears alice: message [hello]
  bob hears alice: message [hello]
  carol hears alice: message [hello]
carol is cut off; both sides talk:
  alice hears alice: message [carol, are you there?]
  bob hears alice: message [carol, are you there?]
  carol hears carol: message [my train is in a tunnel]
carol is back: each side gets what it missed, once:
  alice hears carol: message [my train is in a tunnel]
  bob hears carol: message [my train is in a tunnel]
  carol hears alice: message [carol, are you there?]
bob emits "dispose", which ends every stream in JavaScript scuttlebutt; here it is an event:
  alice hears bob: dispose []
  alice hears bob: message [still here]
  carol hears bob: dispose []
  carol hears bob: message [still here]
every room holds 5, 5 and 5 events
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

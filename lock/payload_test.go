package lock

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestValidateUpdate(t *testing.T) {
	enc := func(v any) []byte {
		b, err := opEnc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"claim", enc([]any{1, "x", 1000.0}), true},
		{"renew", enc([]any{2, "x", 1.7e12, 1000.0}), true},
		{"release", enc([]any{3, "x", 1.7e12}), true},
		{"ack", enc([]any{4, map[string]float64{"a": 1.7e12}}), true},
		{"empty ack", enc([]any{4, map[string]float64{}}), true},
		{"not an array", enc("x"), false},
		{"empty", enc([]any{}), false},
		{"unknown kind", enc([]any{9, "x"}), false},
		{"claim without lease", enc([]any{1, "x"}), false},
		{"claim with zero lease", enc([]any{1, "x", 0.0}), false},
		{"claim with negative lease", enc([]any{1, "x", -5.0}), false},
		{"claim with a year's lease", enc([]any{1, "x", 365 * 24 * 3600e3}), false},
		{"claim with name not a string", enc([]any{1, 5, 1000.0}), false},
		{"renew with zero claim", enc([]any{2, "x", 0.0, 1000.0}), false},
		{"release with extra", enc([]any{3, "x", 1.7e12, 1}), false},
		{"ack with bad id", enc([]any{4, map[string]float64{"": 1}}), false},
		{"ack with negative stamp", enc([]any{4, map[string]float64{"a": -1}}), false},
		{"ack not a map", enc([]any{4, "x"}), false},
		{"kind not a number", enc([]any{"claim", "x", 1000.0}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := replica{}.ValidateUpdate(scuttlebutt.Update{Source: "p", Timestamp: 1, Data: tc.data})
			if (err == nil) != tc.ok {
				t.Errorf("ValidateUpdate(% x) = %v, want ok %v", tc.data, err, tc.ok)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []op{
		{kind: kindClaim, name: "x", lease: 1500},
		{kind: kindRenew, name: "ünï", claim: 1.7e12 + 0.25, lease: 10000},
		{kind: kindRelease, name: "", claim: 1.7e12},
		{kind: kindAck, clock: vclock.Clock{"a": 1.7e12, "b": 1.7e12 + 1.0/1024}},
	}
	for _, o := range tests {
		t.Run(fmtKind(o.kind), func(t *testing.T) {
			b, err := o.encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeOp(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(o, got, cmp.AllowUnexported(op{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func fmtKind(k kind) string {
	return map[kind]string{kindClaim: "claim", kindRenew: "renew", kindRelease: "release", kindAck: "ack"}[k]
}

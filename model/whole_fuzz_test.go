package model_test

import (
	"testing"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// FuzzValidateUpdateWhole checks what ValidatesWhole promises: the
// validator refuses every payload the base's own scan would refuse.
func FuzzValidateUpdateWhole(f *testing.F) {
	m, err := model.New("a", nil)
	if err != nil {
		f.Fatal(err)
	}
	val := m.Validator()
	for _, s := range []string{
		"\x82\x61k\x61v", "\x82\x61k\xc1\x01", "\x82\x61k\x9f\xff", "\x82\x61k\x61\xff",
		"\x82\x61k\x81\x81\x01", "\x83\x61k\x01\xa0", "\x82\x61k\xf8\x01", "\x81\x61k\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if val.ValidateUpdate(scuttlebutt.Update{Source: "b~1", Timestamp: 1, Data: data}) != nil {
			return
		}
		if err := cborx.Whole(data, scuttlebutt.MaxNesting); err != nil {
			t.Fatalf("%x: the validator accepts what the base refuses: %v", data, err)
		}
	})
}

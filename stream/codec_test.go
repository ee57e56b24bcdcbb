package stream

import (
	"errors"
	"testing"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestDecodeUpdateTimestamps: an updates frame's timestamps are read by
// the one rule (wire.ReadTimestamp), the one package filelog reads records
// by: a float of any width or an integer, positive and finite. An update
// that breaks it is malformed and an invalid update both.
func TestDecodeUpdateTimestamps(t *testing.T) {
	for _, tt := range []struct {
		name string
		enc  []byte
		want vclock.Timestamp // 0: refused
	}{
		{"float64", []byte{0xfb, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00}, goodTS},
		{"float32", []byte{0xfa, 0x3f, 0xc0, 0, 0}, 1.5},
		{"float16", []byte{0xf9, 0x3e, 0x00}, 1.5},
		{"integer", []byte{0x1b, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}, goodTS},
		{"zero", []byte{0x00}, 0},
		{"negative", []byte{0x39, 0x01, 0x00}, 0},
		{"NaN", []byte{0xfa, 0x7f, 0xc0, 0, 0}, 0},
		{"infinity", []byte{0xf9, 0x7c, 0x00}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := append([]byte{0x81, 0x83, 0x64, 'p', 'e', 'e', 'r'}, tt.enc...)
			body = append(body, 0x81, 0x61, 'k')
			m, err := decodeMessage(scuttlebutt.MsgUpdates, body)
			if tt.want == 0 {
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
					t.Errorf("decodeMessage(%x) = %v, %v; want ErrMalformed and ErrInvalidUpdate", body, m, err)
				}
				return
			}
			if err != nil || len(m.Updates) != 1 || m.Updates[0].Timestamp != tt.want {
				t.Errorf("decodeMessage(%x) = %v, %v; want one update at %v", body, m, err, tt.want)
			}
		})
	}
}

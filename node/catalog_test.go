package node

import (
	"errors"
	"testing"
)

// TestParseEntry checks the catalog values a peer may write: types with
// and without a generation are read, anything else is ErrUnknownType,
// and no generation is so large that the next one would wrap to a used
// one.
func TestParseEntry(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string // entry.String(), or "" for an error
		next uint64
	}{
		{"model", "model", 0},
		{"doc/3", "doc/3", 3},
		{"deleted/0", "deleted/0", 1},
		{"deleted/7", "deleted/7", 8},
		{"deleted/9007199254740992", "deleted/9007199254740992", 1<<53 + 1},
		{"deleted/18446744073709551615", "", 0},
		{"model/9007199254740993", "", 0},
		{"model/0", "", 0},
		{"model/-1", "", 0},
		{"model/", "", 0},
		{"table", "", 0},
		{"", "", 0},
		{int64(3), "", 0},
		{nil, "", 0},
	} {
		e, err := parseEntry(tt.v)
		if tt.want == "" {
			if !errors.Is(err, ErrUnknownType) {
				t.Errorf("parseEntry(%#v) = %v, %v; want ErrUnknownType", tt.v, e, err)
			}
			continue
		}
		if err != nil || e.String() != tt.want || e.next() != tt.next {
			t.Errorf("parseEntry(%#v) = %v (next %d), %v; want %s (next %d)", tt.v, e, e.next(), err, tt.want, tt.next)
		}
	}
}

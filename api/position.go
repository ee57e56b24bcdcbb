package api

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/vclock"
)

// A watch position is the vector clock of what a watcher has seen: per
// source, the latest update it has (a source's updates arrive in timestamp
// order, so that is all of them up to there). It goes on the wire as an
// SSE id, compact and URL-safe: base64url without padding of a version
// byte, then per source, in sorted order, the source's length (uvarint),
// its bytes and its timestamp (the float64's bits, big-endian).
const positionVersion = 1

// errPosition is the cause of every position that does not decode.
var errPosition = errors.New("not a watch position (an id this server sent, or 0)")

// encodePosition returns the id of position.
func encodePosition(position vclock.Clock) string {
	b := []byte{positionVersion}
	for _, src := range slices.Sorted(maps.Keys(position)) {
		if !position[src].Valid() {
			continue // zero: nothing seen
		}
		b = binary.AppendUvarint(b, uint64(len(src)))
		b = append(b, src...)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(float64(position[src])))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePosition returns the position of id, checked: at most
// MaxWatchIDSize bytes, sources valid UTF-8 and each once, timestamps
// valid (finite, positive).
func decodePosition(id string) (vclock.Clock, error) {
	if len(id) > MaxWatchIDSize {
		return nil, fmt.Errorf("%w: %d bytes, over %d", errPosition, len(id), MaxWatchIDSize)
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) == 0 || b[0] != positionVersion {
		return nil, errPosition
	}
	b = b[1:]
	c := vclock.Clock{}
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > uint64(len(b)-k) {
			return nil, errPosition
		}
		src := string(b[k : k+int(n)])
		b = b[k+int(n):]
		if len(b) < 8 || !utf8.ValidString(src) {
			return nil, errPosition
		}
		t := vclock.Timestamp(math.Float64frombits(binary.BigEndian.Uint64(b)))
		b = b[8:]
		if _, dup := c[src]; dup || !t.Valid() {
			return nil, errPosition
		}
		c[src] = t
	}
	return c, nil
}

package scuttlebutt

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/vclock"
)

// MaxIDLen is the longest source id, in bytes: a replica id with its
// incarnation, or a JavaScript peer's id.
const MaxIDLen = 128

// MaxReplicaIDLen is the longest replica id New accepts, in bytes: room is
// left for the longest incarnation suffix.
const MaxReplicaIDLen = MaxIDLen - len(incarnationSep) - maxIncarnationLen

// Update is one immutable change made by one replica. Updates are values:
// once created, neither the base nor any replica modifies Data or Signature,
// and callers must not either.
type Update struct {
	// Source is the id of the replica that made the update.
	Source string
	// Timestamp is when the source made it, unique per source.
	Timestamp vclock.Timestamp
	// Data is the replicated type's payload: one well-formed CBOR data item
	// without tags or indefinite lengths, opaque to the base.
	Data []byte
	// Signature is optional; the base carries it and does not check it.
	Signature []byte
}

// Less orders updates by (Timestamp, Source), the order of History and of
// last-writer-wins conflicts: a later timestamp wins, and equal timestamps go
// to the greater source id.
func (u Update) Less(v Update) bool {
	if u.Timestamp != v.Timestamp {
		return u.Timestamp < v.Timestamp
	}
	return u.Source < v.Source
}

// Compare returns -1, 0 or +1 as u sorts before, with, or after v in
// (Timestamp, Source) order; a function for slices.SortFunc.
func Compare(u, v Update) int {
	switch {
	case u.Less(v):
		return -1
	case v.Less(u):
		return 1
	}
	return 0
}

// String formats u for traces: source@timestamp and the data size.
func (u Update) String() string {
	return fmt.Sprintf("%s@%s(%dB)", u.Source, u.Timestamp, len(u.Data))
}

// ValidID reports whether id can name a replica: 1 to MaxIDLen bytes of
// UTF-8 with no control characters. The error wraps ErrInvalidID.
func ValidID(id string) error {
	if len(id) > 0 && len(id) <= MaxIDLen && printableASCII(id) {
		return nil // the common case, without decoding runes
	}
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidID, len(id), MaxIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidID)
	case strings.ContainsFunc(id, unicode.IsControl):
		return fmt.Errorf("%w: %q has a control character", ErrInvalidID, id)
	}
	return nil
}

// printableASCII reports whether s is all ASCII from space to tilde: valid
// UTF-8 without control characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// validate checks what the base can check of any update: source (unless
// knownSource says it was checked already), timestamp, size and, unless the
// replica's Validator checks that itself (see WholeValidator), that Data is
// one well-formed CBOR item. The error wraps ErrInvalidUpdate.
func (s *Scuttlebutt) validate(u Update, knownSource bool) error {
	if err := validateHead(u, s.maxSize, knownSource); err != nil {
		return err
	}
	if s.whole {
		return nil
	}
	if err := cborx.Whole(u.Data, MaxNesting); err != nil {
		return fmt.Errorf("%w: %s: data: %v", ErrInvalidUpdate, u, err)
	}
	return nil
}

// validateHead is validate but for Data's contents: source, timestamp and
// size.
func validateHead(u Update, maxSize int, knownSource bool) error {
	if !knownSource {
		if err := ValidID(u.Source); err != nil {
			return fmt.Errorf("%w: source: %v", ErrInvalidUpdate, err)
		}
	}
	if !u.Timestamp.Valid() {
		return fmt.Errorf("%w: %s: timestamp %v is not positive and finite", ErrInvalidUpdate, u.Source, float64(u.Timestamp))
	}
	if n := len(u.Data) + len(u.Signature); n > maxSize {
		return fmt.Errorf("%w: %s: %d bytes, the limit is %d", ErrInvalidUpdate, u, n, maxSize)
	}
	return nil
}

// MaxNesting is the deepest nesting of arrays and maps an update's Data may
// have.
const MaxNesting = 32

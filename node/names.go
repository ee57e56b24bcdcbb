package node

import "fmt"

// MaxNameSize is the longest document name or node id, in bytes.
const MaxNameSize = 128

// checkName reports whether s is a valid document name or node id: 1 to
// MaxNameSize bytes of [A-Za-z0-9._-], starting with a letter or digit.
// Names are file names under the data directory and appear in URLs, so
// they carry no separators, no spaces and nothing that needs escaping;
// names starting with "_" or "." are reserved for the node's own
// documents.
func checkName(s string) error {
	if s == "" || len(s) > MaxNameSize {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidName, len(s), MaxNameSize)
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%w: %q: byte %d (%q) is not allowed", ErrInvalidName, s, i, c)
		}
	}
	return nil
}

// CheckName reports whether name is a valid document name, as Model and
// the other getters check it: nil, or an error wrapping ErrInvalidName.
func CheckName(name string) error { return checkName(name) }

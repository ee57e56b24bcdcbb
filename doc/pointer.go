package doc

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParsePointer splits a JSON Pointer (RFC 6901) into its unescaped
// segments: "" is the root (no segments), "/a/b" is ["a", "b"], "/" is
// [""] (the key ""), and "~1" and "~0" stand for "/" and "~" in a
// segment ("/a~1b" is ["a/b"]). A malformed pointer is an error wrapping
// ErrInvalidPath.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("%w: %q does not start with /", ErrInvalidPath, p)
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("%w: %q is not UTF-8", ErrInvalidPath, p)
	}
	n := strings.Count(p, "/")
	segs := make([]string, 0, n)
	for s := range strings.SplitSeq(p[1:], "/") {
		if strings.IndexByte(s, '~') >= 0 {
			var b strings.Builder
			for i := 0; i < len(s); i++ {
				c := s[i]
				if c != '~' {
					b.WriteByte(c)
					continue
				}
				if i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1') {
					return nil, fmt.Errorf("%w: %q has a ~ that is not ~0 or ~1", ErrInvalidPath, p)
				}
				if s[i+1] == '0' {
					b.WriteByte('~')
				} else {
					b.WriteByte('/')
				}
				i++
			}
			s = b.String()
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// Pointer returns the JSON Pointer of the given segments, escaping "~" as
// "~0" and "/" as "~1": Pointer() is "" (the root), Pointer("a", "b/c") is
// "/a/b~1c". It is the inverse of ParsePointer for UTF-8 segments.
func Pointer(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		if strings.ContainsAny(s, "~/") {
			s = strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

// arrayIndex parses a segment as an array index for reading: a decimal
// number without leading zeros ("0", "17").
func arrayIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// isPrefix reports whether p is a prefix of q, segment by segment (p == q
// included).
func isPrefix(p, q []string) bool {
	if len(p) > len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

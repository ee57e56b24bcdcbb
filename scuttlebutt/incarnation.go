package scuttlebutt

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

// incarnationSep separates a replica id from the incarnation in a source
// id.
const incarnationSep = "~"

// maxIncarnationLen is the longest Config.Incarnation.
const maxIncarnationLen = 16

// lowerBase32 spells random incarnations: digits and lower-case letters.
var lowerBase32 = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewIncarnation returns a fresh random incarnation, as New picks when
// Config.Incarnation is empty: 8 characters of base32, 40 bits, so that two
// starts of one replica id collide with odds of one in a trillion. A
// process that holds several documents can give them all one incarnation
// per start (package node does), which keeps clocks easier to read.
func NewIncarnation() string {
	var b [5]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return lowerBase32.EncodeToString(b[:])
}

// validIncarnation checks a Config.Incarnation.
func validIncarnation(inc string) error {
	if inc == "" || len(inc) > maxIncarnationLen || strings.ContainsFunc(inc, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'z')
	}) {
		return fmt.Errorf("%w: Incarnation %q is not 1 to %d characters of [0-9a-z]", ErrInvalidConfig, inc, maxIncarnationLen)
	}
	return nil
}

// SourceID returns the source id of one incarnation of a replica: id, a
// tilde, and the incarnation.
func SourceID(id, incarnation string) string {
	return id + incarnationSep + incarnation
}

// ReplicaID returns the replica id of a source: the source id without its
// incarnation suffix ("n1~k3x9p2qd" is an incarnation of "n1"), or the
// source id itself if it has none (a JavaScript peer's id).
func ReplicaID(source string) string {
	i := strings.LastIndex(source, incarnationSep)
	if i < 0 || validIncarnation(source[i+1:]) != nil {
		return source
	}
	return source[:i]
}

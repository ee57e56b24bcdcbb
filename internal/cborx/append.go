package cborx

import (
	"encoding/binary"
	"math"
)

// CBOR major types, shifted into the initial byte.
const (
	MajorUint  = 0 << 5
	MajorNeg   = 1 << 5
	MajorBytes = 2 << 5
	MajorText  = 3 << 5
	MajorArray = 4 << 5
	MajorMap   = 5 << 5
	MajorTag   = 6 << 5
	// MajorSimple holds false, true, null, undefined and the floats.
	MajorSimple = 7 << 5
)

// Float64 is the initial byte of an IEEE 754 double.
const Float64 = 0xfb

// AppendHead appends a head of the given major type and argument n, in the
// shortest form.
func AppendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= math.MaxUint8:
		return append(b, major|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, major|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, major|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, major|27), n)
}

// HeadLen returns the size of a head with argument n.
func HeadLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

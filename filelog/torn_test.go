package filelog

import (
	"errors"
	"fmt"
	"github.com/scuttle-go/scuttle/internal/wire"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// outcome is what opening a damaged log must do.
type outcome struct {
	err       error // nil: opens
	keys      int   // keys 0..keys-1 are present after opening
	truncated int64 // Stats.Truncated
}

// checkOpen writes data to a fresh file, opens it and checks the outcome;
// with an error, that Open changed nothing and named the file and offset.
func checkOpen(t *testing.T, data []byte, cfg *Config, w outcome, at int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m := newModel(t, "a")
	l, err := Open(path, m, cfg)
	if w.err != nil {
		if l != nil {
			l.Close()
		}
		if !errors.Is(err, w.err) {
			t.Fatalf("Open = %v, want %v", err, w.err)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("offset %d", at)) {
			t.Errorf("error %q does not name the file and offset %d", msg, at)
		}
		if after, _ := os.ReadFile(path); string(after) != string(data) {
			t.Errorf("Open changed the file")
		}
		if len(m.Clock()) != 0 {
			t.Errorf("Open changed the document: clock %v", m.Clock())
		}
		return
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	if got := l.Stats().Truncated; got != w.truncated {
		t.Errorf("Truncated = %d, want %d", got, w.truncated)
	}
	if d := cmp.Diff(want(w.keys), m.Snapshot()); d != "" {
		t.Errorf("keys (-want +got):\n%s", d)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if wantSize := int64(len(data)) - w.truncated; fi.Size() != wantSize {
		t.Errorf("file size %d after Open, want %d", fi.Size(), wantSize)
	}
	// The log goes on from there.
	fill(t, m, w.keys, w.keys+1)
	l.Close()
	m2, _ := reopen(t, path, "a", nil)
	sameState(t, m2, m)
}

const tornKeys = 5

func tornLog(t *testing.T) (data []byte, hlen int, offs []int64) {
	data = writeLog(t, filepath.Join(t.TempDir(), "a.log"), "a", tornKeys)
	hlen, offs = layout(t, data)
	if len(offs) != tornKeys {
		t.Fatalf("%d records, want %d", len(offs), tornKeys)
	}
	return data, hlen, offs
}

// TestTornTail cuts the log at every byte offset of its last record.
func TestTornTail(t *testing.T) {
	data, _, offs := tornLog(t)
	last := offs[len(offs)-1]
	for cut := last; cut <= int64(len(data)); cut++ {
		t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
			w := outcome{keys: tornKeys - 1, truncated: cut - last}
			if cut == int64(len(data)) {
				w = outcome{keys: tornKeys}
			}
			checkOpen(t, data[:cut], nil, w, 0)
		})
	}
}

// TestBitFlip flips one bit in each byte of the last and of a middle record.
func TestBitFlip(t *testing.T) {
	data, _, offs := tornLog(t)
	size := int64(len(data))
	flip := func(at int64) []byte {
		b := append([]byte(nil), data...)
		b[at] ^= 1 << (at % 8)
		return b
	}
	last, mid := offs[len(offs)-1], offs[2]
	t.Run("last", func(t *testing.T) {
		for at := last; at < size; at++ {
			t.Run(fmt.Sprintf("byte=%d", at-last), func(t *testing.T) {
				// A crash can leave the last payload with blocks that never
				// made it to the disk: torn. It never changes a header
				// that was written: damage.
				if at-last < sizeOfRecordHeader {
					checkOpen(t, flip(at), nil, outcome{err: ErrCorrupt}, last)
					checkOpen(t, flip(at), &Config{Repair: true}, outcome{keys: tornKeys - 1, truncated: size - last}, 0)
					return
				}
				checkOpen(t, flip(at), nil, outcome{keys: tornKeys - 1, truncated: size - last}, 0)
			})
		}
	})
	t.Run("middle", func(t *testing.T) {
		for at := mid; at < offs[3]; at++ {
			t.Run(fmt.Sprintf("byte=%d", at-mid), func(t *testing.T) {
				checkOpen(t, flip(at), nil, outcome{err: ErrCorrupt}, mid)
				checkOpen(t, flip(at), &Config{Repair: true}, outcome{keys: 2, truncated: size - mid}, 0)
			})
		}
	})
}

// TestDamagedTail covers the other tails a crash or a disk can leave.
func TestDamagedTail(t *testing.T) {
	data, _, offs := tornLog(t)
	size := int64(len(data))
	last := offs[len(offs)-1]
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	zeros := func(n int64) []byte { return make([]byte, n) }
	garbage := []byte(strings.Repeat("stale block from another file ", 20))
	tests := []struct {
		name string
		data []byte
		cfg  *Config
		want outcome
		at   int64
	}{
		{"zero-filled tail", cat(data, zeros(4096)), nil, outcome{keys: tornKeys, truncated: 4096}, 0},
		{"a few zeros", cat(data, zeros(5)), nil, outcome{keys: tornKeys, truncated: 5}, 0},
		{"last record zeroed", cat(data[:last], zeros(size-last)), nil, outcome{keys: tornKeys - 1, truncated: size - last}, 0},
		{"last payload half zeroed, then zeros", cat(data[:last+16], zeros(size-last-16+4096)), nil,
			outcome{keys: tornKeys - 1, truncated: size - last + 4096}, 0},
		{"last record cut, then zeros", cat(data[:last+5], zeros(8192)), nil, outcome{keys: tornKeys - 1, truncated: 5 + 8192}, 0},
		{"garbage after the last record", cat(data, garbage), nil, outcome{err: ErrCorrupt}, size},
		{"garbage, repaired", cat(data, garbage), &Config{Repair: true}, outcome{keys: tornKeys, truncated: int64(len(garbage))}, 0},
		{"middle record zeroed", cat(data[:offs[1]], zeros(offs[2]-offs[1]), data[offs[2]:]), nil, outcome{err: ErrCorrupt}, offs[1]},
		{"length beyond the limit", withLength(data, offs[1], 1<<31), nil, outcome{err: ErrCorrupt}, offs[1]},
		// An intact header claiming more than the file holds is a write
		// cut short, wherever it is: the header checksum makes a damaged
		// length that still passes it a 1 in 2^32 event.
		{"length beyond the file", withLength(data, offs[1], 1<<20), nil, outcome{keys: 1, truncated: size - offs[1]}, 0},
		{"last length beyond the file", withLength(data, last, 1<<20), nil, outcome{keys: tornKeys - 1, truncated: size - last}, 0},
		{"undecodable payload", withPayload(data, offs[1], []byte{0x83, 0x01, 0x02, 0x03}), nil, outcome{err: ErrCorrupt}, offs[1]},
		{"undecodable last payload", withPayload(data, last, []byte{0x80}), nil, outcome{err: ErrCorrupt}, last},
		{"invalid update", withPayload(data, offs[1], []byte{0x83, 0x61, 'a', 0xfb, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}), nil, outcome{err: ErrCorrupt}, offs[1]},
		{"data not one item", withPayload(data, offs[1], append(wire.AppendUpdate(nil, updateAt(data, offs[1])), 0x01)), nil, outcome{err: ErrCorrupt}, offs[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkOpen(t, tt.data, tt.cfg, tt.want, tt.at)
		})
	}
}

// withLength returns data with the record at off claiming length n, its
// header checksum fixed so that only the length is wrong.
func withLength(data []byte, off int64, n uint32) []byte {
	b := append([]byte(nil), data...)
	h := recordHeader(b[off : off+sizeOfRecordHeader])
	putUint32(h, n)
	putUint32(h[sizeOfLength+sizeOfCRC:], checksum(h[:sizeOfLength+sizeOfCRC]))
	return b
}

// withPayload returns data with the record at off replaced by one holding
// payload p, checksums correct.
func withPayload(data []byte, off int64, p []byte) []byte {
	n := int64(recordHeader(data[off:]).Length())
	b := append([]byte(nil), data[:off]...)
	h := make([]byte, sizeOfRecordHeader)
	putUint32(h, uint32(len(p)))
	putUint32(h[sizeOfLength:], checksum(p))
	putUint32(h[sizeOfLength+sizeOfCRC:], checksum(h[:sizeOfLength+sizeOfCRC]))
	b = append(append(b, h...), p...)
	return append(b, data[off+sizeOfRecordHeader+n:]...)
}

func updateAt(data []byte, off int64) (u scuttlebutt.Update) {
	n := int64(recordHeader(data[off:]).Length())
	var d decoder
	u, err := d.decode(data[off+sizeOfRecordHeader : off+sizeOfRecordHeader+n])
	if err != nil {
		panic(err)
	}
	return u
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

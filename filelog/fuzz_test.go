package filelog

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// FuzzReplay feeds arbitrary bytes to the log reader. It must never panic,
// never allocate much more than the input on a hostile length field, and
// what its first pass accepts the second must apply without error.
func FuzzReplay(f *testing.F) {
	good := writeLog(f, filepath.Join(f.TempDir(), "a.log"), "a", 4)
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add(good[:sizeOfFixedHeader+1+5])
	hostile := appendFileHeader(nil, "a")
	hostile = append(hostile, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)
	hostile = append(hostile, 0, 0, 0, 0, 1, 2, 3)
	f.Add(hostile)
	f.Add(withLength(good, int64(len(appendFileHeader(nil, "a"))), 3<<20))
	signed := appendFileHeader(nil, "a")
	signed, _ = appendRecord(signed, scuttlebutt.Update{Source: "b", Timestamp: 1.5, Data: []byte{0x81, 0x61, 'k'}, Signature: []byte{1, 2}}, DefaultMaxRecordSize)
	f.Add(signed)
	clocked, _, _ := appendClockRecords(good, vclock.Clock{"a": 1e12, "b": 2}, DefaultMaxRecordSize)
	f.Add(clocked)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, version, hlen, err := parseFileHeader(data)
		if err != nil {
			return
		}
		m, err := model.New("a", nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := (*Config)(nil).withDefaults()
		l := &Log{path: "fuzz", cfg: cfg, doc: m.Base(), val: m.Validator(), log: cfg.Logger, version: version}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		end, records, _, bad, err := l.verify(bytesReaderAt(data), int64(hlen), int64(len(data)))
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20+64*uint64(len(data)) {
			t.Errorf("verify of %d bytes allocated %d bytes", len(data), alloc)
		}
		if end < int64(hlen) || end > int64(len(data)) || (bad == nil) != (end == int64(len(data))) {
			t.Fatalf("verify: end %d of %d, bad %v", end, len(data), bad)
		}
		if err := l.replay(bytesReaderAt(data), int64(hlen), end); err != nil {
			t.Fatalf("replay of what verify accepted (%d records): %v", records, err)
		}
		if got := int64(len(m.History(nil))); got > records {
			t.Errorf("%d updates applied from %d records", got, records)
		}
		// What was applied encodes and decodes back to itself.
		for _, u := range m.History(nil) {
			rec, err := appendRecord(nil, u, DefaultMaxRecordSize)
			if err != nil {
				t.Fatal(err)
			}
			d := decoder{keep: true}
			v, err := d.decode(rec[sizeOfRecordHeader:])
			if err != nil {
				t.Fatalf("decode(encode(%v)): %v", u, err)
			}
			if diff := cmp.Diff(u, v); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		}
	})
}

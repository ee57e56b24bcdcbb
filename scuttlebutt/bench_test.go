package scuttlebutt_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// sinkDoc is the cheapest replica: it counts what it applies and keeps
// nothing, so that a benchmark of it measures the base. Its Validator
// checks that Data is a CBOR array, and nothing more.
type sinkDoc struct {
	*scuttlebutt.Scuttlebutt
	applied atomic.Int64
}

func (d *sinkDoc) History(vclock.Clock) []scuttlebutt.Update { return nil }

func (d *sinkDoc) ApplyUpdate(scuttlebutt.Update) bool {
	d.applied.Add(1)
	return true
}

func (d *sinkDoc) ApplyUpdates(us []scuttlebutt.Update) { d.applied.Add(int64(len(us))) }

func (d *sinkDoc) ValidateUpdate(u scuttlebutt.Update) error {
	if len(u.Data) == 0 || u.Data[0]>>5 != 4 {
		return fmt.Errorf("not an array")
	}
	return nil
}

func newSinkDoc(b *testing.B, id string) *sinkDoc {
	d := &sinkDoc{}
	sb, err := scuttlebutt.New(id, d, &scuttlebutt.Config{Incarnation: "1"})
	if err != nil {
		b.Fatal(err)
	}
	d.Scuttlebutt = sb
	return d
}

// drain steps to with the messages from's Ready returns, once, and hands
// them back with Recycle, as package stream's driver does.
func drain(b *testing.B, from, to *scuttlebutt.Link) {
	msgs := from.Ready()
	for _, m := range msgs {
		if err := to.Step(m); err != nil {
			b.Fatal(err)
		}
	}
	from.Recycle(msgs)
}

// BenchmarkLive measures the base's share of W1 (package stream's
// BenchmarkW1), per update: a local update on a, queued on a's live link
// to b, sent in batches and applied on b, through replicas that do
// nothing and with no transport in between.
func BenchmarkLive(b *testing.B) {
	a, c := newSinkDoc(b, "a"), newSinkDoc(b, "b")
	la, lc := syncedLinks(b, a.Scuttlebutt, c.Scuttlebutt)
	const unit = 1024 // updates written between two drains of the link
	data := make([][]byte, unit)
	for i := range data {
		// ["k"+i, 32 bytes], the shape of W1's payloads.
		k := "k" + strconv.Itoa(i)
		p := append([]byte{0x82, 0x60 | byte(len(k))}, k...)
		p = append(p, 0x58, 32)
		data[i] = append(p, make([]byte, 32)...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := a.LocalUpdateChecked(data[i%unit]); err != nil {
			b.Fatal(err)
		}
		if i%unit == unit-1 || i == b.N-1 {
			drain(b, la, lc)
		}
	}
	b.StopTimer()
	if n := c.applied.Load(); n != int64(b.N) {
		b.Fatalf("b applied %d updates of %d", n, b.N)
	}
}

package node

import (
	"fmt"
	"log/slog"
	"testing"
)

// BenchmarkCreateDocument creates models on a memory-only node that
// already holds 10 or 10,000 documents, with the catalog's reaction
// (ensureCatalog) included: the cost of one creation must not grow with
// the number of documents held. (With a DataDir, the log's creation and
// fsyncs come on top, the same at any count.)
func BenchmarkCreateDocument(b *testing.B) {
	for _, held := range []int{10, 10000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			n, err := New(&Config{ID: "n1", BindAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
				MaxDocuments: 1 << 30, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			for i := range held {
				if _, err := n.Model(fmt.Sprintf("held-%05d", i)); err != nil {
					b.Fatal(err)
				}
			}
			n.ensureCatalog()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := n.Model(fmt.Sprintf("new-%08d", i)); err != nil {
					b.Fatal(err)
				}
				n.ensureCatalog() // what the manager does on the catalog's change
				i++
			}
		})
	}
}

package emitter_test

import (
	"testing"

	"github.com/scuttle-go/scuttle/emitter"
)

// BenchmarkEmit emits events, each with one integer argument, to an
// Emitter with no listener, with listeners of the event's name or another,
// and with a channel: what a listener costs the emitting goroutine.
func BenchmarkEmit(b *testing.B) {
	for _, tc := range []struct {
		name   string
		listen func(e *emitter.Emitter) (cancel func())
	}{
		{"none", func(*emitter.Emitter) func() { return func() {} }},
		{"on", func(e *emitter.Emitter) func() { return e.On("tick", func(emitter.Event) {}) }},
		{"on-other", func(e *emitter.Emitter) func() { return e.On("other", func(emitter.Event) {}) }},
		{"any", func(e *emitter.Emitter) func() { return e.OnAny(func(emitter.Event) {}) }},
		{"chan", func(e *emitter.Emitter) func() {
			ch := make(chan emitter.Event, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range ch {
				}
			}()
			cancel := e.Chan(ch, "tick")
			return func() { cancel(); close(ch); <-done }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, err := emitter.New("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer tc.listen(e)()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := e.Emit("tick", i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

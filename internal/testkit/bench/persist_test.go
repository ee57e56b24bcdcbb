package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/scuttle-go/scuttle/filelog"
)

// TestPersistWorkloads runs the persistence workloads at a small size.
func TestPersistWorkloads(t *testing.T) {
	for _, p := range []filelog.SyncPolicy{filelog.SyncAlways, filelog.SyncInterval, filelog.SyncNever} {
		for _, writers := range []int{1, 16} {
			t.Run(fmt.Sprintf("P1/sync=%s/writers=%d", p, writers), func(t *testing.T) {
				r, err := P1(p, writers)(t.Context(), &Options{Keys: 200})
				if err != nil {
					t.Fatal(err)
				}
				wantN(t, r, 200)
				if r.UpdatesPerSec <= 0 || r.Duration <= 0 {
					t.Errorf("%v: no rate", r)
				}
				if r.BytesPerUpdate < 30 || r.BytesPerUpdate > 80 {
					t.Errorf("%.1f log bytes per update, want a small update's record", r.BytesPerUpdate)
				}
			})
		}
	}
	t.Run("P2", func(t *testing.T) {
		r, err := P2(t.Context(), &Options{Keys: 5_000})
		if err != nil {
			t.Fatal(err)
		}
		wantN(t, r, 5_000)
		if r.Duration <= 0 || r.BytesPerUpdate < 30 || r.BytesPerUpdate > 80 {
			t.Errorf("%v", r)
		}
	})
	t.Run("P2 canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := P2(ctx, &Options{Keys: 5_000}); err == nil {
			t.Errorf("P2 with a canceled context succeeded")
		}
	})
}

package model

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// TestPlanPlainAgrees: wherever planPlain decides a write's options
// without the wall clock or the lease rule, planAt, after the sweep that
// plan does first on its general path, decides the same. The keys go
// through random writes of three replicas (one with leases, so that some
// keys are held) with ttls shorter, equal and longer than the planned
// write's, deletes and "tomb" writes, while the clock moves past some
// expiries; the planning replica has leases or not.
func TestPlanPlainAgrees(t *testing.T) {
	for _, lease := range []time.Duration{0, 2 * time.Second} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("lease=%v/seed=%d", lease, seed), func(t *testing.T) {
				testPlanPlainAgrees(t, lease, seed)
			})
		}
	}
}

func testPlanPlainAgrees(t *testing.T, lease time.Duration, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 12))
	ms := int64(1795385884149)
	clock := func() time.Time { return time.UnixMilli(ms) }
	newM := func(id string, lease time.Duration) *Model {
		m, err := NewWithConfig(id, &Config{Lease: lease, Replica: &scuttlebutt.Config{Now: clock}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b, c := newM("a", lease), newM("b", 2*time.Second), newM("c", 0)
	models := []*Model{a, b, c}
	keys := []string{"k0", "k1", "k2", "k3"}
	ttls := []uint64{0, 1000, 3000, 10_000}
	var quick, tombs int
	for step := range 600 {
		m := models[rng.IntN(len(models))]
		key := keys[rng.IntN(len(keys))]
		var err error
		switch ttl := time.Duration(ttls[rng.IntN(len(ttls))]) * time.Millisecond; rng.IntN(4) {
		case 0:
			err = m.Delete(key)
		case 1:
			err = m.Set(key, step)
		default:
			if ttl == 0 {
				ttl = time.Millisecond
			}
			err = m.SetTTL(key, step, ttl)
		}
		if err != nil && !errors.Is(err, ErrLeased) {
			t.Fatalf("step %d: %s writing %s: %v", step, m.ID(), key, err)
		}
		if rng.IntN(3) == 0 {
			dst, src := models[rng.IntN(len(models))], models[rng.IntN(len(models))]
			if dst != src {
				if _, err := dst.Apply(src.History(dst.Clock())...); err != nil {
					t.Fatalf("step %d: %s pulling from %s: %v", step, dst.ID(), src.ID(), err)
				}
			}
		}
		ms += int64(rng.IntN(1500))
		for _, key := range keys {
			for _, ttl := range ttls {
				for _, del := range []bool{false, true} {
					if del && ttl != 0 {
						continue
					}
					got, ok := a.planPlain(key, del, ttl)
					if !ok {
						continue
					}
					quick++
					if got.tomb {
						tombs++
					}
					wall := a.now()
					a.sweepDueAt(wall)
					want, err := a.planAt(key, del, ttl, wall)
					if err != nil || got != want {
						t.Fatalf("step %d: planning %s (del %v, ttl %d): planPlain = %+v, planAt = %+v, %v", step, key, del, ttl, got, want, err)
					}
				}
			}
		}
	}
	if quick == 0 || (lease == 0 && tombs == 0) {
		t.Errorf("planPlain decided %d writes, %d of them with tomb: the test checks too little", quick, tombs)
	}
}

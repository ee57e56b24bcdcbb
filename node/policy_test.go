package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// graph returns the link graph the policy gives members in epoch, as
// adjacency sets by index.
func graph(p linkPolicy, members []string, epoch int64) []map[int]bool {
	adj := make([]map[int]bool, len(members))
	for i := range adj {
		adj[i] = make(map[int]bool)
	}
	for i := range members {
		for j := i + 1; j < len(members); j++ {
			if p.linked(members, i, j, epoch) {
				adj[i][j], adj[j][i] = true, true
			}
		}
	}
	return adj
}

// connected reports whether the graph without the members in down is
// connected.
func connected(adj []map[int]bool, down map[int]bool) bool {
	start := -1
	for i := range adj {
		if !down[i] {
			start = i
			break
		}
	}
	if start < 0 {
		return true
	}
	seen := map[int]bool{start: true}
	queue := []int{start}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for j := range adj[i] {
			if !down[j] && !seen[j] {
				seen[j] = true
				queue = append(queue, j)
			}
		}
	}
	return len(seen) == len(adj)-len(down)
}

func TestLinkPolicy(t *testing.T) {
	p := linkPolicy{fullMesh: DefaultFullMeshSize, ring: DefaultRingLinks, random: DefaultRandomLinks}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range []int{1, 2, 3, 8, 9, 10, 16, 50, 200} {
		t.Run(fmt.Sprint(n, " members"), func(t *testing.T) {
			members := make([]string, n)
			for i := range members {
				members[i] = fmt.Sprintf("node-%04d", i)
			}
			for epoch := range int64(5) {
				adj := graph(p, members, epoch)
				for i := range members {
					for j := range members {
						if i != j && p.linked(members, i, j, epoch) != p.linked(members, j, i, epoch) {
							t.Fatalf("epoch %d: linked(%d, %d) is not symmetric", epoch, i, j)
						}
					}
				}
				if n <= p.fullMesh {
					for i := range adj {
						if len(adj[i]) != n-1 {
							t.Fatalf("%d members: member %d has %d links, want all %d", n, i, len(adj[i]), n-1)
						}
					}
					continue
				}
				// Connected even with up to 2*ring-1 members down that
				// the failure detector has not removed yet.
				for range 50 {
					down := map[int]bool{}
					for len(down) < min(2*p.ring-1, n-1) {
						down[rng.IntN(n)] = true
					}
					if !connected(adj, down) {
						t.Fatalf("%d members, epoch %d: disconnected with %v down (seed %d)", n, epoch, down, seed)
					}
				}
				total := 0
				for i := range adj {
					if len(adj[i]) < 2*p.ring {
						t.Fatalf("member %d has %d links, fewer than its ring neighbours", i, len(adj[i]))
					}
					total += len(adj[i])
				}
				if mean, limit := float64(total)/float64(n), float64(2*p.ring+p.random+1); mean > limit {
					t.Errorf("%d members: %.1f links per member on average, want at most %.0f", n, mean, limit)
				}
			}
		})
	}
	t.Run("random links rotate", func(t *testing.T) {
		members := make([]string, 100)
		for i := range members {
			members[i] = fmt.Sprint("m", i)
		}
		same := true
		a, b := graph(p, members, 1), graph(p, members, 2)
		for i := range a {
			for j := range a[i] {
				same = same && b[i][j]
			}
		}
		if same {
			t.Error("the links of epoch 2 are those of epoch 1")
		}
	})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"bad id", Config{ID: "a b"}},
		{"negative backoff", Config{ReconnectBase: -time.Second}},
		{"max below base", Config{ReconnectBase: time.Second, ReconnectMax: time.Millisecond}},
		{"short secret", Config{Secret: []byte("short")}},
		{"bad gossip key", Config{GossipKey: make([]byte, 7)}},
		{"cert without key", Config{CertFile: "c.pem"}},
		{"bad bind address", Config{BindAddr: "nonsense"}},
		{"negative ring", Config{RingLinks: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(&tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
	t.Run("data dir of another node", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := resolveID("a", dir); err != nil {
			t.Fatal(err)
		}
		if _, err := resolveID("b", dir); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("resolveID(b) of a's directory: %v, want ErrInvalidConfig", err)
		}
		if id, err := resolveID("", dir); err != nil || id != "a" {
			t.Errorf("resolveID(\"\") = %q, %v; want the stored a", id, err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		c, err := (*Config)(nil).withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if c.BindAddr != DefaultBindAddr || c.FullMeshSize != DefaultFullMeshSize || c.ReconnectMax != DefaultReconnectMax {
			t.Errorf("defaults not applied: %+v", c)
		}
	})
}

package lock

import (
	"errors"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

func TestConfig(t *testing.T) {
	m := []string{"a", "b"}
	tests := []struct {
		name string
		cfg  *Config
		ok   bool
	}{
		{"members only", &Config{Members: m}, true},
		{"nil", nil, false},
		{"no members", &Config{}, false},
		{"self missing", &Config{Members: []string{"b"}}, false},
		{"bad member id", &Config{Members: []string{"a", ""}}, false},
		{"negative lease", &Config{Members: m, Lease: -1}, false},
		{"lease over a day", &Config{Members: m, Lease: 25 * time.Hour}, false},
		{"margin half the lease", &Config{Members: m, Lease: time.Second, Margin: 500 * time.Millisecond}, false},
		{"renew past lease - margin", &Config{Members: m, Lease: time.Second, Margin: 100 * time.Millisecond, Renew: 950 * time.Millisecond}, false},
		{"negative limit", &Config{Members: m, Limit: -1}, false},
		{"zero in limits", &Config{Members: m, Limits: map[string]int{"x": 0}}, false},
		{"semaphore", &Config{Members: m, Limit: 3, Limits: map[string]int{"x": 1}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := New("a", tc.cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("New(%+v) = %v, want ok %v", tc.cfg, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New(%+v) = %v, want ErrInvalidConfig", tc.cfg, err)
			}
			if tab != nil {
				tab.Close()
			}
		})
	}
	if _, err := New("", &Config{Members: []string{""}}); !errors.Is(err, scuttlebutt.ErrInvalidID) {
		t.Errorf("New(\"\") = %v, want ErrInvalidID", err)
	}
}

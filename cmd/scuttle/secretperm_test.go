package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFileReadableWarns checks that serve warns about a secret file
// that others than its owner can read, and says nothing about one they
// cannot.
func TestSecretFileReadableWarns(t *testing.T) {
	const warning = "the secret file is readable by others than its owner"
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}} {
		path := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(path, []byte("a shared secret of the test, 32 bytes+\n"), tt.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		var logs bytes.Buffer
		o := serveOptions{id: "n1", memory: true, secretFile: path, logLevel: "info", logFormat: "text", network: "local"}
		cfg, err := o.nodeConfig(&logs)
		if err != nil {
			t.Fatalf("mode %v: %v", tt.mode, err)
		}
		if len(cfg.Secret) == 0 {
			t.Fatalf("mode %v: no secret read", tt.mode)
		}
		if got := strings.Contains(logs.String(), warning); got != tt.warn {
			t.Errorf("mode %v: warned %v, want %v; logs:\n%s", tt.mode, got, tt.warn, logs.String())
		}
	}
}

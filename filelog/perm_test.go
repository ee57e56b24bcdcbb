package filelog_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
)

// TestFileMode checks that a new log is created with FileMode, whatever
// the umask lets through, and that an existing log open to others is
// tightened with a warning.
func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	open := func() string {
		t.Helper()
		m, err := model.New("r1", nil)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		l, err := filelog.Open(path, m, &filelog.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Set("k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return logs.String()
	}
	mode := func() os.FileMode {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	open()
	if got := mode(); got != filelog.FileMode {
		t.Errorf("new log: %v, want %v", got, os.FileMode(filelog.FileMode))
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := open()
	if got := mode(); got != 0o600 {
		t.Errorf("reopened 0644 log: %v, want 0600", got)
	}
	if !strings.Contains(logs, "permissions tightened") {
		t.Errorf("no warning on tightening a log open to others:\n%s", logs)
	}
}

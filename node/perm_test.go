package node

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// modes returns the permissions of everything under dir, dir included,
// by path relative to dir.
func modes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fi.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDataDirPermissions checks that a node creates its data directory
// 0700 and its files 0600, and that a restart tightens a directory and
// logs left open to others (by an older version), saying so.
func TestDataDirPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(t, "a")
	cfg.DataDir = dir
	n := start(t, cfg)
	mustModel(t, n, "users").Set("ada", "secret")
	n.Close()
	check := func(when string) {
		t.Helper()
		files := 0
		for p, m := range modes(t, dir) {
			fi, _ := os.Stat(filepath.Join(dir, p))
			want := fs.FileMode(DirMode)
			if !fi.IsDir() {
				want = 0o600
				files++
			}
			if m != want {
				t.Errorf("%s: %s is %v, want %v", when, p, m, want)
			}
		}
		if files < 2 {
			t.Errorf("%s: %d files under %s, want the node id and logs", when, files, dir)
		}
	}
	check("created")

	// As an older version left them.
	for p := range modes(t, dir) {
		path := filepath.Join(dir, p)
		fi, _ := os.Stat(path)
		mode := fs.FileMode(0o644)
		if fi.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	n = start(t, cfg)
	if got := mustModel(t, n, "users").Snapshot()["ada"]; got != "secret" {
		t.Fatalf("restarted node holds %v", got)
	}
	n.Close()
	out := logs.String()
	for _, want := range []string{"data directory was open to others: permissions tightened", "log file was readable by others: permissions tightened"} {
		if !strings.Contains(out, want) {
			t.Errorf("the restart's log does not say %q:\n%s", want, out)
		}
	}
	// The directories below the data directory (no one else can enter
	// it) and the node id (not secret) keep their modes; the data
	// directory and every log are tightened.
	for p, m := range modes(t, dir) {
		fi, _ := os.Stat(filepath.Join(dir, p))
		switch {
		case p == ".":
			if m != DirMode {
				t.Errorf("data directory is %v after the restart, want %v", m, fs.FileMode(DirMode))
			}
		case !fi.IsDir() && p != "node-id" && m&0o077 != 0:
			t.Errorf("log %s is %v after the restart, want no access for others", p, m)
		}
	}
}

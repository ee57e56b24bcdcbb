//go:build !unix

package filelog

import "os"

// lockFile does nothing where flock is missing: do not open a log twice.
func lockFile(*os.File) error { return nil }

// syncDir does nothing where directories cannot be fsynced.
func syncDir(string) error { return nil }

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSessionFlags checks serve's lock session flags: each is read from
// the command line, $SCUTTLE_<FLAG> and the config file; a served node
// applies them (a session's default TTL, the sessions open at once, the
// locks of one session); values out of range are refused before serving.
func TestSessionFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "scuttle.conf")
	if err := os.WriteFile(file, []byte("max-sessions = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SCUTTLE_SESSION_TTL": "3s", "SCUTTLE_CONFIG": file}
	fs, _ := serveCommand.newFlags(io.Discard)
	if err := fs.Parse([]string{"-max-session-locks", "2"}); err != nil {
		t.Fatal(err)
	}
	if err := layer(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatalf("layer: %v", err)
	}
	for name, want := range map[string]string{"session-ttl": "3s", "max-sessions": "7", "max-session-locks": "2"} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("-%s = %q, want %q", name, got, want)
		}
	}

	addr := serveInProcessWith(t, func(o *serveOptions) {
		o.sessionTTL, o.maxSessions, o.maxSessionLocks = 3*time.Second, 1, 1
	})
	call := func(method, path string) (code int, body map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, "http://"+addr+path, nil)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, sess := call("POST", "/v1/sessions")
	if code != http.StatusOK || sess["ttl"] != "3s" {
		t.Fatalf("POST /v1/sessions: %d %v, want 200 with the -session-ttl 3s", code, sess)
	}
	if code, body := call("POST", "/v1/sessions"); code != http.StatusServiceUnavailable {
		t.Errorf("a second session past -max-sessions 1: %d %v, want 503", code, body)
	}
	id := url.QueryEscape(sess["id"].(string))
	if code, body := call("POST", "/v1/locks/jobs/a?session="+id); code != http.StatusOK {
		t.Fatalf("the session's first lock: %d %v", code, body)
	}
	if code, body := call("POST", "/v1/locks/jobs/b?session="+id); code != http.StatusConflict || !strings.Contains(body["error"].(string), "the limit") {
		t.Errorf("a second lock past -max-session-locks 1: %d %v, want 409", code, body)
	}

	for _, tc := range []struct {
		o   serveOptions
		err string
	}{
		{serveOptions{sessionTTL: 500 * time.Millisecond}, "-session-ttl 500ms is not in [1s, 1h0m0s]"},
		{serveOptions{sessionTTL: 2 * time.Hour}, "-session-ttl 2h0m0s is not in"},
		{serveOptions{maxSessions: -1}, "-max-sessions -1 is negative"},
		{serveOptions{maxSessionLocks: -1}, "-max-session-locks -1 is negative"},
	} {
		if _, _, err := tc.o.apiConfig(nil); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("apiConfig(%+v) = %v, want %q", tc.o, err, tc.err)
		}
	}
}

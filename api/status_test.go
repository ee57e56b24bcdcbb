package api

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestStatusKeysSnakeCase checks every key of /v1/status's JSON, but the
// keys of the maps keyed by names (documents of a link, sources of a
// clock), against snake_case.
func TestStatusKeysSnakeCase(t *testing.T) {
	f, s := newServer(t, nil)
	f.status.Links[0].Documents = map[string]stream.Stats{"Shared.Doc": {BytesIn: 1, UpdatesOut: 2}}
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `1`), "PUT")
	f.status.Documents = f.Documents()
	f.status.Documents[0].Clock = vclock.Clock{"Self~X": 1}
	r := doString(t, s, "GET", "/v1/status", "")
	wantOK(t, r, "status")
	var v any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var walk func(path string, v any, names bool)
	count := 0
	walk = func(path string, v any, names bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !names {
					count++
					if !snake.MatchString(k) {
						t.Errorf("key %q at %s is not snake_case", k, path)
					}
				}
				// The values of "documents" in a link and of "clock" are
				// keyed by names, not fields.
				walk(path+"."+k, e, !names && (k == "clock" || (k == "documents" && isLinkPath(path))))
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e, false)
			}
		}
	}
	walk("$", v, false)
	if count < 30 {
		t.Errorf("checked only %d keys: the status lacks parts", count)
	}
}

func isLinkPath(path string) bool { return regexp.MustCompile(`\.links\[\]$`).MatchString(path) }

package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/node"
)

func TestModelRoutes(t *testing.T) {
	_, s := newServer(t, nil)

	wantOK(t, doString(t, s, "PUT", "/v1/models/users/keys/ada", `{"admin": true, "age": 36}`), "PUT ada")
	wantOK(t, doString(t, s, "PUT", "/v1/models/users/keys/team%2Fgrace", `"navy"`), "PUT team/grace")
	wantOK(t, doString(t, s, "PUT", "/v1/models/users/keys/a/b", `[1, 2.5, null]`), "PUT a/b")

	r := doString(t, s, "GET", "/v1/models/users/keys/ada", "")
	wantOK(t, r, "GET ada")
	if diff := cmp.Diff(`{"key":"ada","value":{"admin":true,"age":36}}`+"\n", r.body); diff != "" {
		t.Errorf("GET ada (-want +got):\n%s", diff)
	}
	r = doString(t, s, "GET", "/v1/models/users", "")
	wantOK(t, r, "GET users")
	want := map[string]any{
		"ada":        map[string]any{"admin": true, "age": json.Number("36")},
		"team/grace": "navy",
		"a/b":        []any{json.Number("1"), json.Number("2.5"), nil},
	}
	if diff := cmp.Diff(want, decode[map[string]any](t, r)); diff != "" {
		t.Errorf("GET users (-want +got):\n%s", diff)
	}

	r = doString(t, s, "DELETE", "/v1/models/users/keys/team%2Fgrace", "")
	wantOK(t, r, "DELETE team/grace")
	if r := doString(t, s, "GET", "/v1/models/users/keys/team%2Fgrace", ""); r.code != http.StatusNotFound {
		t.Errorf("GET of a deleted key: %d %s, want 404", r.code, r.body)
	}
	if r := doString(t, s, "DELETE", "/v1/models/users/keys/team%2Fgrace", ""); r.code != http.StatusNotFound {
		t.Errorf("DELETE of a deleted key: %d %s, want 404", r.code, r.body)
	}
}

// TestValues checks that JSON values come back as they went in, integers
// as integers.
func TestValues(t *testing.T) {
	_, s := newServer(t, nil)
	for _, tt := range []struct{ name, in, out string }{
		{"string", `"hello"`, `"hello"`},
		{"unicode", `"h\u00e9llo \ud83d\ude00"`, `"héllo 😀"`},
		{"integer", `42`, `42`},
		{"negative integer", `-9223372036854775808`, `-9223372036854775808`},
		{"max integer", `9223372036854775807`, `9223372036854775807`},
		{"float", `2.5`, `2.5`},
		{"exponent", `1e3`, `1000`},
		{"tiny float", `5e-324`, `5e-324`},
		{"true", `true`, `true`},
		{"null", `null`, `null`},
		{"array", ` [1, "two", [3.5]] `, `[1,"two",[3.5]]`},
		{"object", `{"b": {"c": []}, "a": 1}`, `{"a":1,"b":{"c":[]}}`},
		{"nested 31", nested(31), nested(31)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantOK(t, doString(t, s, "PUT", "/v1/models/values/keys/k", tt.in), "PUT")
			r := doString(t, s, "GET", "/v1/models/values/keys/k", "")
			wantOK(t, r, "GET")
			var got struct{ Value json.RawMessage }
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatal(err)
			}
			if string(got.Value) != tt.out {
				t.Errorf("PUT %s, GET = %s, want %s", tt.in, got.Value, tt.out)
			}
		})
	}
}

// TestBadRequests sends requests that must fail with a clear 4xx and a
// JSON error, and checks that they change nothing.
func TestBadRequests(t *testing.T) {
	f, s := newServer(t, &Config{MaxBodySize: 1 << 10})
	// Existing documents of each type, with state.
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `"v"`), "setup PUT")
	wantOK(t, doString(t, s, "POST", "/v1/events/e", `{"event": "x"}`), "setup emit")
	wantOK(t, doString(t, s, "POST", "/v1/locks/l/held", ""), "setup lock")

	long := strings.Repeat("k", MaxKeySize+1)
	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string // a substring of the error message
	}{
		{"oversized body", "PUT", "/v1/models/m/keys/k", bigJSON(2 << 10), 413, "request body over 1024 bytes"},
		{"oversized body, new document", "PUT", "/v1/models/fresh/keys/k", bigJSON(2 << 10), 413, "over 1024 bytes"},
		{"oversized event", "POST", "/v1/events/e", `{"event":"x","args":[` + bigJSON(2<<10) + `]}`, 413, "over 1024 bytes"},
		{"oversized trailing data", "PUT", "/v1/models/m/keys/k", `1` + strings.Repeat(" ", 2<<10), 413, "over 1024 bytes"},
		{"malformed JSON", "PUT", "/v1/models/m/keys/k", `{"a":`, 400, "malformed JSON"},
		{"malformed JSON, new document", "PUT", "/v1/models/fresh/keys/k", `{nope}`, 400, "malformed JSON"},
		{"bare word", "PUT", "/v1/models/m/keys/k", `hello`, 400, "malformed JSON"},
		{"trailing data", "PUT", "/v1/models/m/keys/k", `1 2`, 400, "data after the value"},
		{"trailing garbage", "PUT", "/v1/models/m/keys/k", `{"a":1}}`, 400, "data after the value"},
		{"empty body", "PUT", "/v1/models/m/keys/k", ``, 400, "empty body"},
		{"integer beyond int64", "PUT", "/v1/models/m/keys/k", `9223372036854775808`, 400, "beyond 64 bits"},
		{"float beyond float64", "PUT", "/v1/models/m/keys/k", `1e400`, 400, "beyond float64"},
		{"too deep", "PUT", "/v1/models/m/keys/k", nested(32), 400, "invalid value"},
		{"too deep, new document", "PUT", "/v1/models/fresh/keys/k", nested(32), 400, "invalid value"},
		{"unknown model", "GET", "/v1/models/nope", "", 404, `no document "nope"`},
		{"unknown model key", "GET", "/v1/models/nope/keys/k", "", 404, `no document "nope"`},
		{"unknown key", "GET", "/v1/models/m/keys/nope", "", 404, `no key "nope" in "m"`},
		{"delete in unknown model", "DELETE", "/v1/models/nope/keys/k", "", 404, `no document "nope"`},
		{"delete unknown key", "DELETE", "/v1/models/m/keys/nope", "", 404, `no key "nope"`},
		{"watch from a malformed id", "GET", "/v1/models/m/watch?since=x!", "", 400, "since: not a watch position"},
		{"unknown emitter", "GET", "/v1/events/nope", "", 404, `no document "nope"`},
		{"watch from an id too long", "GET", "/v1/events/e/watch?since=" + strings.Repeat("A", MaxWatchIDSize+1), "", 400, "over 8192"},
		{"watch an emitter as model", "GET", "/v1/models/e/watch", "", 409, `"e" is a emitter, not a model`},
		{"unknown lock table", "GET", "/v1/locks/nope", "", 404, `no document "nope"`},
		{"unknown lock table, lock", "GET", "/v1/locks/nope/x", "", 404, `no document "nope"`},
		{"release in unknown table", "DELETE", "/v1/locks/nope/x", "", 404, `no document "nope"`},
		{"reserved document name", "GET", "/v1/models/_catalog", "", 400, "document name"},
		{"reserved document name, write", "PUT", "/v1/models/_catalog/keys/k", `1`, 400, "document name"},
		{"document name with a space", "PUT", "/v1/models/a%20b/keys/k", `1`, 400, "document name"},
		{"document name too long", "PUT", "/v1/models/" + strings.Repeat("d", node.MaxNameSize+1) + "/keys/k", `1`, 400, "document name"},
		{"key not UTF-8", "PUT", "/v1/models/m/keys/%FF", `1`, 400, "not UTF-8"},
		{"key not UTF-8, new document", "PUT", "/v1/models/fresh/keys/%FF", `1`, 400, "not UTF-8"},
		{"key with a control character", "PUT", "/v1/models/m/keys/a%00b", `1`, 400, "control character"},
		{"key with a newline", "GET", "/v1/models/m/keys/a%0Ab", "", 400, "control character"},
		{"key too long", "PUT", "/v1/models/m/keys/" + long, `1`, 400, "over 1024"},
		{"key too long, delete", "DELETE", "/v1/models/m/keys/" + long, "", 400, "over 1024"},
		{"model as emitter", "POST", "/v1/events/m", `{"event":"x"}`, 409, "has another type"},
		{"emitter as model", "PUT", "/v1/models/e/keys/k", `1`, 409, "has another type"},
		{"read emitter as model", "GET", "/v1/models/e", "", 409, `"e" is a emitter, not a model`},
		{"read model as emitter", "GET", "/v1/events/m", "", 409, `"m" is a model, not a emitter`},
		{"lock in a model", "POST", "/v1/locks/m/x", "", 409, "has another type"},
		{"emit an array", "POST", "/v1/events/e", `["x"]`, 400, "body must be an object"},
		{"emit without a name", "POST", "/v1/events/e", `{"args": [1]}`, 400, "event name is empty"},
		{"emit a number as name", "POST", "/v1/events/e", `{"event": 1}`, 400, `"event" must be a string`},
		{"emit args not an array", "POST", "/v1/events/e", `{"event": "x", "args": 1}`, 400, `"args" must be an array`},
		{"emit unknown field", "POST", "/v1/events/e", `{"event": "x", "argz": []}`, 400, `unknown field "argz"`},
		{"emit too deep, new document", "POST", "/v1/events/fresh", `{"event": "x", "args": [` + nested(32) + `]}`, 400, "invalid argument"},
		{"emit malformed", "POST", "/v1/events/fresh", `{"event": "x",`, 400, "malformed JSON"},
		{"events limit", "GET", "/v1/events/e?limit=-1", "", 400, "not a count"},
		{"lock timeout", "POST", "/v1/locks/l/x?timeout=soon", "", 400, "not a duration"},
		{"lock timeout negative", "POST", "/v1/locks/l/x?timeout=-1s", "", 400, "not a duration"},
		{"lock timeout too long", "POST", "/v1/locks/l/x?timeout=1h", "", 400, "over the limit"},
		{"lock name not UTF-8", "POST", "/v1/locks/l/%FF", "", 400, "not UTF-8"},
		{"lock held", "POST", "/v1/locks/l/held", "", 409, "lock: locked"},
		{"release a lock not held", "DELETE", "/v1/locks/l/free", "", 403, "not the owner"},
		{"wrong method", "PATCH", "/v1/models/m/keys/k", `1`, 405, "method PATCH not allowed"},
		{"wrong method on a model", "POST", "/v1/models/m", `1`, 405, "not allowed"},
		{"wrong method on status", "DELETE", "/v1/status", "", 405, "not allowed"},
		{"no route", "GET", "/v1/nothing", "", 404, "no route for GET /v1/nothing"},
		{"no route under a model", "GET", "/v1/models/m/other", "", 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.state()
			r := doString(t, s, tt.method, tt.path, tt.body)
			if r.code != tt.code {
				t.Errorf("%s %s: status %d, want %d; body %s", tt.method, tt.path, r.code, tt.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var body struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == "" {
				t.Errorf("body %q is not a JSON error: %v", r.body, err)
			}
			if !strings.Contains(body.Error, tt.msg) {
				t.Errorf("error %q lacks %q", body.Error, tt.msg)
			}
			if tt.code == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if diff := cmp.Diff(before, f.state()); diff != "" {
				t.Errorf("a failed request changed the node (-before +after):\n%s", diff)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	f, s := newServer(t, nil)
	wantOK(t, doString(t, s, "POST", "/v1/events/chat", `{"event": "joined", "args": ["ada", 1]}`), "emit joined")
	wantOK(t, doString(t, s, "POST", "/v1/events/chat", `{"event": "left"}`), "emit left")
	wantOK(t, doString(t, s, "POST", "/v1/events/chat", `{"event": "said", "args": null}`), "emit said")

	type ev struct {
		Event  string
		Args   []any
		Source string
		Local  bool
	}
	r := doString(t, s, "GET", "/v1/events/chat", "")
	wantOK(t, r, "GET events")
	em, err := f.Emitter("chat")
	if err != nil {
		t.Fatal(err)
	}
	src := em.Source() // "self~" and the emitter's incarnation
	want := []ev{
		{"joined", []any{"ada", json.Number("1")}, src, true},
		{"left", []any{}, src, true},
		{"said", []any{}, src, true},
	}
	if diff := cmp.Diff(want, decode[[]ev](t, r)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	r = doString(t, s, "GET", "/v1/events/chat?limit=1", "")
	if diff := cmp.Diff(want[2:], decode[[]ev](t, r)); diff != "" {
		t.Errorf("events?limit=1 (-want +got):\n%s", diff)
	}
	r = doString(t, s, "GET", "/v1/events/chat?limit=0", "")
	if diff := cmp.Diff([]ev{}, decode[[]ev](t, r)); diff != "" {
		t.Errorf("events?limit=0 (-want +got):\n%s", diff)
	}
}

func TestLocks(t *testing.T) {
	_, s := newServer(t, &Config{LockAckWait: 5 * time.Second})
	type lockBody struct {
		Lock     string
		Holders  []string
		Deadline *time.Time
	}
	r := doString(t, s, "POST", "/v1/locks/jobs/nightly", "")
	wantOK(t, r, "take")
	got := decode[lockBody](t, r)
	if got.Lock != "nightly" || !cmp.Equal(got.Holders, []string{"self"}) || got.Deadline == nil {
		t.Errorf("take: %+v, want nightly held by self with a deadline", got)
	}
	r = doString(t, s, "GET", "/v1/locks/jobs", "")
	wantOK(t, r, "GET table")
	table := decode[map[string]any](t, r)
	held, _ := table["held"].([]any)
	delete(table, "held")
	if diff := cmp.Diff(map[string]any{"name": "jobs", "members": []any{"self"}}, table); diff != "" {
		t.Errorf("GET table (-want +got):\n%s", diff)
	}
	var h map[string]any
	if len(held) == 1 {
		h, _ = held[0].(map[string]any)
	}
	if h == nil || h["lock"] != "nightly" || !cmp.Equal(h["holders"], []any{"self"}) || h["deadline"] == nil {
		t.Errorf("GET table: held %v, want nightly held by self with a deadline", held)
	}
	r = doString(t, s, "GET", "/v1/locks/jobs/nightly", "")
	if got := decode[lockBody](t, r); !cmp.Equal(got.Holders, []string{"self"}) {
		t.Errorf("GET lock: %+v, want held by self", got)
	}
	if r := doString(t, s, "POST", "/v1/locks/jobs/nightly?timeout=20ms", ""); r.code != http.StatusConflict || !strings.Contains(r.body, "held by [self]") {
		t.Errorf("take with a timeout while held: %d %s, want 409 held by [self]", r.code, r.body)
	}

	// A waiting take is granted when the holder releases.
	waited := make(chan response, 1)
	go func() { waited <- doString(t, s, "POST", "/v1/locks/jobs/nightly?timeout=30s", "") }()
	wantOK(t, doString(t, s, "DELETE", "/v1/locks/jobs/nightly", ""), "release")
	wantOK(t, <-waited, "waiting take")
	wantOK(t, doString(t, s, "DELETE", "/v1/locks/jobs/nightly", ""), "release again")
	r = doString(t, s, "DELETE", "/v1/locks/jobs/nightly", "")
	if r.code != http.StatusForbidden {
		t.Errorf("release of a free lock: %d %s, want 403", r.code, r.body)
	}
	r = doString(t, s, "GET", "/v1/locks/jobs/nightly", "")
	if got := decode[lockBody](t, r); len(got.Holders) != 0 || got.Deadline != nil {
		t.Errorf("GET free lock: %+v, want no holders and no deadline", got)
	}
}

func TestStatus(t *testing.T) {
	f, s := newServer(t, nil)
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `1`), "PUT")
	r := doString(t, s, "GET", "/v1/status", "")
	wantOK(t, r, "status")
	var got node.Status
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.Status(), got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(nil, nil); !errors.Is(err, ErrNilNode) {
		t.Errorf("New(nil) = %v, want ErrNilNode", err)
	}
	if _, err := New(newFakeNode(t), &Config{WatchBuffer: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with WatchBuffer -1 = %v, want ErrInvalidConfig", err)
	}
}

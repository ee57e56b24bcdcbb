package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDocRoutes patches a JSON document with each operator, in dotted
// paths and JSON Pointers, and reads it whole and by path.
func TestDocRoutes(t *testing.T) {
	_, s := newServer(t, nil)
	steps := []struct {
		name, method, path, body string
		want                     string // the JSON answer
	}{
		{"create", "PATCH", "/v1/docs/store",
			`{"$set": {"users.ada.admin": true, "users.ada.name": "Ada", "elements": [1, 2, 3]}, "$inc": {"users.ada.logins": 1}, "$push": {"log": "ada joined"}}`,
			`{"ops":5,"values":{"elements":[1,2,3],"log":["ada joined"],"users.ada.admin":true,"users.ada.logins":1,"users.ada.name":"Ada"}}`},
		{"read whole", "GET", "/v1/docs/store", "",
			`{"elements":[1,2,3],"log":["ada joined"],"users":{"ada":{"admin":true,"logins":1,"name":"Ada"}}}`},
		{"read a pointer", "GET", "/v1/docs/store?path=/users/ada", "",
			`{"path":"/users/ada","value":{"admin":true,"logins":1,"name":"Ada"}}`},
		{"read a dotted path", "GET", "/v1/docs/store?path=users.ada.admin", "",
			`{"path":"users.ada.admin","value":true}`},
		{"read an array element", "GET", "/v1/docs/store?path=/elements/1", "",
			`{"path":"/elements/1","value":2}`},
		{"read the root", "GET", "/v1/docs/store?path=", "",
			`{"elements":[1,2,3],"log":["ada joined"],"users":{"ada":{"admin":true,"logins":1,"name":"Ada"}}}`},
		{"inc, unset, push each, pull in", "PATCH", "/v1/docs/store",
			`{"$inc": {"users.ada.logins": -2.5}, "$unset": {"users.ada.name": ""}, "$push": {"log": {"$each": ["a", {"k": 1}]}}, "$pull": {"elements": {"$in": [1, 3, 7]}}}`,
			`{"ops":6,"values":{"elements":[2],"log":["ada joined","a",{"k":1}],"users.ada.logins":-1.5}}`},
		{"pull a value, push an object as a value", "PATCH", "/v1/docs/store",
			`{"$pull": {"log": {"k": 1}}, "$push": {"queue": {"job": 1}}}`,
			`{"ops":2,"values":{"log":["ada joined","a"],"queue":[{"job":1}]}}`},
		{"a member with a dot, by pointer", "PATCH", "/v1/docs/store",
			`{"$set": {"/hosts/example.com~1a": "up"}}`,
			`{"ops":1,"values":{"/hosts/example.com~1a":"up"}}`},
		{"read it", "GET", "/v1/docs/store?path=%2Fhosts%2Fexample.com~1a", "",
			`{"path":"/hosts/example.com~1a","value":"up"}`},
		{"read whole again", "GET", "/v1/docs/store", "",
			`{"elements":[2],"hosts":{"example.com/a":"up"},"log":["ada joined","a"],"queue":[{"job":1}],"users":{"ada":{"admin":true,"logins":-1.5}}}`},
	}
	for _, st := range steps {
		r := doString(t, s, st.method, st.path, st.body)
		wantOK(t, r, st.name)
		if diff := cmp.Diff(st.want+"\n", r.body); diff != "" {
			t.Errorf("%s: %s %s (-want +got):\n%s", st.name, st.method, st.path, diff)
		}
	}
}

// TestDocBadRequests sends document requests that must fail with a clear
// 4xx and a JSON error, and checks that they change nothing: a patch is
// applied whole or not at all.
func TestDocBadRequests(t *testing.T) {
	f, s := newServer(t, &Config{MaxBodySize: 1 << 10})
	wantOK(t, doString(t, s, "PATCH", "/v1/docs/d", `{"$set": {"s": "text", "l": [1], "o.k": 1}}`), "setup PATCH")
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `"v"`), "setup PUT")

	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string // a substring of the error message
	}{
		{"empty body", "PATCH", "/v1/docs/d", ``, 400, "empty body"},
		{"malformed JSON", "PATCH", "/v1/docs/d", `{"$set": {"a": }}`, 400, "malformed JSON"},
		{"malformed JSON, new document", "PATCH", "/v1/docs/fresh", `{"$set"`, 400, "malformed JSON"},
		{"trailing data", "PATCH", "/v1/docs/d", `{"$set": {"a": 1}} {}`, 400, "data after the value"},
		{"an array", "PATCH", "/v1/docs/d", `[{"$set": {"a": 1}}]`, 400, "body must be an object of update operators"},
		{"a replacement document", "PATCH", "/v1/docs/d", `{"a": 1}`, 400, `"a" is not an update operator: a replacement document is not supported`},
		{"an unknown operator", "PATCH", "/v1/docs/d", `{"$rename": {"a": "b"}}`, 400, "update operator $rename is not supported"},
		{"an operator twice", "PATCH", "/v1/docs/d", `{"$set": {"a": 1}, "$set": {"b": 1}}`, 400, "operator $set appears twice"},
		{"a path twice", "PATCH", "/v1/docs/d", `{"$set": {"a": 1, "a": 2}}`, 400, `$set: path "a" appears twice`},
		{"an operator of a number", "PATCH", "/v1/docs/d", `{"$set": 1}`, 400, "$set takes an object of paths, not a number"},
		{"no operations", "PATCH", "/v1/docs/d", `{}`, 400, "the patch has no operations"},
		{"no paths", "PATCH", "/v1/docs/d", `{"$set": {}}`, 400, "the patch has no operations"},
		{"same path twice", "PATCH", "/v1/docs/d", `{"$set": {"n": 1}, "$inc": {"n": 1}}`, 400, `"n" ($set) and "n" ($inc) conflict`},
		{"a path and one below", "PATCH", "/v1/docs/d", `{"$set": {"u": {}}, "$inc": {"u.n": 1}}`, 400, `"u" ($set) and "u.n" ($inc) conflict`},
		{"a pointer and a dotted path below", "PATCH", "/v1/docs/d", `{"$unset": {"/u": 1}, "$set": {"u.a.b": 1}}`, 400, `"/u" ($unset) and "u.a.b" ($set) conflict`},
		{"empty field name", "PATCH", "/v1/docs/d", `{"$set": {"a..b": 1}}`, 400, `path "a..b" has an empty field name`},
		{"empty path", "PATCH", "/v1/docs/d", `{"$set": {"": 1}}`, 400, "root must be an object"},
		{"positional operator", "PATCH", "/v1/docs/d", `{"$set": {"l.$.x": 1}}`, 400, "positional operators) are not supported"},
		{"malformed pointer", "PATCH", "/v1/docs/d", `{"$set": {"/a~2": 1}}`, 400, "invalid path"},
		{"path too long", "GET", "/v1/docs/d?path=" + strings.Repeat("a", MaxKeySize+1), "", 400, "path of 1025 bytes, over 1024"},
		{"inc of a string value", "PATCH", "/v1/docs/d", `{"$inc": {"n": "1"}}`, 400, `$inc of "n": "1" is not a number`},
		{"inc not exact", "PATCH", "/v1/docs/d", `{"$inc": {"n": 9007199254740993}}`, 400, "is not exact as a float64"},
		{"integer beyond int64", "PATCH", "/v1/docs/d", `{"$set": {"n": 9223372036854775808}}`, 400, "beyond 64 bits"},
		{"push each of a number", "PATCH", "/v1/docs/d", `{"$push": {"l": {"$each": 1}}}`, 400, `$push takes a value or {"$each": [values]}`},
		{"push with slice", "PATCH", "/v1/docs/d", `{"$push": {"l": {"$each": [1], "$slice": 2}}}`, 400, "$slice, $sort and $position are not supported"},
		{"pull a condition", "PATCH", "/v1/docs/d", `{"$pull": {"l": {"$gt": 1}}}`, 400, "conditions are not supported"},
		{"too deep", "PATCH", "/v1/docs/d", `{"$set": {"a": ` + nested(30) + `}}`, 400, "too deep"},
		{"too deep, new document", "PATCH", "/v1/docs/fresh", `{"$set": {"a": ` + nested(30) + `}}`, 400, "too deep"},
		{"write through an array element", "PATCH", "/v1/docs/d", `{"$set": {"l.0.x": 1}}`, 400, "invalid path"},
		{"inc of a string, after a set", "PATCH", "/v1/docs/d", `{"$set": {"x": 1}, "$inc": {"s": 1}}`, 409, "not a number"},
		{"push to a string", "PATCH", "/v1/docs/d", `{"$push": {"s": 1}, "$set": {"y": 1}}`, 409, "not an array"},
		{"pull from an object", "PATCH", "/v1/docs/d", `{"$pull": {"o": 1}}`, 409, "not an array"},
		{"oversized body", "PATCH", "/v1/docs/d", `{"$set": {"a": ` + bigJSON(2<<10) + `}}`, 413, "request body over 1024 bytes"},
		{"oversized body, new document", "PATCH", "/v1/docs/fresh", `{"$set": {"a": ` + bigJSON(2<<10) + `}}`, 413, "over 1024 bytes"},
		{"oversized trailing data", "PATCH", "/v1/docs/d", `{"$set": {"a": 1}}` + strings.Repeat(" ", 2<<10), 413, "over 1024 bytes"},
		{"doc as model", "PUT", "/v1/models/d/keys/k", `1`, 409, "has another type"},
		{"model as doc", "PATCH", "/v1/docs/m", `{"$set": {"a": 1}}`, 409, "has another type"},
		{"read model as doc", "GET", "/v1/docs/m", "", 409, `"m" is a model, not a doc`},
		{"reserved document name", "PATCH", "/v1/docs/_catalog", `{"$set": {"a": 1}}`, 400, "document name"},
		{"unknown doc", "GET", "/v1/docs/nope", "", 404, `no document "nope"`},
		{"unknown doc, path", "GET", "/v1/docs/nope?path=/a", "", 404, `no document "nope"`},
		{"absent path", "GET", "/v1/docs/d?path=/users/ada", "", 404, `no value at "/users/ada" in "d"`},
		{"absent dotted path", "GET", "/v1/docs/d?path=o.k.z", "", 404, `no value at "o.k.z" in "d"`},
		{"path below a scalar", "GET", "/v1/docs/d?path=s.x", "", 404, "no value"},
		{"malformed pointer in a read", "GET", "/v1/docs/d?path=/a~", "", 400, "invalid path"},
		{"path not UTF-8", "GET", "/v1/docs/d?path=%FF", "", 400, "not UTF-8"},
		{"watch from an id of another version", "GET", "/v1/docs/d/watch?since=Ag", "", 400, "not a watch position"},
		{"watch a malformed path", "GET", "/v1/docs/d/watch?path=a..b", "", 400, "empty field name"},
		{"wrong method", "PUT", "/v1/docs/d", `{}`, 405, "method PUT not allowed"},
		{"wrong method on a watch", "PATCH", "/v1/docs/d/watch", `{}`, 405, "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.state()
			r := doString(t, s, tt.method, tt.path, tt.body)
			if r.code != tt.code {
				t.Errorf("%s %s %s: status %d, want %d; body %s", tt.method, tt.path, tt.body, r.code, tt.code, r.body)
			}
			var body struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == "" {
				t.Errorf("body %q is not a JSON error: %v", r.body, err)
			}
			if !strings.Contains(body.Error, tt.msg) {
				t.Errorf("error %q lacks %q", body.Error, tt.msg)
			}
			if diff := cmp.Diff(before, f.state()); diff != "" {
				t.Errorf("a failed request changed the node (-before +after):\n%s", diff)
			}
		})
	}
}

// TestDocTooManyOps checks that a patch over doc.MaxOps ops, which the
// body limit lets through, is refused whole.
func TestDocTooManyOps(t *testing.T) {
	f, s := newServer(t, nil)
	var b strings.Builder
	b.WriteString(`{"$set": {`)
	for i := range 1025 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d": 1`, i)
	}
	b.WriteString(`}}`)
	r := doString(t, s, "PATCH", "/v1/docs/d", b.String())
	if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "patch too large") {
		t.Errorf("a patch of 1025 ops: %d %s, want 413 patch too large", r.code, r.body)
	}
	if st := f.state(); st != "" {
		t.Errorf("a refused patch created a document:\n%s", st)
	}
}

// TestWatchDoc watches a path of a document: changes at and below it
// arrive as "change" events with their old and new values, changes
// elsewhere do not.
func TestWatchDoc(t *testing.T) {
	f, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	wantOK(t, doString(t, s, "PATCH", "/v1/docs/store", `{"$set": {"users.ada.admin": true}}`), "PATCH before")

	r, cancel := openWatch(t, hs.URL+"/v1/docs/store/watch?path=users.ada")
	waitWatchers(t, s, 1)
	wantOK(t, doString(t, s, "PATCH", "/v1/docs/store", `{"$set": {"users.grace.admin": true}}`), "PATCH elsewhere")
	wantOK(t, doString(t, s, "PATCH", "/v1/docs/store", `{"$set": {"users.ada.admin": false}, "$inc": {"users.ada.logins": 2}}`), "PATCH ada")
	wantOK(t, doString(t, s, "PATCH", "/v1/docs/store", `{"$unset": {"users": 1}}`), "PATCH unset")
	var got []sseEvent
	for range 3 {
		ev, ok := r.next()
		if !ok {
			t.Fatal("stream ended early")
		}
		delete(ev.Data, "timestamp")
		got = append(got, ev)
	}
	d, err := f.Doc("store")
	if err != nil {
		t.Fatal(err)
	}
	src := d.Source()
	want := []sseEvent{
		{"change", map[string]any{"path": "/users/ada/admin", "value": false, "old": true, "source": src, "local": true}},
		{"change", map[string]any{"path": "/users/ada/logins", "value": 2.0, "old": nil, "source": src, "local": true}},
		// The unset of /users removes ada with it; grace is not watched.
		{"change", map[string]any{"path": "/users", "value": nil, "old": map[string]any{
			"ada": map[string]any{"admin": false, "logins": 2.0}, "grace": map[string]any{"admin": true}},
			"deleted": true, "source": src, "local": true}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	cancel()
	waitWatchers(t, s, 0)
}

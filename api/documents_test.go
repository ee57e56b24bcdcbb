package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scuttle-go/scuttle/node"
)

// TestDocumentLifecycleRoutes checks DELETE /v1/documents/{name} and the
// cap against a real node: a deleted document is gone (404 to reads), its
// name starts empty when written again; unknown names are 404, lock
// tables 409; a write past MaxDocuments is 409 naming the cap and creates
// nothing.
func TestDocumentLifecycleRoutes(t *testing.T) {
	n, err := node.New(&node.Config{ID: "n1", BindAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", MaxDocuments: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s, err := New(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/old", `1`), "PUT m")
	wantOK(t, doString(t, s, "POST", "/v1/locks/jobs/nightly", ""), "POST lock")
	r := doString(t, s, "PUT", "/v1/models/third/keys/k", `1`)
	if r.code != http.StatusConflict || !strings.Contains(r.body, "the cap is 2") {
		t.Fatalf("a third document: %d %s, want 409 naming the cap", r.code, r.body)
	}
	if r := doString(t, s, "GET", "/v1/models/third", ""); r.code != http.StatusNotFound {
		t.Fatalf("GET the refused document: %d %s, want 404", r.code, r.body)
	}

	r = doString(t, s, "DELETE", "/v1/documents/m", "")
	wantOK(t, r, "DELETE m")
	if got := decode[map[string]any](t, r); got["name"] != "m" || got["type"] != "model" || got["deleted"] != true {
		t.Errorf("DELETE m answered %v", got)
	}
	if r := doString(t, s, "GET", "/v1/models/m", ""); r.code != http.StatusNotFound {
		t.Fatalf("GET a deleted model: %d %s, want 404", r.code, r.body)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/v1/documents/m", http.StatusNotFound},
		{"/v1/documents/never", http.StatusNotFound},
		{"/v1/documents/jobs", http.StatusConflict},
		{"/v1/documents/_catalog", http.StatusBadRequest},
	} {
		if r := doString(t, s, "DELETE", c.path, ""); r.code != c.code || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("DELETE %s: %d %s, want %d with a JSON error", c.path, r.code, r.body, c.code)
		}
	}
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/new", `2`), "PUT m again")
	got := decode[map[string]any](t, doString(t, s, "GET", "/v1/models/m", ""))
	if len(got) != 1 || got["new"] == nil {
		t.Errorf("m written again holds %v, want only the new key", got)
	}
}

// TestDeleteRouteWithoutDeleter checks the answer of a Node that cannot
// delete.
func TestDeleteRouteWithoutDeleter(t *testing.T) {
	_, s := newServer(t, nil)
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `1`), "PUT")
	if r := doString(t, s, "DELETE", "/v1/documents/m", ""); r.code != http.StatusNotImplemented {
		t.Errorf("DELETE without a Deleter: %d %s, want 501", r.code, r.body)
	}
}

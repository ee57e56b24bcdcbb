package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/lock"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// fakeNode is a Node of one replica, "self", holding documents in memory
// with package node's rules for names and types.
type fakeNode struct {
	t      *testing.T
	mu     sync.Mutex
	docs   map[string]scuttlebutt.Document
	kinds  map[string]string
	status node.Status
	// lockNow, if set, is the clock of the lock tables (their leases).
	lockNow func() time.Time
}

func newFakeNode(t *testing.T) *fakeNode {
	f := &fakeNode{t: t, docs: map[string]scuttlebutt.Document{}, kinds: map[string]string{}}
	f.status = node.Status{
		ID: "self", Addr: "127.0.0.1:7947", GossipAddr: "127.0.0.1:7946",
		Members: []node.Member{
			{ID: "peer", State: node.Alive, Addr: "127.0.0.2:7947", GossipAddr: "127.0.0.2:7946", Since: time.Unix(1700000000, 0).UTC()},
			{ID: "self", State: node.Alive, Addr: "127.0.0.1:7947", GossipAddr: "127.0.0.1:7946", Since: time.Unix(1700000000, 0).UTC()},
			{ID: `we"ird`, State: node.Failed, Since: time.Unix(1700000000, 0).UTC()},
		},
		Links:    []node.LinkStatus{{Peer: "peer", Remote: "127.0.0.2:50000", Dialed: true, Since: time.Unix(1700000001, 0).UTC(), BytesIn: 1234, BytesOut: 5678}},
		Counters: node.Counters{Dials: 3, DialFailures: 1, Accepted: 2, AuthFailures: 1},
	}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, d := range f.docs {
			if c, ok := d.(interface{ Close() error }); ok {
				c.Close()
			}
		}
	})
	return f
}

func (f *fakeNode) get(name, kind string, make func() (scuttlebutt.Document, error)) (scuttlebutt.Document, error) {
	if err := node.CheckName(name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if k, ok := f.kinds[name]; ok {
		if k != kind {
			return nil, fmt.Errorf("%w: %q is a %s, not a %s", node.ErrDocumentType, name, k, kind)
		}
		return f.docs[name], nil
	}
	d, err := make()
	if err != nil {
		return nil, err
	}
	f.docs[name], f.kinds[name] = d, kind
	return d, nil
}

func (f *fakeNode) Model(name string) (*model.Model, error) {
	d, err := f.get(name, "model", func() (scuttlebutt.Document, error) { return model.New("self", nil) })
	if err != nil {
		return nil, err
	}
	return d.(*model.Model), nil
}

func (f *fakeNode) Emitter(name string) (*emitter.Emitter, error) {
	d, err := f.get(name, "emitter", func() (scuttlebutt.Document, error) { return emitter.New("self", nil) })
	if err != nil {
		return nil, err
	}
	return d.(*emitter.Emitter), nil
}

func (f *fakeNode) Locks(name string) (*lock.Table, error) {
	d, err := f.get(name, "lock", func() (scuttlebutt.Document, error) {
		return lock.New("self", &lock.Config{Members: []string{"self"}, Now: f.lockNow})
	})
	if err != nil {
		return nil, err
	}
	return d.(*lock.Table), nil
}

func (f *fakeNode) Doc(name string) (*doc.Doc, error) {
	d, err := f.get(name, "doc", func() (scuttlebutt.Document, error) { return doc.New("self", nil) })
	if err != nil {
		return nil, err
	}
	return d.(*doc.Doc), nil
}

func (f *fakeNode) Documents() []node.DocumentInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []node.DocumentInfo
	for name, d := range f.docs {
		out = append(out, node.DocumentInfo{Name: name, Type: f.kinds[name], Clock: d.Base().Clock()})
	}
	slices.SortFunc(out, func(a, b node.DocumentInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fakeNode) Status() node.Status {
	s := f.status
	s.Documents = f.Documents()
	return s
}

// state is everything a request could change: the documents, their types
// and clocks, and each model's and doc's contents.
func (f *fakeNode) state() string {
	var b strings.Builder
	for _, d := range f.Documents() {
		fmt.Fprintf(&b, "%s %s %s", d.Name, d.Type, d.Clock)
		switch d.Type {
		case "model":
			m, _ := f.Model(d.Name)
			js, _ := json.Marshal(m.Snapshot())
			fmt.Fprintf(&b, " %s", js)
		case "doc":
			dd, _ := f.Doc(d.Name)
			js, _ := json.Marshal(dd.Snapshot())
			fmt.Fprintf(&b, " %s", js)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// newServer returns a fake node and a Server for it.
func newServer(t *testing.T, cfg *Config) (*fakeNode, *Server) {
	t.Helper()
	f := newFakeNode(t)
	s, err := New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return f, s
}

// response is what a request got.
type response struct {
	code   int
	header http.Header
	body   string
}

// do serves one request with the handler directly.
func do(t *testing.T, h http.Handler, method, path string, body io.Reader) response {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, body)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

func doString(t *testing.T, h http.Handler, method, path, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return do(t, h, method, path, r)
}

// decode unmarshals r's body into a value of type T, failing t if it is
// not JSON of that shape.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body %q is not a %T: %v", r.body, v, err)
	}
	return v
}

// wantOK fails t unless r is a 200 with a JSON body.
func wantOK(t *testing.T, r response, what string) {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %s", what, r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
}

// bigJSON returns a JSON string value of about n bytes.
func bigJSON(n int) string {
	return `"` + strings.Repeat("x", n) + `"`
}

// nested returns a JSON value of depth n: [[[...]]].
func nested(n int) string {
	return strings.Repeat("[", n) + strings.Repeat("]", n)
}

package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/vclock"
)

// This file serves JSON documents (package doc): GET of the whole document
// or of a path, PATCH with MongoDB's update operators, and a watch of a
// path.

func (s *Server) existingDoc(r *http.Request) (*doc.Doc, error) {
	return lookup(s, r, typeDoc, s.n.Doc)
}

// docPath is a path of a document as the API takes it, and its segments.
type docPath struct {
	raw  string   // as the client wrote it
	segs []string // unescaped, for doc.Pointer
}

// pointer returns p as a JSON Pointer, as package doc takes paths.
func (p docPath) pointer() string { return doc.Pointer(p.segs...) }

// parsePath reads a path as the API takes them: a JSON Pointer if it is
// empty or starts with "/" ("/users/ada", "" the root), else MongoDB's
// dotted form ("users.ada"), whose field names cannot be empty or start
// with "$" (MongoDB's positional operators are not supported), and which
// cannot name a member with a "." in it: use a pointer for those. A path
// is UTF-8 and at most MaxKeySize bytes.
func parsePath(p string) (docPath, error) {
	switch {
	case len(p) > MaxKeySize:
		return docPath{}, errorf(http.StatusBadRequest, "path of %d bytes, over %d", len(p), MaxKeySize)
	case !utf8.ValidString(p):
		return docPath{}, errorf(http.StatusBadRequest, "path %q is not UTF-8", p)
	case p == "" || p[0] == '/':
		segs, err := doc.ParsePointer(p)
		if err != nil {
			return docPath{}, errorf(http.StatusBadRequest, "path %q: %v", p, err)
		}
		return docPath{p, segs}, nil
	}
	segs := strings.Split(p, ".")
	for _, seg := range segs {
		switch {
		case seg == "":
			return docPath{}, errorf(http.StatusBadRequest, "path %q has an empty field name (a dotted path is field.field...; a JSON Pointer starts with /)", p)
		case seg[0] == '$':
			return docPath{}, errorf(http.StatusBadRequest, "path %q: field names starting with $ (MongoDB's positional operators) are not supported", p)
		}
	}
	return docPath{p, segs}, nil
}

// queryPath returns the path of r's "path" parameter; "" (the root) if it
// has none.
func queryPath(r *http.Request) (docPath, error) {
	return parsePath(r.URL.Query().Get("path"))
}

func (s *Server) getDoc(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	d, err := s.existingDoc(r)
	if err != nil {
		return err
	}
	if p.raw == "" {
		writeJSON(w, http.StatusOK, d.Snapshot())
		return nil
	}
	v, ok := d.Get(p.pointer())
	if !ok {
		return errorf(http.StatusNotFound, "no value at %q in %q", p.raw, r.PathValue("name"))
	}
	writeJSON(w, http.StatusOK, pathBody{p.raw, v})
	return nil
}

// pathBody is the value at one path, as GET with ?path= answers.
type pathBody struct {
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// patchBody is the answer to PATCH: how many ops the patch had, and the
// value at each path it wrote, read right after it was applied, by the
// path as the request wrote it. A path that holds nothing after the patch
// (an $unset) is left out.
type patchBody struct {
	Ops    int            `json:"ops"`
	Values map[string]any `json:"values"`
}

func (s *Server) patchDoc(w http.ResponseWriter, r *http.Request) error {
	name, err := docName(r)
	if err != nil {
		return err
	}
	entries, err := s.readPatch(w, r)
	if err != nil {
		return err
	}
	ops, err := translatePatch(entries)
	if err != nil {
		return err
	}
	err = s.precheck(name, func() error {
		d, err := doc.New(scratchID, nil)
		if err != nil {
			return err
		}
		return d.Patch(ops...)
	})
	if err != nil {
		return err
	}
	d, err := s.n.Doc(name)
	if err != nil {
		return err
	}
	if err := d.Patch(ops...); err != nil {
		return err
	}
	out := patchBody{Ops: len(ops), Values: make(map[string]any, len(entries))}
	for _, e := range entries {
		if v, ok := d.Get(e.path.pointer()); ok {
			out.Values[e.path.raw] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Update operators PATCH takes, as MongoDB names them.
const (
	opSet   = "$set"
	opUnset = "$unset"
	opInc   = "$inc"
	opPush  = "$push"
	opPull  = "$pull"
)

var patchOperators = []string{opSet, opUnset, opInc, opPush, opPull}

// patchEntry is one field of one operator of a PATCH body: {"$inc":
// {"users.ada.logins": 1}} is {"$inc", users.ada.logins, 1}.
type patchEntry struct {
	op    string
	path  docPath
	value any
}

// readPatch reads a PATCH body, at most Config.MaxBodySize bytes: one JSON
// object of update operators, each an object of paths and values. It
// keeps the order of the body (which matters to the order of changes
// observers see, not to the result: see translatePatch) and refuses a key
// given twice, which a map would silently keep the last of.
func (s *Server) readPatch(w http.ResponseWriter, r *http.Request) ([]patchEntry, error) {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodySize)
	dec := json.NewDecoder(body)
	dec.UseNumber()
	want := func(d json.Delim, what string) error {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(dec, err)
		}
		if tok != d {
			return errorf(http.StatusBadRequest, "%s, not %v", what, describeToken(tok))
		}
		return nil
	}
	if err := want('{', `body must be an object of update operators like {"$set": {"a.b": 1}}`); err != nil {
		return nil, err
	}
	var entries []patchEntry
	seenOps := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(dec, err)
		}
		op := tok.(string) // an object's keys are strings
		switch {
		case seenOps[op]:
			return nil, errorf(http.StatusBadRequest, "operator %s appears twice", op)
		case !strings.HasPrefix(op, "$"):
			return nil, errorf(http.StatusBadRequest, "%q is not an update operator: a replacement document is not supported; use {%q: {...}} (operators: %s)", op, opSet, strings.Join(patchOperators, ", "))
		case !slices.Contains(patchOperators, op):
			return nil, errorf(http.StatusBadRequest, "update operator %s is not supported (operators: %s)", op, strings.Join(patchOperators, ", "))
		}
		seenOps[op] = true
		if err := want('{', fmt.Sprintf("%s takes an object of paths", op)); err != nil {
			return nil, err
		}
		seenPaths := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, jsonError(dec, err)
			}
			raw := tok.(string)
			if seenPaths[raw] {
				return nil, errorf(http.StatusBadRequest, "%s: path %q appears twice", op, raw)
			}
			seenPaths[raw] = true
			p, err := parsePath(raw)
			if err != nil {
				return nil, err
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, jsonError(dec, err)
			}
			if v, err = numbers(v); err != nil {
				return nil, err
			}
			entries = append(entries, patchEntry{op, p, v})
		}
		if _, err := dec.Token(); err != nil { // the operator's }
			return nil, jsonError(dec, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the body's }
		return nil, jsonError(dec, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "malformed JSON: data after the value")
	}
	if len(entries) == 0 {
		return nil, errorf(http.StatusBadRequest, "the patch has no operations")
	}
	return entries, nil
}

// jsonError maps an error of dec, reading a body: the size limit stays
// itself (413), an empty body and malformed JSON are 400.
func jsonError(dec *json.Decoder, err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF) && dec.InputOffset() == 0:
		return errorf(http.StatusBadRequest, "empty body: want a JSON value")
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "malformed JSON: the body ends inside the value")
	}
	return errorf(http.StatusBadRequest, "malformed JSON: %v", err)
}

// describeToken names a JSON token for an error: "an array", "a string".
func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return string(t)
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// translatePatch turns the entries of a PATCH body into the ops of one
// doc.Patch, in order:
//
//	{"$set":   {"a.b": v}}                  Set("/a/b", v)
//	{"$unset": {"a.b": ""}}                 Unset("/a/b"); the value is ignored, as in MongoDB
//	{"$inc":   {"a.n": 2}}                  Inc("/a/n", 2); a number, negative to subtract
//	{"$push":  {"a.l": v}}                  Push("/a/l", v)
//	{"$push":  {"a.l": {"$each": [v, w]}}}  Push("/a/l", v, w)
//	{"$pull":  {"a.l": v}}                  Pull("/a/l", v)
//	{"$pull":  {"a.l": {"$in": [v, w]}}}    Pull("/a/l", v), Pull("/a/l", w)
//
// As in MongoDB, no two entries may write the same path, or a path and
// one below it ({"$set": {"a": {}}, "$inc": {"a.n": 1}} is refused): so
// the result does not depend on the order of the body's keys, which JSON
// encoders do not all keep.
func translatePatch(entries []patchEntry) ([]doc.Op, error) {
	if err := checkConflicts(entries); err != nil {
		return nil, err
	}
	var ops []doc.Op
	for _, e := range entries {
		p := e.path.pointer()
		switch e.op {
		case opSet:
			ops = append(ops, doc.Set(p, e.value))
		case opUnset:
			ops = append(ops, doc.Unset(p))
		case opInc:
			var n float64
			switch x := e.value.(type) {
			case int64:
				if n = float64(x); n >= 1<<63 || int64(n) != x {
					return nil, errorf(http.StatusBadRequest, "%s of %q: %d is not exact as a float64", e.op, e.path.raw, x)
				}
			case float64:
				n = x
			default:
				return nil, errorf(http.StatusBadRequest, "%s of %q: %s is not a number", e.op, e.path.raw, jsonText(e.value))
			}
			if math.IsInf(n, 0) || math.IsNaN(n) {
				return nil, errorf(http.StatusBadRequest, "%s of %q: not a finite number", e.op, e.path.raw)
			}
			ops = append(ops, doc.Inc(p, n))
		case opPush:
			values, err := modifier(e, "$each", "$push takes a value or {\"$each\": [values]}; $slice, $sort and $position are not supported")
			if err != nil {
				return nil, err
			}
			ops = append(ops, doc.Push(p, values...))
		case opPull:
			values, err := modifier(e, "$in", "$pull takes a value or {\"$in\": [values]}; conditions are not supported")
			if err != nil {
				return nil, err
			}
			for _, v := range values {
				ops = append(ops, doc.Pull(p, v))
			}
		}
	}
	return ops, nil
}

// modifier returns the values of e: e's value alone, or the array of
// {"<name>": [...]} if the value is an object with a key starting with $,
// which must then be that object alone.
func modifier(e patchEntry, name, usage string) ([]any, error) {
	obj, ok := e.value.(map[string]any)
	if !ok || !slices.ContainsFunc(mapKeys(obj), func(k string) bool { return strings.HasPrefix(k, "$") }) {
		return []any{e.value}, nil
	}
	arr, ok := obj[name].([]any)
	if len(obj) != 1 || !ok {
		return nil, errorf(http.StatusBadRequest, "%s of %q: %s", e.op, e.path.raw, usage)
	}
	return arr, nil
}

func mapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// checkConflicts refuses two entries whose paths are equal or one below
// the other. Sorted segment by segment, a path and one below it are
// neighbours, or are separated only by paths below the first.
func checkConflicts(entries []patchEntry) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b patchEntry) int { return slices.Compare(a.path.segs, b.path.segs) })
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if len(a.path.segs) <= len(b.path.segs) && slices.Equal(a.path.segs, b.path.segs[:len(a.path.segs)]) {
			return errorf(http.StatusBadRequest, "%q (%s) and %q (%s) conflict: one patch cannot write a path and the same path or one below it, as in MongoDB; send two patches",
				a.path.raw, a.op, b.path.raw, b.op)
		}
	}
	return nil
}

// jsonText is v as JSON, for an error message.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 64 {
		return string(b[:61]) + "..."
	}
	return string(b)
}

// docChangeBody is one change of a document as a watch stream sends it.
type docChangeBody struct {
	Path      string  `json:"path"`
	Value     any     `json:"value"`
	Old       any     `json:"old"`
	Deleted   bool    `json:"deleted,omitempty"`
	Source    string  `json:"source"`
	Timestamp float64 `json:"timestamp"`
	Local     bool    `json:"local"`
	// Resync marks the first event of a resumed watch when the document
	// changed meanwhile: Value is the value at the watched path now (Old,
	// Source and Timestamp are empty), standing for the changes missed.
	Resync bool `json:"resync,omitempty"`
}

func (s *Server) watchDoc(w http.ResponseWriter, r *http.Request) error {
	p, err := queryPath(r)
	if err != nil {
		return err
	}
	path := p.pointer()
	return s.watchDocument(w, r, typeDoc, func(name string) (watchFeed, error) {
		d, err := s.n.Doc(name)
		if err != nil {
			return watchFeed{}, err
		}
		return watchFeed{
			kind: "change",
			subscribe: func(push func(watchItem)) func() {
				return d.ObservePatches(path, func(cs []doc.Change) {
					g := make(group, len(cs))
					for i, c := range cs {
						g[i] = docChangeBody{c.Path, c.New, c.Old, c.Deleted, c.Source, float64(c.Timestamp), c.Local, false}
					}
					push(watchItem{cs[0].Source, cs[0].Timestamp, false, g}) // one patch: one position
				})
			},
			since: func(pos vclock.Clock) (items []watchItem, clock vclock.Clock) {
				d.WithClock(func(c vclock.Clock) {
					clock = c
					if pos == nil || !newer(c, pos) {
						return
					}
					// The changes one by one are not kept: the value at
					// path now stands for them.
					v, ok := d.Get(path)
					items = []watchItem{{body: docChangeBody{Path: path, Value: v, Deleted: !ok, Resync: true}}}
				})
				return items, clock
			},
		}, nil
	})
}

// newer reports whether c has seen an update that pos has not.
func newer(c, pos vclock.Clock) bool {
	for src, t := range c {
		if !pos.Covers(src, t) {
			return true
		}
	}
	return false
}

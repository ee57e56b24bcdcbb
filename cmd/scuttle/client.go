package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// The client commands talk to a node's HTTP API (package api).

// defaultAddr is the API address the client commands use without -addr:
// $SCUTTLE_ADDR, or serve's default.
func defaultAddr() string {
	if a := os.Getenv("SCUTTLE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:7948"
}

// requestTimeout bounds a client request that does not wait on purpose.
const requestTimeout = 30 * time.Second

// client is an HTTP client of one node's API.
type client struct {
	base  string // "http://host:port"
	hc    *http.Client
	token string // the bearer token, or ""
}

// addrFlag defines -addr, -token-file and -ca-file on fs and returns the
// client they make. The token is -token-file's content, else
// $SCUTTLE_TOKEN; the CA file is -ca-file, else $SCUTTLE_CA_FILE.
func addrFlag(fs *flag.FlagSet) func() (*client, error) {
	addr := fs.String("addr", defaultAddr(), "the node's HTTP API: host:port or a URL, https:// for an API with TLS ($SCUTTLE_ADDR)")
	tokenFile := fs.String("token-file", "", "file holding the API's bearer token, if it has one (else $SCUTTLE_TOKEN)")
	caFile := fs.String("ca-file", os.Getenv("SCUTTLE_CA_FILE"), "PEM CA certificates to verify an https:// API with, if not the system's ($SCUTTLE_CA_FILE)")
	return func() (*client, error) {
		base := *addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		u, err := url.Parse(base)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("-addr %q: want host:port or http://host:port", *addr)
		}
		c := &client{base: strings.TrimSuffix(u.String(), "/"), hc: &http.Client{}, token: strings.TrimSpace(os.Getenv("SCUTTLE_TOKEN"))}
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, fmt.Errorf("-token-file: %w", err)
			}
			if c.token = strings.TrimSpace(string(b)); c.token == "" {
				return nil, fmt.Errorf("-token-file %s is empty", *tokenFile)
			}
		}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return nil, fmt.Errorf("-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-ca-file %s holds no PEM certificate", *caFile)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			c.hc.Transport = tr
		}
		return c, nil
	}
}

// apiError is an error answer of the API.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.msg)
}

// apiPath joins escaped segments after the API's root.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// do sends a request and decodes a 200's JSON body into out (if not nil);
// any other status is an *apiError with the API's message.
func (c *client) do(ctx context.Context, method, p string, body []byte, out any) error {
	resp, err := c.send(ctx, method, p, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, p, err)
	}
	return nil
}

// send sends a request and returns the response if it is a 200.
func (c *client) send(ctx context.Context, method, p string, body []byte) (*http.Response, error) {
	return c.sendWith(ctx, method, p, body, nil)
}

// sendWith is send with headers of the caller's.
func (c *client) sendWith(ctx context.Context, method, p string, body []byte, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+p, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return nil, &apiError{resp.StatusCode, e.Error}
}

// jsonArg turns a command-line argument into a JSON value: the argument
// itself if it is JSON (42, true, "quoted", {"a":1}), else the argument as
// a JSON string. asString forces a string.
func jsonArg(s string, asString bool) json.RawMessage {
	if !asString && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

// arity is how many positional arguments a client command takes.
type arity struct {
	min, max int    // max < 0: no upper bound
	names    string // the arguments, for the error
}

func (a arity) check(args []string) error {
	if len(args) < a.min || (a.max >= 0 && len(args) > a.max) {
		return fmt.Errorf("want arguments %s, got %d", a.names, len(args))
	}
	return nil
}

// clientRun runs a client command once the preamble is done: c is the
// client of -addr, and ctx bounds the request.
type clientRun func(ctx context.Context, c *client, args []string, stdout io.Writer) error

// setupClient is setup for a client command: it defines -addr and cmd's
// flags on fs, and returns the function that checks the arguments against
// cmd.nargs (cmd.flagArgs[f] with the flag -f), makes the client, bounds
// ctx by requestTimeout unless cmd.waits, and then runs the command.
func (cmd *command) setupClient(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
	mk := addrFlag(fs)
	call := cmd.client(fs)
	return func(ctx context.Context, args []string, stdout io.Writer) error {
		want := cmd.nargs
		var set []string
		for _, name := range slices.Sorted(maps.Keys(cmd.flagArgs)) {
			if f := fs.Lookup(name); f != nil && f.Value.String() == "true" {
				set = append(set, "-"+name)
				want = cmd.flagArgs[name]
			}
		}
		if len(set) > 1 {
			return fmt.Errorf("%s exclude each other", strings.Join(set, " and "))
		}
		if err := want.check(args); err != nil {
			return err
		}
		c, err := mk()
		if err != nil {
			return err
		}
		if !cmd.waits {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, requestTimeout)
			defer cancel()
		}
		return call(ctx, c, args, stdout)
	}
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

var getCommand = &command{
	name:    "get",
	args:    "<model> [key] | -events <emitter> | -doc <doc> [path]",
	summary: "print a model or a key's value, an emitter's events (-events), or a JSON document or a path's value (-doc)",
	nargs:   arity{1, 2, "<model> [key]"},
	flagArgs: map[string]arity{
		"events": {1, 1, "<emitter>"},
		"doc":    {1, 2, "<doc> [path]"},
	},
	help: `A write reaches the other nodes within milliseconds, not at once: a get on
another node right after a set may answer 404. -wait 5s polls until the
document, key or path exists, for at most that long.`,
	waits: true, // bounded below: requestTimeout, plus -wait
	client: func(fs *flag.FlagSet) clientRun {
		events := fs.Bool("events", false, "print the retained events of an emitter, one JSON object a line")
		limit := fs.Int("limit", -1, "with -events: only the last n events")
		isDoc := fs.Bool("doc", false, "print a JSON document, or the value at a path of it: a JSON Pointer (/users/ada) or a dotted path (users.ada)")
		wait := fs.Duration("wait", 0, "poll until the document, key or path exists (404 until then), for at most this long; 0: ask once")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			if *wait < 0 {
				return fmt.Errorf("-wait %v is negative", *wait)
			}
			ctx, cancel := context.WithTimeout(ctx, requestTimeout+*wait)
			defer cancel()
			deadline := time.Now().Add(*wait)
			for pause := 10 * time.Millisecond; ; pause = min(2*pause, 250*time.Millisecond) {
				err := getOnce(ctx, c, args, stdout, *events, *isDoc, *limit)
				var ae *apiError
				left := time.Until(deadline)
				if !errors.As(err, &ae) || ae.code != http.StatusNotFound || left <= 0 {
					return err
				}
				select {
				case <-ctx.Done():
					return err
				case <-time.After(min(pause, left)):
				}
			}
		}
	},
}

// getOnce asks for what get prints, once.
func getOnce(ctx context.Context, c *client, args []string, stdout io.Writer, events, isDoc bool, limit int) error {
	switch {
	case events:
		p := "/v1/events" + apiPath(args[0])
		if limit >= 0 {
			p += fmt.Sprintf("?limit=%d", limit)
		}
		var evs []json.RawMessage
		if err := c.do(ctx, "GET", p, nil, &evs); err != nil {
			return err
		}
		for _, ev := range evs {
			fmt.Fprintf(stdout, "%s\n", ev)
		}
		return nil
	case isDoc && len(args) == 1:
		var d map[string]any
		if err := c.do(ctx, "GET", "/v1/docs"+apiPath(args[0]), nil, &d); err != nil {
			return err
		}
		return printJSON(stdout, d)
	case isDoc:
		var pv struct{ Value json.RawMessage }
		if err := c.do(ctx, "GET", "/v1/docs"+apiPath(args[0])+"?path="+url.QueryEscape(args[1]), nil, &pv); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s\n", pv.Value)
		return err
	case len(args) == 1:
		var m map[string]any
		if err := c.do(ctx, "GET", "/v1/models"+apiPath(args[0]), nil, &m); err != nil {
			return err
		}
		return printJSON(stdout, m)
	}
	var kv struct{ Value json.RawMessage }
	if err := c.do(ctx, "GET", "/v1/models"+apiPath(args[0], "keys", args[1]), nil, &kv); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s\n", kv.Value)
	return err
}

var setCommand = &command{
	name:    "set",
	args:    "<model> <key> <value>",
	summary: "set a key of a model (the value is JSON if it parses as JSON, else a string)",
	nargs:   arity{3, 3, "<model> <key> <value>"},
	client: func(fs *flag.FlagSet) clientRun {
		asString := fs.Bool("string", false, "take the value as a string even if it parses as JSON")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			return c.do(ctx, "PUT", "/v1/models"+apiPath(args[0], "keys", args[1]), jsonArg(args[2], *asString), nil)
		}
	},
}

var delCommand = &command{
	name:    "del",
	args:    "<model> <key> | -doc <name>",
	summary: "delete a key of a model, or a whole document of any type on every node (-doc)",
	nargs:   arity{2, 2, "<model> <key>"},
	flagArgs: map[string]arity{
		"doc": {1, 1, "<name>"},
	},
	help: `del -doc deletes the document called name, whatever its type (lock tables
excepted), on every node: each stops replicating it and removes its log.
The name can be used again; the new document starts empty everywhere.`,
	client: func(fs *flag.FlagSet) clientRun {
		isDoc := fs.Bool("doc", false, "delete the whole document called name, on every node")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			if *isDoc {
				return c.do(ctx, "DELETE", "/v1/documents"+apiPath(args[0]), nil, nil)
			}
			return c.do(ctx, "DELETE", "/v1/models"+apiPath(args[0], "keys", args[1]), nil, nil)
		}
	},
}

var patchCommand = &command{
	name:    "patch",
	args:    "<doc> <json>",
	summary: "apply MongoDB update operators ($set, $inc...) to a JSON document, atomically",
	help: `The patch is a JSON object of update operators, each an object of paths,
dotted as MongoDB writes them or JSON Pointers (/users/ada):

  scuttle patch store '{"$set": {"users.ada.admin": true}, "$inc": {"users.ada.logins": 1}}'
  {"users.ada.admin":true,"users.ada.logins":4}

  $set {"a.b": v}   $unset {"a.b": ""}   $inc {"a.n": 1}
  $push {"a.l": v} or {"a.l": {"$each": [v, w]}}   $pull {"a.l": v} or {"a.l": {"$in": [v, w]}}

Every replica applies all of a patch or none of it. A patch cannot write a
path twice, or a path and one below it. Concurrent increments all count;
see "go doc github.com/scuttle-go/scuttle/doc" for how patches merge.`,
	nargs: arity{2, 2, "<doc> <json>"},
	client: func(fs *flag.FlagSet) clientRun {
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			var v any
			if err := json.Unmarshal([]byte(args[1]), &v); err != nil {
				return fmt.Errorf("the patch is not JSON: %v", err)
			}
			var out struct{ Values json.RawMessage }
			if err := c.do(ctx, "PATCH", "/v1/docs"+apiPath(args[0]), []byte(args[1]), &out); err != nil {
				return err
			}
			_, err := fmt.Fprintf(stdout, "%s\n", out.Values)
			return err
		}
	},
}

var emitCommand = &command{
	name:    "emit",
	args:    "<emitter> <event> [arg...]",
	summary: "emit an event (each argument is JSON if it parses as JSON, else a string)",
	nargs:   arity{2, -1, "<emitter> <event> [arg...]"},
	client: func(fs *flag.FlagSet) clientRun {
		asString := fs.Bool("string", false, "take every argument as a string")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			body := struct {
				Event string            `json:"event"`
				Args  []json.RawMessage `json:"args"`
			}{Event: args[1], Args: []json.RawMessage{}}
			for _, a := range args[2:] {
				body.Args = append(body.Args, jsonArg(a, *asString))
			}
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			return c.do(ctx, "POST", "/v1/events"+apiPath(args[0]), b, nil)
		}
	},
}

var watchCommand = &command{
	name:    "watch",
	args:    "<model> | -events <emitter> | -doc <doc> [path]",
	summary: "print a model's changes, an emitter's events (-events) or a JSON document's changes (-doc) live, one JSON a line",
	nargs:   arity{1, 1, "<document>"},
	flagArgs: map[string]arity{
		"events": {1, 1, "<emitter>"},
		"doc":    {1, 2, "<doc> [path]"},
	},
	waits: true, // until interrupted
	client: func(fs *flag.FlagSet) clientRun {
		events := fs.Bool("events", false, "watch an emitter's events instead of a model's changes")
		isDoc := fs.Bool("doc", false, "watch a JSON document's changes at, below or above a path (the root if none): a JSON Pointer or a dotted path")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			p := "/v1/models" + apiPath(args[0], "watch")
			switch {
			case *events:
				p = "/v1/events" + apiPath(args[0], "watch")
			case *isDoc:
				p = "/v1/docs" + apiPath(args[0], "watch")
				if len(args) == 2 {
					p += "?path=" + url.QueryEscape(args[1])
				}
			}
			err := c.watch(ctx, p, func(data []byte) error {
				_, err := fmt.Fprintf(stdout, "%s\n", data)
				return err
			})
			if ctx.Err() != nil {
				return nil // interrupted: the normal end of a watch
			}
			return err
		}
	},
}

// errStreamEnded means the server ended a watch stream.
var errStreamEnded = errors.New("the server ended the stream")

// errWatchDeleted means the watched document was deleted: the watch
// stops rather than reconnect, which would wait for a document of the
// name to be created again.
var errWatchDeleted = errors.New("the document was deleted")

// Backoff of a watch between reconnections: from watchRetryMin, doubling
// up to watchRetryMax, back to the minimum once a stream has been read.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// watch reads the Server-Sent Events at p and calls fn with the data of
// each change or event, until ctx ends or fn fails. When the stream ends
// or the connection fails (the node restarted, the watcher fell behind),
// it reconnects with backoff and resumes from the last id received
// (Last-Event-ID), so that fn sees every change once: the server sends
// what the document holds beyond that id. The first connection must
// succeed, and a request the server refuses (4xx) is not retried. A
// stream that ends because the document was deleted ends the watch with
// errWatchDeleted.
func (c *client) watch(ctx context.Context, p string, fn func(data []byte) error) error {
	var lastID string
	wait := watchRetryMin
	for first := true; ; first = false {
		read, err := c.watchOnce(ctx, p, &lastID, fn)
		if fe, ok := err.(fnError); ok {
			return fe.err
		}
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			return err
		case first && !read, errors.As(err, &ae) && ae.code < 500, errors.Is(err, errWatchDeleted):
			return err
		}
		if read {
			wait = watchRetryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, watchRetryMax)
	}
}

// fnError is an error of watch's fn: it ends the watch.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// watchOnce reads one stream, from *lastID if set, keeping *lastID the
// last id received. read reports that the stream was opened.
func (c *client) watchOnce(ctx context.Context, p string, lastID *string, fn func(data []byte) error) (read bool, err error) {
	var hdr http.Header
	if *lastID != "" {
		hdr = http.Header{"Last-Event-Id": {*lastID}}
	}
	resp, err := c.sendWith(ctx, "GET", p, nil, hdr)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	// An event is dispatched at the blank line that ends it, as an
	// EventSource does: one cut short is neither shown nor its id kept.
	var typ, id string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			switch {
			case data == nil:
			case typ == "error" || typ == "close":
				var e struct {
					Error   string
					Deleted bool
				}
				json.Unmarshal(data, &e)
				if e.Deleted {
					return true, fmt.Errorf("%w (%s); watch again to wait for a new one", errWatchDeleted, e.Error)
				}
				return true, fmt.Errorf("%w: %s", errStreamEnded, e.Error)
			default:
				if err := fn(data); err != nil {
					return true, fnError{err}
				}
			}
			if id != "" { // an id alone is a position too
				*lastID = id
			}
			typ, id, data = "", "", nil
		case bytes.HasPrefix(line, []byte("id: ")):
			id = string(line[len("id: "):])
		case bytes.HasPrefix(line, []byte("event: ")):
			typ = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = slices.Clone(line[len("data: "):])
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return true, errStreamEnded
}

var statusCommand = &command{
	name:    "status",
	summary: "print a node's members, links, documents and traffic",
	nargs:   arity{0, 0, "none"},
	client: func(fs *flag.FlagSet) clientRun {
		asJSON := fs.Bool("json", false, "print the API's JSON as it is")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			var st node.Status
			if err := c.do(ctx, "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			if *asJSON {
				return printJSON(stdout, st)
			}
			printStatus(stdout, st)
			return nil
		}
	},
}

// printStatus writes st for people.
func printStatus(w io.Writer, st node.Status) {
	fmt.Fprintf(w, "node %s  replication %s  gossip %s\n", st.ID, st.Addr, st.GossipAddr)
	fmt.Fprintf(w, "\nmembers (%d):\n", len(st.Members))
	for _, m := range st.Members {
		fmt.Fprintf(w, "  %-16s %-8s replication %-21s gossip %-21s since %s\n", m.ID, m.State, m.Addr, m.GossipAddr, m.Since.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nlinks (%d):\n", len(st.Links))
	var in, out int64
	for _, l := range st.Links {
		dir := "accepted"
		if l.Dialed {
			dir = "dialed"
		}
		fmt.Fprintf(w, "  %-16s %-8s %-21s in %10d B  out %10d B  up since %s\n", l.Peer, dir, l.Remote, l.BytesIn, l.BytesOut, l.Since.Format(time.RFC3339))
		in += l.BytesIn
		out += l.BytesOut
	}
	fmt.Fprintf(w, "\ndocuments (%d):\n", len(st.Documents))
	for _, d := range st.Documents {
		fmt.Fprintf(w, "  %-16s %-8s %s\n", d.Name, d.Type, describeSources(d.Clock.Sources()))
	}
	fmt.Fprintf(w, "\nfunctions (%d):\n", len(st.Methods))
	for _, name := range slices.Sorted(maps.Keys(st.Methods)) {
		fmt.Fprintf(w, "  %-16s served by %s\n", name, strings.Join(st.Methods[name], " "))
	}
	fmt.Fprintf(w, "\ntraffic on the links up: in %d B, out %d B; dials %d (%d failed), accepted %d, auth failures %d\n",
		in, out, st.Counters.Dials, st.Counters.DialFailures, st.Counters.Accepted, st.Counters.AuthFailures)
}

// describeSources summarizes a document clock's sources by node: every
// start of a node writes as a source of its own ("n1~k3x9p2qd"), so a long
// lived cluster's clocks name many, and listing them all would bury the
// nodes. It returns, say, "3 sources: n1 (2 incarnations), n2", the nodes
// in the order of their first source.
func describeSources(sources []string) string {
	var ids []string
	count := map[string]int{}
	for _, src := range sources {
		id := scuttlebutt.ReplicaID(src)
		if count[id] == 0 {
			ids = append(ids, id)
		}
		count[id]++
	}
	var b strings.Builder
	noun := "sources"
	if len(sources) == 1 {
		noun = "source"
	}
	fmt.Fprintf(&b, "%d %s", len(sources), noun)
	for i, id := range ids {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(id)
		if n := count[id]; n > 1 {
			fmt.Fprintf(&b, " (%d incarnations)", n)
		}
	}
	return b.String()
}

// Package api serves a scuttle node's documents over HTTP: JSON in and out,
// live changes as Server-Sent Events, a status page and Prometheus metrics.
//
//	n, _ := node.New(cfg)
//	srv, _ := api.New(n, nil)
//	defer srv.Close() // ends the watch streams, so that Shutdown can finish
//	http.ListenAndServe("127.0.0.1:7948", srv)
//
// The handler serves any value with the methods of Node, which *node.Node
// has, so it can be tested without a cluster.
//
// # Routes
//
//	GET    /v1/models/{name}              the whole model: {"key": value, ...}
//	                                      (?writes=1: {"key": {"value": v, "source": s, "timestamp": t}, ...})
//	GET    /v1/models/{name}/keys/{key}   one key: {"key": k, "value": v}
//	PUT    /v1/models/{name}/keys/{key}   set key to the JSON value in the body
//	DELETE /v1/models/{name}/keys/{key}   delete key
//	GET    /v1/models/{name}/watch        changes, live, as Server-Sent Events
//	GET    /v1/models/{name}/replicate    a WebSocket replica of the model (npm scuttlebutt's JSON lines)
//	POST   /v1/events/{name}              emit {"event": "joined", "args": [...]}
//	GET    /v1/events/{name}              the retained events (?limit=n: the last n)
//	GET    /v1/events/{name}/watch        events, live, as Server-Sent Events
//	GET    /v1/docs/{name}                a JSON document, whole (?path=p: {"path": p, "value": v})
//	PATCH  /v1/docs/{name}                apply MongoDB update operators as one atomic patch
//	GET    /v1/docs/{name}/watch          changes at, below or above ?path=, live, as Server-Sent Events
//	GET    /v1/locks/{name}               the lock table's members, and the locks held with their holders
//	GET    /v1/locks/{name}/{lock}        the lock's holders
//	POST   /v1/locks/{name}/{lock}        take the lock for ?session=ID (?timeout=5s to wait); without
//	                                      a session, for a new one-lock session (?ttl=15s) in the answer
//	DELETE /v1/locks/{name}/{lock}        release it (?session=ID: only if that session holds it)
//	POST   /v1/sessions                   create a lock session: {"ttl": "15s"} or no body
//	GET    /v1/sessions                   every lock session of the node: {"sessions": [...]}
//	GET    /v1/sessions/{id}              the session: {"id", "ttl", "expires", "locks": [{"table", "lock", "held"}],
//	                                      "waiting": lock requests waiting}
//	PUT    /v1/sessions/{id}              renew it: it expires a TTL from now
//	DELETE /v1/sessions/{id}              end it, releasing its locks
//	DELETE /v1/documents/{name}           delete a document of any type but a lock table, on every node:
//	                                      its logs are removed and the name starts empty if used again
//	                                      (404 if there is none, 409 for a lock table)
//	GET    /v1/status                     members, links, document clocks, functions (the rpc registry), bytes
//	GET    /v1/status/watch               the status, live, as Server-Sent Events (at most one a second)
//	GET    /metrics                       Prometheus text format
//	GET    /ui/                           the web console (GET / redirects to it)
//	POST   /v1/members/{id}/force-leave   forget a failed member, on every node (409 if alive, 404 if unknown)
//	POST   /v1/rpc/{name}                 call the function registered in the cluster as name (node.Node.Call)
//	                                      with the JSON array of the body as arguments: 200 {"result": v};
//	                                      502 the handler's error; 404 no member serves it; 400 bad JSON
//	GET    /healthz                       liveness: 200 {"status": "ok"} while the process serves
//	GET    /readyz                        readiness: 200 once joined, documents open and a first
//	                                      sync done; 503 {"status": "unavailable", "error": why} before
//
// /healthz and /readyz are UnauthenticatedRoutes: whatever authentication
// guards the other routes, probes reach them without credentials.
//
// Document names follow node.CheckName. Keys, event names and lock names
// are 1 to MaxKeySize bytes of UTF-8 without control characters; a key may
// hold "/" (the rest of the path is the key) or be escaped in the URL.
// Writes (PUT, POST, PATCH) create the document if the cluster has none of
// that name; reads and deletes of a document the node does not hold are
// 404 and create nothing. A write that would take the node past its cap
// of documents (node.Config.MaxDocuments, scuttle serve -max-documents)
// is 409 with a JSON error naming the cap, and creates nothing.
//
// # JSON documents
//
// A JSON document (package doc) is read whole, or at a path with
// ?path=. A path is a JSON Pointer if it is empty or starts with "/"
// ("/users/ada", "/log/0": array elements are read by index), else
// MongoDB's dotted form ("users.ada"); a pointer can name what dots
// cannot ("/hosts/example.com"). A path that holds nothing is 404.
//
// PATCH takes MongoDB's update operators, dotted paths and all, and
// applies them as one doc.Patch: every replica applies all of them or
// none, and a watch sends all of its changes, one after another.
//
//	{"$set":   {"users.ada.admin": true},          Set
//	 "$unset": {"users.bob": ""},                  Unset (the value is ignored)
//	 "$inc":   {"users.ada.logins": 1},            Inc: concurrent increments all count
//	 "$push":  {"log": "x"},                       Push; {"log": {"$each": ["x", "y"]}} pushes several
//	 "$pull":  {"tags": "old"}}                    Pull; {"tags": {"$in": ["a", "b"]}} pulls several
//
// As in MongoDB, a patch cannot write a path twice, or a path and one below
// it ({"$set": {"a": {}}, "$inc": {"a.n": 1}}), so that its result does not
// depend on the order of the body's keys; other operators, modifiers
// ($slice, $position...), conditions in $pull, positional paths ("a.$.b")
// and replacement documents are refused. The answer is {"ops": n,
// "values": {path: value}}: how many doc ops the patch made, and the value
// at each path it wrote right after, keyed as the request wrote them (an
// unset path is left out). The documentation of package doc gives the
// rules by which concurrent patches merge.
//
// # Values
//
// Values are JSON. Integers come back as integers (within int64; a larger
// integer literal is refused rather than rounded), other numbers as
// floats, []byte values (which only Go writers can make) as base64
// strings. A value must fit package model's rules (nesting at most 31
// deep), or package doc's in a document (at most 30 levels, path
// included).
//
// # Authentication
//
// With Config.Token set, every request must carry "Authorization: Bearer
// TOKEN"; without it, or with another token, the answer is 401 with a JSON
// error and a WWW-Authenticate challenge, before the request is routed.
// The comparison is in constant time. Config.PublicPaths (by default
// /healthz and /readyz) are served without it. TLS is the http.Server's
// business: scuttle serve takes -http-tls-cert and -http-tls-key.
//
// # Errors
//
// Every error is a JSON object {"error": "message"} with a status code:
//
//	400  malformed JSON, trailing data, an invalid name, key, path, value
//	     or patch
//	403  releasing a lock this node (or the session given) does not hold
//	404  no such route, document, key, path, lock table or lock session
//	405  wrong method (the Allow header lists the right ones)
//	409  a lock held by another node or session; a session's lock limit;
//	     a document name used by another type;
//	     an $inc of a path that holds no number, a $push or $pull of one
//	     that holds no array
//	413  a body over Config.MaxBodySize; a patch over doc.MaxOps ops or
//	     over the document's update size limit
//	503  the node is closed or has left; a lock not granted in time; too
//	     many lock sessions
//	500  a write failed (the document's log)
//
// A request that fails changes nothing.
//
// # Watching
//
// A watch is a text/event-stream response. Each change of a model is an
// event "change" whose data is a JSON object (key, value, deleted, source,
// timestamp, local); each event of an emitter an event "event" (event,
// args, source, timestamp, local), as GET /v1/events/{name} lists them.
// Each change of a JSON document at, below or above the watched path (the
// root without ?path=) is an event "change" (path, a JSON Pointer; value;
// old; deleted; source; timestamp; local), as doc.Change reports them: the
// changes of one patch come one after another and share source and
// timestamp (and only the last carries an id: see below). The
// source is the writer's source id, its node id and the incarnation of the
// process that wrote ("n1~k3x9p2qd"); local is true when the writer is this
// node, in this run or an earlier one. A comment line is sent every
// Config.Heartbeat so that proxies and clients can tell a quiet stream
// from a dead one. The stream lasts until the client goes away or the
// server closes; a client that falls Config.WatchBuffer events or
// Config.WatchMaxBytes bytes behind gets an event "error" whose "resume"
// is true, and the stream ends. A watch of a document the node does not
// hold yet waits for it, without creating it, then sends everything it
// holds; one created with another type ends the stream with "error".
// A watch whose document is deleted (DELETE /v1/documents/{name}, on
// this node or another) ends with an event "error" whose data is
// {"error": "document deleted: \"name\"", "deleted": true}: a new watch
// of the name waits for it to be created again and sees the new document
// whole. The replicate WebSocket of a deleted model is closed with
// status StatusDocumentDeleted (4410) and reason "document deleted".
//
// # Resuming a watch
//
// Every event carries an SSE id: the watcher's position, the vector clock
// of what it has seen (per source, the latest update; a source's updates
// arrive in timestamp order), encoded URL-safe, at most MaxWatchIDSize
// bytes. The stream's first line is an id alone: the position it starts
// from. A fresh watch starts from now (the document's clock) and reports
// nothing from before. A request with the Last-Event-ID header (an
// EventSource sends it when it reconnects), or else ?since=ID, resumes:
// it gets what the document holds beyond that position, then live events,
// none it had and none missed, across a restart of the node too (the
// clock's sources persist in the logs); ?since=0 is from the start. What
// a resumption sends: a model, each key changed since, once, at its value
// now (a delete as deleted); an emitter, the retained events after, in
// order; a JSON document, if it changed, one event "change" with
// "resync": true holding the value at the watched path now. An id that
// does not decode, or is too long, is 400.
//
// GET /v1/status/watch sends the status as an event "status" at once,
// then whenever it changed, read at most every StatusInterval (1 s): the
// body of GET /v1/status with "now" (the server's time) and "doc_stats",
// per document its count of keys or events, its last write and the
// replication lag of the last update that came from another node (its
// arrival less its writer's timestamp, so clock offsets count in).
//
// # The console and browser replicas
//
// /ui/ serves a web console from files embedded in the binary (plain
// HTML, CSS and JavaScript; no build step, no external requests): the
// members and this node's links as a graph and a table, the documents with
// their figures, and a live view of one document (a model's keys with a
// form to set and delete, an emitter's tail, a lock table's holders, a
// JSON document). It is driven by the status stream and the document's
// watch, never by polling.
//
// GET /v1/models/{name}/replicate upgrades to a WebSocket on which the
// client is a full replica of the model, speaking JavaScript scuttlebutt's
// protocol (stream.JSONLines) in text messages: /ui/replica.html runs npm
// scuttlebutt (/ui/vendor/scuttlebutt.js, built by web/bundle/build.sh)
// with model.createStream() piped to the socket. Offline edits merge when
// it reconnects. The model is created if the node has none. A line is at
// most Config.MaxBodySize plus 4 KiB; a longer one closes the socket with
// code 1009. Only same-origin pages may open it (the Origin header must
// match the Host).
//
// # Locks
//
// A lock taken through the API is held by the node, as package lock
// defines owners, for a client session: a session has a TTL (Config's
// SessionTTL by default, 15 s; a client may ask for 1 s to 1 h), and the
// node releases every lock of a session that is ended (DELETE) or not
// renewed (PUT) within its TTL, so that a client that dies does not hold
// its locks for ever. A client renews every third of the TTL or so.
//
//	POST /v1/sessions {"ttl": "10s"}            -> {"id": "K5...", "ttl": "10s", "expires": ..., "locks": []}
//	POST /v1/locks/jobs/nightly?session=K5...   -> {"lock": "nightly", "holders": [...], "session": {...}}
//	PUT  /v1/sessions/K5...                     (every few seconds; "held": false in its locks: lost)
//	DELETE /v1/sessions/K5...                   (releases nightly)
//
// A lock request without ?session= makes a one-lock session (of ?ttl= or
// the default), whose TTL runs from the grant; the answer carries it, and
// the client must renew it like any other. It ends when its lock is
// released. A lock request waiting for its lock gives up (404) when its
// session ends.
//
// A lock stays held until its session ends, it is released, the node
// leaves or stops, or its lease is lost (package lock: a renewal not
// confirmed in time). A lost lock is listed with "held": false in its
// session, logged by the node and counted in scuttle_lock_lost_total.
// DELETE of a lock with ?session= releases it only if that session holds
// it (403 otherwise); without it, it releases the lock whichever session
// holds it: an operator's override for any client of the API. Sessions
// live in the node's memory: a restart ends them (the node's leases lapse
// as package lock describes). At most Config.MaxSessions sessions are
// open at once (503 past it), each with at most Config.MaxSessionLocks
// locks (409). Put the API behind authentication (Config.Token) if
// clients must not release each other's locks.
//
// # Metrics
//
// GET /metrics serves a Metrics (prometheus/client_golang, a registry of
// its own) in the Prometheus text format: go_* and process_*; from the
// node's Status, scuttle_members{state}, scuttle_links, the bytes and
// updates of each link, scuttle_documents{type}, each document's sources
// and bounds counters, the connection counters; from the Server,
// scuttle_http_requests_total{route,code}, the histogram
// scuttle_http_request_duration_seconds{route} (a watch counts its whole
// stream), scuttle_http_watchers and scuttle_http_watchers_dropped_total,
// scuttle_lock_sessions; from the node, when the same Metrics is its
// node.Config.Observer, the histograms scuttle_fsync_duration_seconds and
// scuttle_replication_lag_seconds{document}, and the counter
// scuttle_lock_lost_total{table}.
//
// # Concurrency
//
// A Server is safe for concurrent use, as an http.Handler must be.
package api

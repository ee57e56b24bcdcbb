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
//	POST   /v1/locks/{name}/{lock}        take the lock (?timeout=5s to wait)
//	DELETE /v1/locks/{name}/{lock}        release it
//	DELETE /v1/documents/{name}           delete a document of any type but a lock table, on every node:
//	                                      its logs are removed and the name starts empty if used again
//	                                      (404 if there is none, 409 for a lock table)
//	GET    /v1/status                     members, links, document clocks, bytes
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
//	403  releasing a lock this node does not hold
//	404  no such route, document, key, path or lock table
//	405  wrong method (the Allow header lists the right ones)
//	409  a lock held by another node; a document name used by another type;
//	     an $inc of a path that holds no number, a $push or $pull of one
//	     that holds no array
//	413  a body over Config.MaxBodySize; a patch over doc.MaxOps ops or
//	     over the document's update size limit
//	503  the node is closed or has left; a lock not granted in time
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
// timestamp. The
// source is the writer's source id, its node id and the incarnation of the
// process that wrote ("n1~k3x9p2qd"); local is true when the writer is this
// node, in this run or an earlier one. A comment line is sent every
// Config.Heartbeat so that proxies and clients can tell a quiet stream
// from a dead one. The stream lasts until the client goes away or the
// server closes; a client that falls Config.WatchBuffer events behind gets
// an event "error" and the stream ends (reconnect and read the model
// again). A watch reports what happens from the moment it starts, and
// nothing from before.
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
// defines owners: any client of the same node can release it, and it stays
// held (renewed by the node) until released, until the node leaves or
// stops, or until its lease is lost. Put the API behind something that
// authenticates clients if that matters: the API itself does no
// authentication, which is why scuttle serve listens on loopback by
// default.
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
// stream), scuttle_http_watchers and scuttle_http_watchers_dropped_total;
// from the node, when the same Metrics is its node.Config.Observer, the
// histograms scuttle_fsync_duration_seconds and
// scuttle_replication_lag_seconds{document}.
//
// # Concurrency
//
// A Server is safe for concurrent use, as an http.Handler must be.
package api

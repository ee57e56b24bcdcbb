// Package doc is a replicated JSON document: a tree of objects, arrays,
// counters and values, addressed by JSON Pointers, changed by atomic
// patches, and replicated with package scuttlebutt so that every replica
// reaches the same document whatever order patches arrive in.
//
//	d, _ := doc.New("alice", nil)
//	d.Patch(
//		doc.Set("/users/ada", map[string]any{"name": "Ada"}),
//		doc.Inc("/users/ada/logins", 1),
//		doc.Push("/log", "ada joined"),
//	)
//	stream.Pipe(ctx, d, other) // synced, then live
//	name, ok := other.Get("/users/ada/name") // soon: "Ada", true
//
// # Paths
//
// A path is a JSON Pointer (RFC 6901): "" is the root, "/users/ada/admin"
// names member "admin" of member "ada" of member "users", and "~1" and
// "~0" stand for "/" and "~" inside a member name ("/a~1b" is the member
// "a/b"). ParsePointer and Pointer convert between pointers and segments.
// Get reads through arrays by index ("/log/0", "/log/0/who"); writes go
// through objects only, and change an array as a whole (Set) or by Push
// and Pull.
//
// # Operations
//
// A patch is a list of ops, applied by Patch as one update: every replica
// applies all of them or none, observers see them all at once, and each op
// sees the document as the ops before it in the patch leave it.
//
//   - Set(path, value) sets path, and everything below it, to value. An
//     object value is written member by member. The root can only be set
//     to an object.
//   - Unset(path) removes path and everything below it.
//   - Inc(path, n) adds n (negative to subtract) to the counter at path,
//     counting from 0 if path is missing.
//   - Push(path, values...) appends to the array at path, creating it if
//     path is missing.
//   - Pull(path, value) removes from the array at path every element equal
//     to value.
//
// Locally, Inc of a path that holds something other than a number is an
// error (ErrNotNumber), and so are Push and Pull of a non-array
// (ErrNotArray). An invalid patch changes nothing. Values are nil, bool,
// integers within int64, finite floats, strings, []byte, and slices and
// string-keyed maps of these; Get decodes afresh, as package model does.
//
// # Semantics
//
// Ops are ordered by (timestamp, source, index in the patch), as last
// writer wins is in package model: a later timestamp wins, equal
// timestamps go to the greater source id. "Later" below means later in
// that order. A Set or Unset is a reset of its path and everything below
// it; the latest reset at or above a path is that path's reset. Every
// replica evaluates the same rules on the same ops, so all converge.
//
// Set assigns a path and every path below it. A later write below a path
// survives an earlier Set of the path; an earlier one is hidden:
//
//	A: Set("/user", {"name": "x"})   at t1
//	B: Set("/user/age", 3)           at t2 > t1, concurrently
//	everywhere: {"user": {"name": "x", "age": 3}}
//	(had B written at t0 < t1: {"user": {"name": "x"}})
//
// A path is an object if a Set wrote an object there (even {}), or while
// anything is present below it. Where a path also holds a value of its own
// (a scalar, a counter or an array), the later of the two wins, the
// object stamped with the latest of its Set and what is present below it:
// a later write below a scalar turns it into an object, an earlier one is
// hidden.
//
//	A: Set("/a", 5)       at t1
//	B: Set("/a/b", 1)     at t2 > t1: {"a": {"b": 1}}; at t0 < t1: {"a": 5}
//
// An object no Set wrote (made by writes below it) goes with the last of
// them: after Set("/a/b", 1) then Unset("/a/b"), "/a" is gone, while
// after Set("/a", {"b": 1}) then Unset("/a/b") it is {}.
//
// Unset removes a path: it wins over earlier writes at and below it, and
// later writes below it bring the path back. An Unset of a missing path
// still hides earlier writes that arrive later.
//
// # Counters
//
// Inc counts: concurrent increments all count. Three replicas that each
// Inc("/n", 1) while partitioned hold 3 after the heal. Each Inc carries
// its writer's cumulative totals for the path (increments and decrements
// apart, each only growing), so the latest Inc of a source holds all of
// that source's counting there, and supersedes the earlier ones.
//
// A reset of the counter's path or of a path above it (Set or Unset)
// resets the counter, observed-reset style: it carries the totals its
// writer had seen of every counter below it, and the counter's value is
// the reset's number (if it set one, else 0) plus, source by source in id
// order, what each source counted that the reset had not seen. Increments
// the reset had seen are reset; concurrent ones survive it, even a
// concurrent Unset (add wins):
//
//	A: Inc("/n", 5); B receives it
//	C: Inc("/n", 1)                 concurrently with B's set
//	B: Set("/n", 10)                (seen: A 5)
//	A: Inc("/n", 2)                 before receiving B's set
//	everywhere: {"n": 13}           10, plus C's 1, plus A's 7-5
//
//	B: Unset("/user")  concurrently with  C: Inc("/user/visits", 1)
//	everywhere: {"user": {"visits": 1}}
//
// Only the winning reset's observations count: a reset that loses to a
// later concurrent one resets nothing the winner had not seen.
//
// A path that holds both a non-number value (a string, an object, an
// array...) and counted increments (which only concurrency brings about:
// locally such an Inc is an error) holds the later of the two, each
// stamped with its latest write: the value with its Set, the counter with
// its latest counting Inc. So an increment later than a Set of a string
// turns the string into a counter, counting from 0 every increment the
// Set had not seen; a Set later than the increments wins:
//
//	A: Set("/n", "text") at t2;  B: Inc("/n", 1) at t3 > t2  ->  {"n": 1}
//	A: Set("/n", "text") at t2;  B: Inc("/n", 1) at t1 < t2  ->  {"n": "text"}
//
// Such a value only hides what it beats: increments hidden by a later
// value, or below one, are not reset, and come back if a later write makes
// the path a counter (or an object) again.
//
// A counter reads as an int64 when its value is a whole number within
// ±2^53, else as a float64.
//
// # Arrays
//
// Each element has an id: the stamp of the op that wrote it and its index
// in the op. Elements are ordered by id, so concurrent pushes all survive,
// in (timestamp, source, index) order:
//
//	A: Push("/l", "a1", "a2") at t1;  B: Push("/l", "b1") at t1
//	everywhere: {"l": ["a1", "a2", "b1"]}   ("b" > "a")
//
// Pull removes the equal elements its writer held (it carries their ids:
// observed-remove); an equal element pushed concurrently survives:
//
//	A: Push("/l", "x"); B receives it; C: Push("/l", "x") concurrently
//	B: Pull("/l", "x")  ->  everywhere: {"l": ["x"]}, C's
//
// A Set of the array, or of a path above it, replaces it: elements earlier
// than the Set are hidden, later pushes survive (Set("/l", [9]) between
// Push("/l", 1) and a concurrent later Push("/l", 2) gives [9, 2]). A push
// or pull later than a non-array value at the path makes an array of the
// later elements; a value later than them wins. An array emptied by pulls
// stays, empty.
//
// # Observers
//
// Observe calls a function for every change, local or remote, that
// touches a path: at it, below it, or above it. Changes are delivered
// after the whole patch is applied and outside the document's locks, in
// the order patches are applied; ObserveChan is the channel adapter. A
// Change names the path that changed, its old and new value, whether it
// was deleted, the patch's source and timestamp, and whether this replica
// made it.
//
// Changes are reported where values changed: where an object stays an
// object, at its members, recursively; elsewhere at the path whose value
// changed as a whole (a scalar, a counter, an array, or a path that
// appeared, disappeared or changed kind). A patch's changes are grouped by
// path, in the order the paths first appear among its ops, members of an
// object in key order. They replay: setting each Path to New (or removing
// it where Deleted), in order, from an empty document, gives Snapshot().
//
// # History
//
// History keeps, and sends to peers, the updates that still count: an
// update is kept while any of its ops does. A Set or Unset counts while
// no later reset covers its path; an Inc while it is its source's latest
// at its path; a Push while no later reset covers it and some element of
// it is not pulled (or it pushed none: it made the array); a Pull while
// no later reset covers it. So a history grows with the document's paths
// and writers, not with its writes: a million increments of a counter by
// three writers keep three updates. Leaving an update out is safe because
// what supersedes it is kept, and makes it irrelevant on any replica that
// receives it; a Link applies a history whole (see scuttlebutt).
//
// Known limits of the bound:
//
//   - Unset tombstones are kept while they are the latest reset of their
//     path, as package model keeps its tombstones.
//   - A counter's latest total per source is kept for good, even once its
//     path is unset: a concurrent reset that had not seen it could arrive
//     at any time, and must not reset it. Each reset carries the totals
//     of every counter below it, so resetting a path with very many
//     counters below makes a large update (ErrTooLarge past
//     Config.MaxUpdateSize).
//   - Pull tombstones are kept while the elements they remove may still
//     be held by someone: until a later Set or Unset of the array or a
//     path above it hides those elements. An array used as a queue (push,
//     pull, push...) keeps one update per pull until it is reset.
//
// # Limits
//
// A document is at most MaxDepth (30) levels deep: paths have at most 30
// segments, and a value set at a path of n segments nests at most 30-n
// deep (ErrTooDeep). A patch has at most MaxOps (1024) ops, and its update
// at most Config.MaxUpdateSize bytes (1 MiB by default; ErrTooLarge). Keys
// and strings are UTF-8. A peer's update is checked before anything of its
// batch is applied (the Validator): a malformed or forged payload (a bad
// path, an Inc total that is NaN, negative or infinite, a value nested too
// deep, an unknown op) ends that peer's session with
// scuttlebutt.ErrInvalidUpdate, and changes nothing.
//
// # Wire form
//
// An update's payload is one CBOR array, made of the source table and the
// ops:
//
//	payload = [sources, op, op, ...]        at least one op, at most MaxOps
//	sources = [text, ...]                   source ids that seen entries and element ids name, by index
//	path    = [text, ...]                   the unescaped segments of a JSON Pointer
//	op      = [0, path, value]              Set
//	        | [0, path, value, seen]        Set, with the counter totals it had seen below path
//	        | [1, path] | [1, path, seen]   Unset
//	        | [2, path, inc, dec]           Inc: the writer's cumulative totals at path
//	        | [3, path, value, ...]         Push
//	        | [4, path, id, ...]            Pull
//	seen    = [[relpath, source, inc, dec], ...]
//	id      = [timestamp, source, op, index]
//
// Op codes and the layout are on the wire: only ever append. Values are as
// package model writes them (deterministic CBOR, shortest floats); totals
// are non-negative numbers, integers where exact; a timestamp is a
// float64 (milliseconds, as vclock.Timestamp); a source is an index into
// sources. A Pull's ids must be earlier than the Pull itself; others are
// ignored.
//
// # Concurrency
//
// All methods of Doc are safe for concurrent use. Reads run in parallel;
// local patches are applied one at a time (a source's counter totals must
// grow in stamp order), and remote ones under the base's lock. Observers
// run one at a time, outside every lock, on a goroutine that applies
// patches: the one that applied the change, or one applying a later patch.
package doc

// Package node runs a member of a scuttle cluster: named documents (models,
// emitters, lock tables, JSON documents) replicated between processes over TCP, with
// membership and failure detection by hashicorp/memberlist.
//
//	n, err := node.New(&node.Config{
//		ID:       "n1",
//		DataDir:  "/var/lib/scuttle",
//		Join:     []string{"10.0.0.2:7946"},
//		Secret:   secret, // or CertFile, KeyFile, CAFile
//	})
//	if err != nil {
//		return err
//	}
//	defer n.Close()
//	users, _ := n.Model("users") // created on every member, replicated
//	users.Set("ada", map[string]any{"admin": true})
//
// # Lifecycle
//
// New starts the node: it opens the data directory, listens, starts
// memberlist and joins in the background; the node runs until Close. To
// leave for good:
//
//  1. call Leave, which tells the members (they record the node as left,
//     not failed, and drop it from lock tables at once), closes the node's
//     lock tables (releasing its locks), drops its links and broadcasts
//     memberlist's leave;
//  2. call Close, which stops everything and closes the document logs.
//
// Close alone is what a crash looks like to the cluster: the members'
// failure detectors notice within a few probe intervals and drop their
// links. A node restarted with the same DataDir comes back with the same id
// and every document from its logs, and catches up from its peers with
// only what it missed.
//
// Ready tells a health check when the node can serve: joined (with
// Config.Join), its documents opened, and a first sync with a peer done
// (or no peer alive). Members that failed or left stay in Status for
// Config.ReapAfter (1 min) and are then forgotten; ForceLeave forgets a
// failed one at once, on every member it reaches. Leave waits for
// memberlist's leave message to go out at most Config.LeaveWait, and not
// at all when no other member is alive, so that stopping a whole cluster
// at once does not stall.
//
// # Metrics
//
// Config.Observer, if set, receives the duration of every fsync of a
// document log and, per document, the replication lag of every update
// applied from a peer: the time from its timestamp to its apply here.
// Package api's Metrics turns them into Prometheus histograms. An Observer
// that is also a LockObserver counts the leases the node loses.
//
// # Documents
//
// Documents are named (CheckName: 1 to 128 bytes of [A-Za-z0-9._-]) and
// typed. Model, Emitter, Locks and Doc get a document, creating it if need
// be. The node keeps a catalog, a replicated model of its own ("_catalog"),
// mapping each document's name to its type: a document created on one
// member is created on every member, so every member holds every document
// and a read on any member sees writes made on any other. Asking for a
// document under another type than the catalog's is ErrDocumentType.
//
// With a DataDir, models, emitters and JSON documents are logged (package
// filelog) under DataDir/<type>/<name>.log, and the catalog under
// DataDir/catalog.log; the node's id is kept in DataDir/node-id. Lock
// tables keep no log (see package lock).
//
// A node holds at most Config.MaxDocuments documents (10,000). A name
// past it is ErrTooManyDocuments, once the node holds as many or the
// catalog lists as many live ones; names a peer's catalog brings past it
// are logged once and opened as deletions make room. Members creating
// names at the same moment can each pass the check before hearing of
// the others' names, so the catalog may list a few more than the cap:
// each member then holds MaxDocuments of them. The documents' logs share
// a filelog.Files of Config.MaxOpenLogs (128) open files: a document
// written to rarely costs no descriptor (the least recently written
// logs close their files and reopen them at their next write), while the
// catalog's log stays open and its lock keeps a second process off the
// data directory. The catalog's watch queues the names that change, so
// the cost of creating a document does not grow with their number.
//
// Delete deletes a document on every member. The catalog records
// "deleted/G"; a name created again is the next generation, G+1
// ("model/3"), and each generation replicates under a stream name and is
// logged under a file name of its own (<name>~<G>.log; generation 0, the
// only one data directories of older versions hold, keeps the plain
// names). A member that missed the deletion, cut off or down with the
// old data on disk, drops the old generation and its log when the
// catalog reaches it, before anything of it can mix with the new one
// (and New removes the logs of generations the catalog has moved past);
// two members that create the name again at once make the same
// generation, and their writes merge. Lock tables cannot be deleted:
// their locks are leases their holders renew. Catalog entries of deleted
// names stay, a few bytes each.
//
// # Links
//
// Each replication link is one TCP connection carrying a stream.Mux: one
// yamux stream per document, so a document created while linked starts
// replicating at once, and a broken document stream leaves the others up.
// There is exactly one link per pair of members: the member with the
// smaller id dials, the other accepts. A dialer whose link fails redials
// with exponential backoff and full jitter (Config.ReconnectBase,
// ReconnectMax); a newer connection from a peer replaces an older one.
//
// Which pairs are linked follows membership (the live members, as
// memberlist reports them):
//
//   - Clusters of at most Config.FullMeshSize members (8) are a full mesh:
//     every update reaches every member in one hop, and a cluster that
//     small pays little for the n-1 links per member.
//   - Larger clusters sort the live members by id into a ring and link
//     each to the members within Config.RingLinks (2) places of it on
//     either side, plus about Config.RandomLinks (2) random partners. The
//     ring keeps the link graph connected: with two places on each side it
//     is a circulant graph that stays connected with any three members
//     down before the failure detector removes them. The random links cut
//     the path an update takes from about n/4 hops to about log n. They
//     are drawn by a hash of the pair and the epoch (Config.Now divided by
//     Config.RelinkInterval, 10 min), so both ends agree without talking,
//     and they rotate each epoch, so a poor draw does not last. Each member
//     then holds about 2*RingLinks+RandomLinks links whatever the size of
//     the cluster.
//
// Scuttlebutt relays every update over every link, so a connected graph
// is enough for every update to reach every member. When membership
// changes, dialers start and stop; accepted links from members that left
// or failed are dropped.
//
// # Calls between members
//
// Handle and HandleMethod register a function (an rpc.Handler) under a
// name for the whole cluster; Call calls it by name from any member, with
// no address to configure:
//
//	n2.HandleMethod(rpc.Method{Name: "getFoo", Idempotent: true}, getFoo)
//	v, err := n1.Call(ctx, "getFoo", "bar")
//
// The registry is a replicated model of the node's own ("_rpc", kept in no
// log) with a key "name/nodeid" per handler, set by Handle and deleted by
// Unhandle and Close, so every member knows who serves what. Call picks
// the servers of name among the live members: this node first (the
// handler runs in process through rpc.Server.Invoke, with its arguments,
// result and errors as over the wire), then the members it has a link to, in
// random order. A remote call runs over a stream of the link's Mux next
// to the documents (stream.Mux.Open), through one rpc.Client per peer,
// made on first use and replaced once its connection ends; every link
// serves this node's handlers with one rpc.Server.
//
// Call never picks a member that is not alive, or one it has no link to.
// The registry follows membership and the handlers:
//
//  1. Each node makes its own entries those of its handlers: an entry of
//     its that a peer deleted is set again, one of a name it does not
//     serve (left by an earlier run) is deleted, once a run. A restarted node
//     registers its handlers again (the registry keeps no log).
//  2. The live member with the smallest id deletes the entries of the
//     members that are gone: at once for a member that failed or left,
//     and ReapAfter after it found them for a member it does not know
//     (reaped, or never seen). It deletes a member's entries once per
//     failure or departure; two members that both take themselves for
//     the smallest for a while delete the same entries, and the deletes
//     agree.
//
// So the entries of a member that crashed go as soon as the failure
// detector declares it dead, and those of a member wrongly declared dead
// come back as soon as it sees them go.
//
// Call moves to the next server when the call did not run (no stream to
// the member, the member no longer serves the name, or was busy), and,
// for an idempotent method only, when the member went away before
// answering (rpc.ErrClosed). Any other error is returned: a handler's
// error or panic is a *rpc.RemoteError wrapping rpc.ErrRemote with its
// message, the same whether it ran on this node or another
// ("node: call "f" on n2: rpc: remote error: f: message"), ctx's end is
// ctx.Err(), and a name no live member serves wraps rpc.ErrUnknownMethod.
// Handlers run in goroutines of their own; a panic is recovered, and a
// handler that blocks holds only its caller, until the caller's deadline
// (and rpc's MaxTimeout, 1 minute) cancels its context.
//
// # Security
//
// Without Secret or TLS files, anyone who can reach the replication port
// can read and write every document: use that only on a trusted network.
// BindAddr and GossipAddr default to loopback for that reason.
//
//   - Secret: both ends prove knowledge of a shared secret with
//     HMAC-SHA256 over fresh nonces from both sides, before any document
//     data flows; the secret never crosses the wire and a recorded
//     handshake cannot be replayed. Everything after the handshake is
//     sealed: AES-256-GCM records of at most 16 KiB, a key per direction
//     derived for the connection with HKDF-SHA256 from the secret and both
//     hellos, record numbers as nonces. A record altered, dropped,
//     replayed or injected on the way ends the link with ErrSealBroken
//     (logged); the dialer redials. Secret also keys memberlist's gossip
//     encryption (unless GossipKey is set), so strangers cannot join the
//     membership or read it.
//   - TLS (CertFile, KeyFile, CAFile): mutual TLS 1.3; each end accepts the
//     other only with a certificate that chains to the CA and names the
//     node id the other claims in the handshake (SAN DNS "web1" or URI
//     "scuttle://web1"), so one node's certificate cannot serve another;
//     New refuses a certificate that does not name its own id. Gossip is
//     then unencrypted unless GossipKey (or Secret) is set.
//
// A peer that fails authentication is disconnected before the yamux
// session starts; the refusal is logged and counted in
// Status().Counters.AuthFailures.
//
// # Duplicate ids
//
// A node whose id a live member holds at another gossip address is refused
// when it joins: both sides of memberlist's join check the other's member
// list (a merge delegate), so neither merges; the joiner's Fatal channel
// delivers ErrDuplicateID, naming the id and the address that holds it,
// and the live member keeps its links, locks and membership. A node that
// restarts on the same address is not a duplicate; one that restarts on
// another address is refused until the failure detector has declared its
// old self dead.
//
// # Lock tables and membership
//
// A lock table's member set is the cluster's live members, this node
// included: members that join are added, members that leave or are
// declared dead are removed. Package lock assumes a removed member has
// stopped; memberlist's failure detector can suspect a member that is only
// slow or partitioned away, and such a member may then hold a lock at the
// same time as another. Keep the failure detector's timeouts well above
// the network's worst pauses, as memberlist's defaults do.
//
// A lock the node loses without releasing it (its lease ran out before a
// renewal was confirmed: a partition, a member too slow to acknowledge,
// the process paused) is logged as a warning with the table, the lock and
// the holder (this node), and counted by a LockObserver.
//
// # Concurrency
//
// All methods of Node are safe for concurrent use. The node's goroutines
// (the accept loop, one dialer per peer it dials, one session per link,
// the manager that follows membership, the joiner) are stopped and waited
// for by Close.
package node

package api

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// ErrMetricsInUse means a Metrics was given to a second Server.
var ErrMetricsInUse = errors.New("api: metrics already serve another server")

// Metrics are the Prometheus metrics GET /metrics serves (prometheus
// client_golang, a registry of their own, not the global one): the Go
// runtime's (go_*) and the process's (process_*), the HTTP API's requests
// and latency, watch streams and lock sessions, and the node's: what its
// Status holds (members, links, documents, bounds, connections), fsync
// latency, replication lag and lost leases, for which it is a
// node.LockObserver. Create one with NewMetrics and give it to both
// node.Config.Observer and Config.Metrics; it serves one Server. Its methods are safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	dropped  prometheus.Counter
	fsync    prometheus.Histogram
	lag      *prometheus.HistogramVec
	lockLost *prometheus.CounterVec
	used     atomic.Bool
}

var _ node.LockObserver = (*Metrics)(nil)

// NewMetrics returns the metrics of a Server and its node, registered in
// a new registry with the Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scuttle_http_requests_total",
			Help: "HTTP API requests, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scuttle_http_request_duration_seconds",
			Help: "Time to answer an HTTP API request, by route pattern (\"\" for no route); a watch counts its whole stream, a lock request its wait.",
			// 0.25 ms to 16 s: reads answer in well under a millisecond,
			// writes wait for an fsync, lock requests for acknowledgements.
			Buckets: prometheus.ExponentialBuckets(0.00025, 4, 9),
		}, []string{"route"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scuttle_http_watchers_dropped_total",
			Help: "Watch streams ended because the client fell behind.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scuttle_fsync_duration_seconds",
			Help: "Time of one fsync of a document log.",
			// 50 µs (a cached or battery-backed write) to 3.3 s (a disk
			// in trouble).
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 9),
		}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scuttle_replication_lag_seconds",
			Help: "Time from an update's timestamp on the node that wrote it to its apply on this node, by document; clock skew between nodes included.",
			// 1 ms (a link on a LAN) to 4.4 min (a node catching up
			// after a partition or a restart).
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"document"}),
		lockLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scuttle_lock_lost_total",
			Help: "Locks this node lost without releasing them (the lease ran out before a renewal was confirmed), by lock table.",
		}, []string{"table"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, m.dropped, m.fsync, m.lag, m.lockLost,
	)
	return m
}

// Registry returns the registry the metrics are in, for a program to add
// its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveFsync implements node.Observer.
func (m *Metrics) ObserveFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// ObserveLag implements node.Observer.
func (m *Metrics) ObserveLag(doc string, lag time.Duration) {
	m.lag.WithLabelValues(doc).Observe(lag.Seconds())
}

// ObserveLockLost implements node.LockObserver.
func (m *Metrics) ObserveLockLost(table string) { m.lockLost.WithLabelValues(table).Inc() }

// request counts one request to route, answered with code after d.
func (m *Metrics) request(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// register adds what comes from s: the node's status and the open
// watches.
func (m *Metrics) register(s *Server) error {
	if m.used.Swap(true) {
		return ErrMetricsInUse
	}
	return errors.Join(
		m.reg.Register(statusCollector{s.n}),
		m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scuttle_http_watchers",
			Help: "Open watch streams (Server-Sent Events).",
		}, func() float64 { return float64(s.watchers.Load()) })),
		m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scuttle_lock_sessions",
			Help: "Open lock sessions of the HTTP API.",
		}, func() float64 { return float64(s.sessions.count()) })),
	)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{s},
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
	return nil
}

// slogPrinter logs promhttp's errors.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.cfg.Logger.Error("api: metrics", "err", v) }

// statusCollector collects the metrics that come from the node's Status,
// taken once per scrape. It is unchecked (Describe sends nothing): the
// label values are only known from a Status.
type statusCollector struct{ n Node }

func (statusCollector) Describe(chan<- *prometheus.Desc) {}

// desc and the metric helpers keep Collect close to the list of metrics.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descMembers   = desc("scuttle_members", "Members of the cluster this node knows of, itself included, by state.", "state")
	descLinks     = desc("scuttle_links", "Replication links that are up.")
	descDocuments = desc("scuttle_documents", "Documents this node holds, by type.", "type")
	descSources   = desc("scuttle_document_sources", "Replicas whose updates a document holds: the entries of its vector clock.", "document", "type")
)

// linkMetrics are the counters of each link, from its LinkStatus.
var linkMetrics = []struct {
	desc  *prometheus.Desc
	value func(node.LinkStatus) int64
}{
	{desc("scuttle_link_received_bytes_total", "Bytes received on the link to a peer, TLS and framing included; reset when the link is re-established.", "peer"),
		func(l node.LinkStatus) int64 { return l.BytesIn }},
	{desc("scuttle_link_sent_bytes_total", "Bytes sent on the link to a peer, TLS and framing included; reset when the link is re-established.", "peer"),
		func(l node.LinkStatus) int64 { return l.BytesOut }},
	{desc("scuttle_link_received_updates_total", "Updates received on the link to a peer, all documents; reset when the link is re-established.", "peer"),
		func(l node.LinkStatus) (in int64) {
			for _, d := range l.Documents {
				in += d.UpdatesIn
			}
			return in
		}},
	{desc("scuttle_link_sent_updates_total", "Updates sent on the link to a peer, all documents; reset when the link is re-established.", "peer"),
		func(l node.LinkStatus) (out int64) {
			for _, d := range l.Documents {
				out += d.UpdatesOut
			}
			return out
		}},
}

// boundMetrics are the counters of each document's bounds.
var boundMetrics = []struct {
	desc  *prometheus.Desc
	value func(scuttlebutt.Stats) uint64
}{
	{desc("scuttle_document_offset_refused_total", "Updates and clocks refused because they were stamped further ahead of this node's clock than the bound allows.", "document", "type"),
		func(s scuttlebutt.Stats) uint64 { return s.OffsetRefused }},
	{desc("scuttle_document_sources_refused_total", "Updates and clocks refused because they would name more sources than the bound allows.", "document", "type"),
		func(s scuttlebutt.Stats) uint64 { return s.SourcesRefused }},
	{desc("scuttle_document_twins_total", "Other live processes seen writing under this node's id (a cloned machine, a duplicate -id).", "document", "type"),
		func(s scuttlebutt.Stats) uint64 { return s.Twins }},
}

var (
	descDials        = desc("scuttle_dials_total", "Outgoing replication connection attempts.")
	descDialFailures = desc("scuttle_dial_failures_total", "Outgoing replication connection attempts that did not reach a session.")
	descAccepted     = desc("scuttle_accepted_connections_total", "Incoming replication connections.")
	descAuthFailures = desc("scuttle_auth_failures_total", "Replication connections closed because a side failed authentication.")
)

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	states := map[node.MemberState]int{node.Alive: 0, node.Leaving: 0, node.Left: 0, node.Failed: 0}
	for _, m := range st.Members {
		states[m.State]++
	}
	for _, state := range slices.Sorted(maps.Keys(states)) {
		gauge(descMembers, float64(states[state]), string(state))
	}
	gauge(descLinks, float64(len(st.Links)))
	for _, m := range linkMetrics {
		for _, l := range st.Links {
			counter(m.desc, float64(m.value(l)), l.Peer)
		}
	}
	types := map[string]int{"model": 0, "emitter": 0, "lock": 0, "doc": 0}
	for _, d := range st.Documents {
		types[d.Type]++
	}
	for _, t := range slices.Sorted(maps.Keys(types)) {
		gauge(descDocuments, float64(types[t]), t)
	}
	for _, d := range st.Documents {
		gauge(descSources, float64(len(d.Clock)), d.Name, d.Type)
	}
	for _, m := range boundMetrics {
		for _, d := range st.Documents {
			counter(m.desc, float64(m.value(d.Bounds)), d.Name, d.Type)
		}
	}
	counter(descDials, float64(st.Counters.Dials))
	counter(descDialFailures, float64(st.Counters.DialFailures))
	counter(descAccepted, float64(st.Counters.Accepted))
	counter(descAuthFailures, float64(st.Counters.AuthFailures))
}

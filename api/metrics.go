package api

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// metrics counts what the Server itself sees; the rest of /metrics comes
// from the node's Status.
type metrics struct {
	mu       sync.Mutex
	requests map[requestKey]int64 // guarded by mu
	dropped  atomic.Int64         // watch streams ended for falling behind
}

type requestKey struct {
	route string // the matched pattern, "" for no route
	code  int
}

func (m *metrics) request(route string, code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.requests == nil {
		m.requests = make(map[requestKey]int64)
	}
	m.requests[requestKey{route, code}]++
}

func (m *metrics) snapshot() map[requestKey]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[requestKey]int64, len(m.requests))
	for k, v := range m.requests {
		out[k] = v
	}
	return out
}

// promWriter writes the Prometheus text exposition format (version
// 0.0.4): one HELP and one TYPE line per metric family, then its samples.
type promWriter struct {
	w   io.Writer
	err error
}

type label struct{ name, value string }

// family starts a metric family.
func (p *promWriter) family(name, typ, help string) {
	p.printf("# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// sample writes one sample of the family last started.
func (p *promWriter) sample(name string, value float64, labels ...label) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.name)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l.value))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(value, 'g', -1, 64))
	b.WriteByte('\n')
	p.printf("%s", b.String())
}

func (p *promWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writeMetrics(w, s.n.Status(), s.metrics.snapshot(), s.watchers.Load(), s.metrics.dropped.Load())
	return nil
}

// writeMetrics writes every metric in the Prometheus text format.
func writeMetrics(w io.Writer, st node.Status, requests map[requestKey]int64, watchers, dropped int64) error {
	p := &promWriter{w: w}

	p.family("scuttle_members", "gauge", "Members of the cluster this node knows of, itself included, by state.")
	states := map[node.MemberState]int{node.Alive: 0, node.Leaving: 0, node.Left: 0, node.Failed: 0}
	for _, m := range st.Members {
		states[m.State]++
	}
	for _, state := range slices.Sorted(maps.Keys(states)) {
		p.sample("scuttle_members", float64(states[state]), label{"state", string(state)})
	}

	p.family("scuttle_links", "gauge", "Replication links that are up.")
	p.sample("scuttle_links", float64(len(st.Links)))

	type linkMetric struct {
		name, help string
		value      func(node.LinkStatus) int64
	}
	updates := func(l node.LinkStatus) (in, out int64) {
		for _, d := range l.Documents {
			in += d.UpdatesIn
			out += d.UpdatesOut
		}
		return in, out
	}
	for _, m := range []linkMetric{
		{"scuttle_link_received_bytes_total", "Bytes received on the link to a peer, TLS and framing included; reset when the link is re-established.",
			func(l node.LinkStatus) int64 { return l.BytesIn }},
		{"scuttle_link_sent_bytes_total", "Bytes sent on the link to a peer, TLS and framing included; reset when the link is re-established.",
			func(l node.LinkStatus) int64 { return l.BytesOut }},
		{"scuttle_link_received_updates_total", "Updates received on the link to a peer, all documents; reset when the link is re-established.",
			func(l node.LinkStatus) int64 { in, _ := updates(l); return in }},
		{"scuttle_link_sent_updates_total", "Updates sent on the link to a peer, all documents; reset when the link is re-established.",
			func(l node.LinkStatus) int64 { _, out := updates(l); return out }},
	} {
		p.family(m.name, "counter", m.help)
		for _, l := range st.Links {
			p.sample(m.name, float64(m.value(l)), label{"peer", l.Peer})
		}
	}

	p.family("scuttle_documents", "gauge", "Documents this node holds, by type.")
	types := map[string]int{"model": 0, "emitter": 0, "lock": 0, "doc": 0}
	for _, d := range st.Documents {
		types[d.Type]++
	}
	for _, t := range slices.Sorted(maps.Keys(types)) {
		p.sample("scuttle_documents", float64(types[t]), label{"type", t})
	}

	p.family("scuttle_document_sources", "gauge", "Replicas whose updates a document holds: the entries of its vector clock.")
	for _, d := range st.Documents {
		p.sample("scuttle_document_sources", float64(len(d.Clock)), label{"document", d.Name}, label{"type", d.Type})
	}

	for _, m := range []struct {
		name, help string
		value      func(scuttlebutt.Stats) uint64
	}{
		{"scuttle_document_offset_refused_total", "Updates and clocks refused because they were stamped further ahead of this node's clock than the bound allows.",
			func(s scuttlebutt.Stats) uint64 { return s.OffsetRefused }},
		{"scuttle_document_sources_refused_total", "Updates and clocks refused because they would name more sources than the bound allows.",
			func(s scuttlebutt.Stats) uint64 { return s.SourcesRefused }},
		{"scuttle_document_twins_total", "Other live processes seen writing under this node's id (a cloned machine, a duplicate -id).",
			func(s scuttlebutt.Stats) uint64 { return s.Twins }},
	} {
		p.family(m.name, "counter", m.help)
		for _, d := range st.Documents {
			p.sample(m.name, float64(m.value(d.Bounds)), label{"document", d.Name}, label{"type", d.Type})
		}
	}

	for _, c := range []struct {
		name, help string
		v          int64
	}{
		{"scuttle_dials_total", "Outgoing replication connection attempts.", st.Counters.Dials},
		{"scuttle_dial_failures_total", "Outgoing replication connection attempts that did not reach a session.", st.Counters.DialFailures},
		{"scuttle_accepted_connections_total", "Incoming replication connections.", st.Counters.Accepted},
		{"scuttle_auth_failures_total", "Replication connections closed because a side failed authentication.", st.Counters.AuthFailures},
	} {
		p.family(c.name, "counter", c.help)
		p.sample(c.name, float64(c.v))
	}

	p.family("scuttle_http_requests_total", "counter", "HTTP API requests, by route pattern and status code.")
	keys := slices.SortedFunc(maps.Keys(requests), func(a, b requestKey) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return a.code - b.code
	})
	for _, k := range keys {
		p.sample("scuttle_http_requests_total", float64(requests[k]), label{"route", k.route}, label{"code", strconv.Itoa(k.code)})
	}

	p.family("scuttle_http_watchers", "gauge", "Open watch streams (Server-Sent Events).")
	p.sample("scuttle_http_watchers", float64(watchers))
	p.family("scuttle_http_watchers_dropped_total", "counter", "Watch streams ended because the client fell behind.")
	p.sample("scuttle_http_watchers_dropped_total", float64(dropped))
	return p.err
}

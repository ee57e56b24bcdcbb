package api

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// parseMetrics checks text against the Prometheus text format (every
// sample in a family announced by HELP and TYPE lines, no family twice)
// and returns the samples: "name{labels}" -> value.
func parseMetrics(t *testing.T, text string) map[string]string {
	t.Helper()
	sample := regexp.MustCompile(`^([a-z_:][a-z0-9_:]*)(\{[a-z_]+="(?:[^"\\\n]|\\.)*"(?:,[a-z_]+="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\+Inf)$`)
	help := regexp.MustCompile(`^# HELP ([a-z_:][a-z0-9_:]*) \S.*$`)
	typ := regexp.MustCompile(`^# TYPE ([a-z_:][a-z0-9_:]*) (counter|gauge|histogram|summary|untyped)$`)
	out := map[string]string{}
	seen := map[string]bool{}
	family, typed := "", false
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("metrics do not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if m := help.FindStringSubmatch(line); m != nil {
			if seen[m[1]] {
				t.Errorf("line %d: family %s twice", i+1, m[1])
			}
			seen[m[1]], family, typed = true, m[1], false
			continue
		}
		if m := typ.FindStringSubmatch(line); m != nil {
			if m[1] != family || typed {
				t.Errorf("line %d: TYPE of %s without its HELP line first", i+1, m[1])
			}
			if m[2] == "counter" && !strings.HasSuffix(m[1], "_total") {
				t.Errorf("line %d: counter %s is not named _total", i+1, m[1])
			}
			typed = true
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d is not a sample: %q", i+1, line)
			continue
		}
		base := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m[1], suffix); ok && b == family {
				base = b
			}
		}
		if base != family || !typed {
			t.Errorf("line %d: sample of %s outside its family (%s)", i+1, m[1], family)
		}
		out[m[1]+m[2]] = m[3]
	}
	return out
}

func TestMetrics(t *testing.T) {
	_, s := newServer(t, nil)
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `1`), "PUT")
	wantOK(t, doString(t, s, "POST", "/v1/events/e", `{"event": "x"}`), "emit")
	wantOK(t, doString(t, s, "PATCH", "/v1/docs/d", `{"$inc": {"n": 1}}`), "PATCH")
	doString(t, s, "GET", "/v1/models/nope", "")
	doString(t, s, "GET", "/nowhere", "")

	r := doString(t, s, "GET", "/metrics", "")
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8") {
		t.Fatalf("GET /metrics: %d %q", r.code, r.header.Get("Content-Type"))
	}
	got := parseMetrics(t, r.body)
	for name, want := range map[string]string{
		`scuttle_members{state="alive"}`:                      "2",
		`scuttle_members{state="failed"}`:                     "1",
		`scuttle_members{state="left"}`:                       "0",
		`scuttle_links`:                                       "1",
		`scuttle_link_received_bytes_total{peer="peer"}`:      "1234",
		`scuttle_link_sent_bytes_total{peer="peer"}`:          "5678",
		`scuttle_documents{type="model"}`:                     "1",
		`scuttle_documents{type="emitter"}`:                   "1",
		`scuttle_documents{type="lock"}`:                      "0",
		`scuttle_documents{type="doc"}`:                       "1",
		`scuttle_document_sources{document="d",type="doc"}`:   "1",
		`scuttle_document_sources{document="m",type="model"}`: "1",
		`scuttle_dials_total`:                                 "3",
		`scuttle_auth_failures_total`:                         "1",
		`scuttle_http_requests_total{code="200",route="PUT /v1/models/{name}/keys/{key...}"}`: "1",
		`scuttle_http_requests_total{code="404",route="GET /v1/models/{name}"}`:               "1",
		`scuttle_http_requests_total{code="200",route="PATCH /v1/docs/{name}"}`:               "1",
		`scuttle_http_requests_total{code="404",route=""}`:                                    "1",
		`scuttle_http_watchers`: "0",
		`scuttle_http_request_duration_seconds_count{route="PUT /v1/models/{name}/keys/{key...}"}`: "1",
		`scuttle_http_request_duration_seconds_count{route=""}`:                                    "1",
		`scuttle_fsync_duration_seconds_count`:                                                     "0",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
}

// TestMetricsObserved checks what a node feeds (the histograms of fsync
// latency and replication lag by document, lost leases by table), the
// open lock sessions, and the Go and process collectors.
func TestMetricsObserved(t *testing.T) {
	m := NewMetrics()
	f, s := newServer(t, &Config{Metrics: m})
	if _, err := New(f, &Config{Metrics: m}); !errors.Is(err, ErrMetricsInUse) {
		t.Errorf("a second Server on the same Metrics: %v, want ErrMetricsInUse", err)
	}
	m.ObserveFsync(3 * time.Millisecond)
	m.ObserveFsync(300 * time.Millisecond)
	m.ObserveLag("users", 2*time.Millisecond)
	m.ObserveLag("users", 90*time.Second)
	m.ObserveLag("jobs", 0)
	m.ObserveLockLost("jobs")
	m.ObserveLockLost("jobs")
	wantOK(t, doString(t, s, "POST", "/v1/sessions", ""), "create a session")
	got := parseMetrics(t, doString(t, s, "GET", "/metrics", "").body)
	for name, want := range map[string]string{
		`scuttle_fsync_duration_seconds_count`:                                "2",
		`scuttle_fsync_duration_seconds_sum`:                                  "0.303",
		`scuttle_fsync_duration_seconds_bucket{le="0.0032"}`:                  "1",
		`scuttle_fsync_duration_seconds_bucket{le="+Inf"}`:                    "2",
		`scuttle_replication_lag_seconds_count{document="users"}`:             "2",
		`scuttle_replication_lag_seconds_bucket{document="users",le="0.004"}`: "1",
		`scuttle_replication_lag_seconds_count{document="jobs"}`:              "1",
		`scuttle_lock_lost_total{table="jobs"}`:                               "2",
		`scuttle_lock_sessions`:                                               "1",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes", "process_open_fds"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

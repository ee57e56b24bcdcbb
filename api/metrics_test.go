package api

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseMetrics checks text against the Prometheus text format (every
// sample in a family announced by HELP and TYPE lines, no family twice)
// and returns the samples: "name{labels}" -> value.
func parseMetrics(t *testing.T, text string) map[string]string {
	t.Helper()
	sample := regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\.)*"(?:,[a-z_]+="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.e+]+)$`)
	help := regexp.MustCompile(`^# HELP ([a-z_]+) \S.*$`)
	typ := regexp.MustCompile(`^# TYPE ([a-z_]+) (counter|gauge)$`)
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
		if m[1] != family || !typed {
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
	if r.code != 200 || r.header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
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
		`scuttle_http_requests_total{route="PUT /v1/models/{name}/keys/{key...}",code="200"}`: "1",
		`scuttle_http_requests_total{route="GET /v1/models/{name}",code="404"}`:               "1",
		`scuttle_http_requests_total{route="PATCH /v1/docs/{name}",code="200"}`:               "1",
		`scuttle_http_requests_total{route="",code="404"}`:                                    "1",
		`scuttle_http_watchers`: "0",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
}

func TestMetricsEscaping(t *testing.T) {
	var b strings.Builder
	p := &promWriter{w: &b}
	p.family("x_total", "counter", "Help with a \\ and a\nnewline.")
	p.sample("x_total", 1.5, label{"peer", "a\"b\\c\nd"})
	want := "# HELP x_total Help with a \\\\ and a\\nnewline.\n# TYPE x_total counter\nx_total{peer=\"a\\\"b\\\\c\\nd\"} 1.5\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	parseMetrics(t, b.String())
}

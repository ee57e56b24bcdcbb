package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procRSS returns the resident set size of p and its peak, in bytes, from
// /proc/PID/status.
func procRSS(t *testing.T, p *proc) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	field := func(name string) int64 {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, name+":"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				return kb << 10
			}
		}
		t.Fatalf("no %s in /proc/PID/status", name)
		return 0
	}
	return field("VmRSS"), field("VmHWM")
}

// metric returns the value of an unlabelled series of p's /metrics.
func (p *proc) metric(name string) (float64, error) {
	resp, err := httpClient.Get(p.httpURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// TestWatchStalledRSS: two watchers that never read (a raw connection
// that sends the request and nothing more) while 900 KB values are
// written keep the serve process's memory bounded: each stream holds at
// most WatchMaxBytes (16 MiB) before it is dropped.
func TestWatchStalledRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 270 MB through a serve process")
	}
	p := newProcs(t, 1)[0]
	p.data = "" // in memory: the model keeps the latest value of 4 keys
	p.start()
	p.mustCall("PUT", "/v1/models/big/keys/k0", `0`)
	for range 2 {
		c, err := net.Dial("tcp", p.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/models/big/watch HTTP/1.1\r\nHost: %s\r\n\r\n", p.httpAddr)
	}
	waitUntil(t, "two watchers", 20*time.Second, func() (bool, string) {
		n, err := p.metric("scuttle_http_watchers")
		return n == 2, fmt.Sprint(n, err)
	})
	_, before := procRSS(t, p)
	value := `"` + strings.Repeat("x", 900<<10) + `"`
	const writes = 300
	for i := range writes {
		p.mustCall("PUT", fmt.Sprintf("/v1/models/big/keys/k%d", i%4), value)
	}
	rss, peak := procRSS(t, p)
	t.Logf("serve RSS with 2 stalled watchers after %d writes of 900 KB: VmRSS %d MiB, VmHWM %d MiB (before the writes: %d MiB)",
		writes, rss>>20, peak>>20, before>>20)
	if peak > 256<<20 {
		t.Errorf("peak RSS %d MiB, over 256 MiB: the stalled watchers' queues are not bounded", peak>>20)
	}
	// Each stream ends once its stalled write times out (WriteWait).
	waitUntil(t, "both stalled watchers dropped", 60*time.Second, func() (bool, string) {
		n, err := p.metric("scuttle_http_watchers_dropped_total")
		w, _ := p.metric("scuttle_http_watchers")
		return n == 2 && w == 0, fmt.Sprintf("dropped %v (%v), open %v", n, err, w)
	})
}

// sseClient reads one watch stream of a serve process as an EventSource
// does: events with their ids.
type sseClient struct {
	sc     *bufio.Scanner
	lastID string
	body   io.Closer
}

func openSSE(t *testing.T, url, lastID string) *sseClient {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %s: %s", resp.Status, b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseClient{sc: bufio.NewScanner(resp.Body), body: resp.Body}
}

// next returns the data of the next event, keeping its id.
func (c *sseClient) next(t *testing.T) string {
	t.Helper()
	var data, id string
	for c.sc.Scan() {
		line := c.sc.Text()
		switch {
		case line == "" && data != "":
			if id == "" {
				t.Fatalf("event %s without an id", data)
			}
			c.lastID = id
			return data
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
	t.Fatalf("stream ended: %v", c.sc.Err())
	return ""
}

// keyValue returns `key=value` of a model change's JSON.
func keyValue(data string) string {
	k := data[strings.Index(data, `"key":"`)+7:]
	k = k[:strings.IndexByte(k, '"')]
	v := data[strings.Index(data, `"value":`)+8:]
	v = v[:strings.IndexByte(v, ',')]
	return k + "=" + v
}

// TestWatchAcrossRestart: a watch resumed by Last-Event-ID after the node
// restarted misses and repeats nothing, and `scuttle watch` reconnects
// across the restart by itself and prints every change once.
func TestWatchAcrossRestart(t *testing.T) {
	p := newProcs(t, 1)[0]
	p.start()
	p.mustCall("PUT", "/v1/models/m/keys/a", `0`)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", "-addr", p.httpAddr, "m"}, &out, &errOut) }()
	w := openSSE(t, p.httpURL+"/v1/models/m/watch", "")
	waitUntil(t, "two watchers", 20*time.Second, func() (bool, string) {
		n, err := p.metric("scuttle_http_watchers")
		return n == 2, fmt.Sprint(n, err)
	})
	for i := 1; i <= 3; i++ {
		p.mustCall("PUT", fmt.Sprintf("/v1/models/m/keys/k%d", i), strconv.Itoa(i))
	}
	for i := 1; i <= 3; i++ {
		if got, want := keyValue(w.next(t)), fmt.Sprintf("k%d=%d", i, i); got != want {
			t.Fatalf("live: %s, want %s", got, want)
		}
	}
	id := w.lastID
	w.body.Close()

	p.stop()
	p.start()
	p.mustCall("PUT", "/v1/models/m/keys/k4", `4`)
	p.mustCall("PUT", "/v1/models/m/keys/k1", `10`)
	w = openSSE(t, p.httpURL+"/v1/models/m/watch", id)
	p.mustCall("PUT", "/v1/models/m/keys/k5", `5`)
	var got []string
	for range 3 {
		got = append(got, keyValue(w.next(t)))
	}
	if want := "k4=4 k1=10 k5=5"; strings.Join(got, " ") != want {
		t.Errorf("resumed after a restart: %v, want %s", got, want)
	}

	lines := func() []string { return strings.Fields(out.String()) }
	waitUntil(t, "scuttle watch printed 6 changes", 30*time.Second, func() (bool, string) {
		return len(lines()) >= 6, out.String() + errOut.String()
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("scuttle watch: exit %d, stderr %s", code, errOut.String())
	}
	var printed []string
	for _, l := range lines() {
		printed = append(printed, keyValue(l))
	}
	if want := "k1=1 k2=2 k3=3 k4=4 k1=10 k5=5"; strings.Join(printed, " ") != want {
		t.Errorf("scuttle watch printed %v, want %s", printed, want)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/scuttle-go/scuttle/api"
)

// The tests in this file drive the console (/ui/) and the browser replica
// (/ui/replica.html) in headless Chromium against a cluster of scuttle
// serve processes. Without a Chromium they skip.

// chromiumPath returns the browser to drive, or "" if there is none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium; tab opens pages in it and records
// what they report as errors.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	errors   []string    // console errors, exceptions and error log entries, guarded by mu
	expected [][2]string // (page URL prefix, text) of the errors a test provokes, guarded by mu
}

// expect lets checkErrors pass over errors of pages under prefix that hold
// text: those a test provokes on purpose.
func (b *browser) expect(prefix, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected = append(b.expected, [2]string{prefix, text})
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium on PATH: install Debian's chromium package (apt-get install -y chromium) to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return &browser{t: t, ctx: ctx}
}

// tab opens url in a new tab and returns the tab's context; setup runs
// before the page loads.
func (b *browser) tab(url string, setup ...func(ctx context.Context) error) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	record := func(format string, args ...any) {
		b.mu.Lock()
		b.errors = append(b.errors, url+": "+fmt.Sprintf(format, args...))
		b.mu.Unlock()
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				record("console.error: %s", strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			record("exception at %s:%d: %s", d.URL, d.LineNumber, desc)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				record("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
	}); err != nil {
		b.t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		b.t.Fatalf("enabling the log: %v", err)
	}
	for _, f := range setup {
		if err := f(ctx); err != nil {
			b.t.Fatalf("setting up the tab for %s: %v", url, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("opening %s: %v", url, err)
	}
	return ctx
}

// checkErrors fails the test on any error a page reported.
func (b *browser) checkErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
next:
	for _, e := range b.errors {
		for _, x := range b.expected {
			if strings.HasPrefix(e, x[0]) && strings.Contains(e, x[1]) {
				continue next
			}
		}
		b.t.Errorf("browser error: %s", e)
	}
}

// eval evaluates a JavaScript expression in a tab.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls a boolean JavaScript expression every 10 ms until it holds,
// and returns how long that took.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("not true after %s: %s (%s; err %v)", timeout, what, expr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// screenshot writes a PNG of the tab to the test's temp dir, and to
// $SCUTTLE_SCREENSHOTS if set (how docs/console.png is made).
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{dir}
	if d := os.Getenv("SCUTTLE_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// TestBrowser runs three scuttle serve processes and a headless Chromium:
// the console on n1 shows the members and links, a key written on n2
// within a second, a key set with its form on every node, a phone-sized
// dark page, an emitter's tail, a lock's holder and a JSON document live,
// the token page for an API that answers 401, and n3 killed as failed; the
// browser replica on n2 converges both ways, also after its WebSocket is
// cut, both sides write, and it is restored. Any error in the pages'
// consoles fails it.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a browser")
	}
	b := newBrowser(t)
	shots := t.TempDir()
	procs := newProcs(t, 3)
	for _, p := range procs {
		p.start()
	}
	waitMembers(t, procs, ids(procs))
	n1, n2, n3 := procs[0], procs[1], procs[2]
	n2.mustCall("PUT", "/v1/models/shared/keys/seed", `"planted on n2"`)
	n1.mustCall("POST", "/v1/events/log", `{"event":"started","args":["test"]}`)
	waitConvergedModel(t, procs, "shared", func(m map[string]any) bool { return m["seed"] != nil })

	console := b.tab(n1.httpURL + "/ui/#model/shared")
	waitJS(t, console, "three members listed", `document.querySelectorAll('#members tbody tr').length === 3`, 10*time.Second)
	waitJS(t, console, "n1's two links drawn", `document.querySelectorAll('#graph line.edge').length === 2 && [...document.querySelectorAll('#members tbody tr')].filter(r => r.cells[3].textContent === 'linked').length === 2`, 10*time.Second)
	waitJS(t, console, "the seed key shown with its writer", `document.querySelector('#model tr[data-key="seed"]')?.cells[2].textContent === 'n2'`, 5*time.Second)

	t.Run("WriteOnAnotherNodeShows", func(t *testing.T) {
		var worst time.Duration
		for i := range 5 {
			key := fmt.Sprintf("from-n2-%d", i)
			start := time.Now()
			n2.mustCall("PUT", "/v1/models/shared/keys/"+key, fmt.Sprintf(`{"i":%d}`, i))
			waitJS(t, console, key+" shown", fmt.Sprintf(`!!document.querySelector('#model tr[data-key="%s"]')`, key), 5*time.Second)
			took := time.Since(start)
			worst = max(worst, took)
			t.Logf("PUT on n2 to row on n1's console: %s", took.Round(time.Millisecond))
		}
		if worst > time.Second {
			t.Errorf("a key written on n2 took %s to show, over 1s", worst)
		}
	})

	t.Run("FormSetReachesEveryNode", func(t *testing.T) {
		eval[bool](t, console, `document.querySelector('#set-key').value = 'from-form'; document.querySelector('#set-value').value = '{"by":"form"}'; true`)
		if _, err := chromedp.Run(console, chromedp.Click(chromedp.CSS("#set-btn"))); err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			waitUntil(t, p.id+" has from-form", 5*time.Second, func() (bool, string) {
				var kb struct{ Value map[string]any }
				err := p.get("/v1/models/shared/keys/from-form", &kb)
				return err == nil && kb.Value["by"] == "form", fmt.Sprint(kb, err)
			})
		}
		waitJS(t, console, "from-form shown with its writer", `(document.querySelector('#model tr[data-key="from-form"]')?.cells[2].textContent) === 'n1'`, 5*time.Second)
	})

	screenshot(t, console, shots, "console.png")

	t.Run("PhoneDark", func(t *testing.T) {
		phone := b.tab(n1.httpURL+"/ui/#model/shared", func(ctx context.Context) error {
			if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 844, DeviceScaleFactor: 1, Mobile: true}); err != nil {
				return err
			}
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
			return err
		})
		waitJS(t, phone, "three members listed", `document.querySelectorAll('#members tbody tr').length === 3 && !!document.querySelector('#model tr[data-key="from-form"]')`, 10*time.Second)
		if dark := eval[bool](t, phone, `matchMedia('(prefers-color-scheme: dark)').matches && getComputedStyle(document.body).backgroundColor !== 'rgb(247, 247, 245)'`); !dark {
			t.Error("the dark theme is not applied")
		}
		if w := eval[int](t, phone, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("the page is %d px wide on a 390 px phone: it scrolls sideways", w)
		}
		screenshot(t, phone, shots, "console-phone-dark.png")
	})

	t.Run("EmitterLocksDoc", func(t *testing.T) {
		eval[bool](t, console, `window.scuttleConsole.select('emitter', 'log'); true`)
		waitJS(t, console, "the emitter's tail", `document.querySelector('#events tbody tr')?.cells[0].textContent === 'started'`, 5*time.Second)
		n3.mustCall("POST", "/v1/events/log", `{"event":"live","args":[1]}`)
		waitJS(t, console, "a live event on top", `document.querySelector('#events tbody tr')?.cells[0].textContent === 'live'`, 5*time.Second)
		n2.mustCall("POST", "/v1/locks/jobs/printer?ttl=1h", "") // its session outlives the test
		waitJS(t, console, "the lock table listed", `!!document.querySelector('#docs tr[data-doc="jobs"]')`, 5*time.Second)
		eval[bool](t, console, `window.scuttleConsole.select('lock', 'jobs'); true`)
		waitJS(t, console, "n2 shown holding the printer", `document.querySelector('#locks tbody tr')?.cells[0].textContent === 'printer' && document.querySelector('#locks tbody tr').cells[1].textContent === 'n2'`, 5*time.Second)
		// A free lock asked for by name is listed too.
		eval[bool](t, console, `const f = document.querySelector('#view form'); f.lock.value = 'scanner'; f.requestSubmit(); true`)
		waitJS(t, console, "the free scanner listed", `[...document.querySelectorAll('#locks tbody tr')].some(r => r.cells[0].textContent === 'scanner' && r.cells[1].textContent === 'free')`, 5*time.Second)
		n1.mustCall("PATCH", "/v1/docs/store", `{"$set": {"users.ada.logins": 1}}`)
		waitJS(t, console, "the JSON document listed", `!!document.querySelector('#docs tr[data-doc="store"]')`, 5*time.Second)
		eval[bool](t, console, `window.scuttleConsole.select('doc', 'store'); true`)
		waitJS(t, console, "the JSON document shown", `JSON.parse(document.querySelector('#doc-json').textContent).users.ada.logins === 1`, 5*time.Second)
		n2.mustCall("PATCH", "/v1/docs/store", `{"$inc": {"users.ada.logins": 1}}`)
		waitJS(t, console, "n2's increment shown live", `JSON.parse(document.querySelector('#doc-json').textContent).users.ada.logins === 2 && document.querySelector('#view tbody tr')?.cells[2].textContent === 'n2'`, 5*time.Second)
		eval[bool](t, console, `window.scuttleConsole.select('model', 'shared'); true`)
		waitJS(t, console, "back on the model", `!!document.querySelector('#model tr[data-key="from-form"]')`, 5*time.Second)
	})

	t.Run("BrowserReplica", func(t *testing.T) {
		page := b.tab(n2.httpURL + "/ui/replica.html?model=shared")
		waitJS(t, page, "the replica synced", `window.replica.connected() && window.replica.syncs() > 0 && window.replica.model.get('seed') === 'planted on n2'`, 10*time.Second)
		// The page writes, the cluster sees it.
		start := time.Now()
		eval[bool](t, page, `window.replica.model.set('from-page', {n: 1}); true`)
		waitConvergedModel(t, procs, "shared", func(m map[string]any) bool { return m["from-page"] != nil })
		t.Logf("page write to every node: %s", time.Since(start).Round(time.Millisecond))
		// The cluster writes, the page sees it.
		start = time.Now()
		n3.mustCall("PUT", "/v1/models/shared/keys/from-n3", `"hi page"`)
		d := waitJS(t, page, "from-n3 in the page", `window.replica.model.get('from-n3') === 'hi page'`, 5*time.Second)
		t.Logf("PUT on n3 to the page's replica (on n2): %s", time.Since(start).Round(time.Millisecond))
		_ = d
		waitJS(t, page, "from-n3 in the page's table", `!!document.querySelector('#keys tr[data-key="from-n3"]')`, 2*time.Second)

		// Cut the WebSocket; both sides write; restore it.
		eval[bool](t, page, `window.replica.goOnline(false); true`)
		waitJS(t, page, "the socket closed", `!window.replica.connected()`, 5*time.Second)
		eval[bool](t, page, `window.replica.model.set('offline-edit', 'made offline'); window.replica.model.set('seed', 'overwritten offline'); true`)
		n1.mustCall("PUT", "/v1/models/shared/keys/while-cut", `"cluster wrote meanwhile"`)
		time.Sleep(300 * time.Millisecond)
		var kb map[string]any
		if err := n2.get("/v1/models/shared/keys/offline-edit", &kb); err == nil {
			t.Fatalf("offline-edit reached n2 while the socket was cut: %v", kb)
		}
		eval[bool](t, page, `window.replica.goOnline(true); true`)
		waitJS(t, page, "the replica back and synced", `window.replica.connected() && window.replica.syncs() > 1`, 10*time.Second)
		waitJS(t, page, "while-cut in the page", `window.replica.model.get('while-cut') === 'cluster wrote meanwhile'`, 5*time.Second)
		snap := waitConvergedModel(t, procs, "shared", func(m map[string]any) bool {
			return m["offline-edit"] == "made offline" && m["seed"] == "overwritten offline"
		})
		// The page holds what every node holds.
		pageJSON := eval[string](t, page, `(() => { const o = {}; for (const k of Object.keys(window.replica.model.store)) { const v = window.replica.model.get(k); if (v !== null) o[k] = v } return JSON.stringify(o) })()`)
		var pageSnap map[string]any
		if err := json.Unmarshal([]byte(pageJSON), &pageSnap); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(snap)
		got, _ := json.Marshal(pageSnap)
		if string(want) != string(got) {
			t.Errorf("the page's replica differs from the nodes':\npage:  %s\nnodes: %s", got, want)
		}
		screenshot(t, page, shots, "replica.png")
	})

	t.Run("TokenRequired", func(t *testing.T) {
		// A node whose API wants a token the console does not have.
		mux := http.NewServeMux()
		mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(api.UI())))
		mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"an API token is required"}` + "\n"))
		})
		hs := httptest.NewServer(mux)
		defer hs.Close()
		b.expect(hs.URL, "401 (Unauthorized)")
		page := b.tab(hs.URL + "/ui/")
		waitJS(t, page, "the token page shown", `getComputedStyle(document.querySelector('#auth')).display !== 'none' && getComputedStyle(document.querySelector('#main')).display === 'none' && document.querySelector('#conn').textContent === 'token required'`, 5*time.Second)
		screenshot(t, page, shots, "token-required.png")
	})

	t.Run("KilledNodeShownFailed", func(t *testing.T) {
		start := time.Now()
		n3.kill()
		waitJS(t, console, "n3 shown failed", `document.querySelector('#members tr[data-member="n3"]')?.dataset.state === 'failed' && document.querySelector('#graph circle[data-member="n3"]').classList.contains('failed')`, 30*time.Second)
		t.Logf("SIGKILL of n3 to failed in the console: %s", time.Since(start).Round(time.Millisecond))
		waitJS(t, console, "n1's link to n3 gone", `document.querySelectorAll('#graph line.edge').length === 1`, 10*time.Second)
		screenshot(t, console, shots, "console-failed.png")
	})
	b.checkErrors()
}

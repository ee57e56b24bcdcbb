package main

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
)

// start runs the example until the test ends and returns its URL.
func start(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", "", io.Discard, func(u string) { ready <- u }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not serving after 20s")
	}
	return ""
}

// TestRun serves the board and replicates it with two Go clients over the
// WebSocket, as two tabs do with npm scuttlebutt.
func TestRun(t *testing.T) {
	url := start(t)
	for path, want := range map[string]string{"": "shared board", "board.js": "createStream", "ui/vendor/scuttlebutt.js": "scuttlebutt@5.6.15"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET /%s: %s, body without %q", path, resp.Status, want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	tab := func(id string) *model.Model {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"v1/models/board/replicate", nil)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := model.New(id, nil)
		wg.Go(func() {
			stream.NewConn(m, websocket.NetConn(ctx, c, websocket.MessageText), &stream.Options{Codec: stream.JSONLines}).Run(ctx)
		})
		return m
	}
	a, b := tab("tab-a"), tab("tab-b")
	a.Set("note-1", map[string]any{"text": "from a", "by": "tab-a"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, ok := b.Get("note-1"); ok && v.(map[string]any)["text"] == "from a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tab b did not get tab a's note within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTwoTabs opens the board in two tabs of headless Chromium: a note
// added in one shows in the other, and an edit made offline merges.
func TestTwoTabs(t *testing.T) {
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium on PATH: install Debian's chromium package (apt-get install -y chromium) to run the browser test")
	}
	url := start(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var mu sync.Mutex
	var errs []string
	open := func() context.Context {
		ctx, _ := chromedp.NewContext(bctx)
		if err := chromedp.Listen(ctx, func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch ev := ev.(type) {
			case *runtime.EventExceptionThrown:
				errs = append(errs, ev.ExceptionDetails.Text)
			case *runtime.EventConsoleAPICalled:
				if ev.Type == runtime.ConsoleAPICalledTypeError {
					errs = append(errs, "console.error")
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
		return ctx
	}
	wait := func(ctx context.Context, what, expr string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("not true after 5s: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	do := func(ctx context.Context, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js+"; true")); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
	}
	one, two := open(), open()
	wait(one, "tab one connected", `window.board.connected()`)
	wait(two, "tab two connected", `window.board.connected()`)
	do(one, `document.querySelector('#text').value = 'buy milk'; document.querySelector('#add button').click()`)
	wait(two, "the note in tab two", `[...document.querySelectorAll('#notes input')].some(i => i.value === 'buy milk')`)
	// Tab two goes offline and edits; tab one adds; both merge.
	do(two, `document.querySelector('#toggle').click()`)
	wait(two, "tab two offline", `!window.board.connected()`)
	do(two, `document.querySelector('#text').value = 'written offline'; document.querySelector('#add button').click()`)
	do(one, `document.querySelector('#text').value = 'written meanwhile'; document.querySelector('#add button').click()`)
	do(two, `document.querySelector('#toggle').click()`)
	for _, ctx := range []context.Context{one, two} {
		wait(ctx, "both notes in both tabs", `['written offline', 'written meanwhile', 'buy milk'].every(v => Object.values(window.board.model.toJSON()).some(n => n && n.text === v))`)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Errorf("browser error: %s", e)
	}
}

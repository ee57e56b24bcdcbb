// Browser serves a shared notes board from one scuttle node: every browser
// tab that opens it holds a replica of the model "board" (npm scuttlebutt
// in the page, over the node's /v1/models/board/replicate WebSocket), so
// two tabs edit the same notes, and a tab taken offline merges its edits
// when it comes back. The node's console is at /ui/.
//
//	go run ./examples/browser            then open http://127.0.0.1:8080/ in two tabs
//	go run ./examples/browser -join 127.0.0.1:7947   the same, as a member of a cluster
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/scuttle-go/scuttle/api"
	"github.com/scuttle-go/scuttle/node"
)

//go:embed static
var static embed.FS

func main() {
	addr := flag.String("http", "127.0.0.1:8080", "HTTP address of the page and the node's API")
	join := flag.String("join", "", "gossip address of a cluster member to join (host:port); empty for a node of its own")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *addr, *join, os.Stdout, nil)
	if err != nil {
		log.Fatal(err)
	}
}

// run serves the board on addr until ctx ends; ready, if not nil, gets the
// address it listens on.
func run(ctx context.Context, addr, join string, w io.Writer, ready func(url string)) error {
	cfg := &node.Config{
		ID:         "board-node",
		BindAddr:   "127.0.0.1:0",
		GossipAddr: "127.0.0.1:0",
		Memberlist: memberlist.DefaultLocalConfig(),
		Logger:     slog.New(slog.DiscardHandler),
	}
	if join != "" {
		cfg.Join = strings.Split(join, ",")
	}
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	srv, err := api.New(n, nil)
	if err != nil {
		return err
	}
	defer srv.Close()
	page, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("/", srv) // the API, the console (/ui/) and /ui/vendor/scuttlebutt.js
	mux.Handle("GET /{$}", http.FileServerFS(page))
	mux.Handle("GET /board.js", http.FileServerFS(page))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(w, "the board is at %s: open it in two tabs (the console is at %sui/)\n", url, url)
	if ready != nil {
		ready(url)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	srv.Close() // ends the replicas' sockets and the watches
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/scuttle-go/scuttle/api"
	"github.com/scuttle-go/scuttle/node"
)

var serveCommand = &command{
	name:    "serve",
	summary: "run a cluster node and its HTTP API until SIGINT or SIGTERM",
	setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
		var o serveOptions
		o.flags(fs)
		fs.String(configFlag, "", "file of settings, one \"flag = value\" a line (the flag names without the dash); "+
			"the command line wins over $SCUTTLE_<FLAG> variables (SCUTTLE_LOG_FORMAT=json), which win over the file")
		return func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			if err := layer(fs, os.LookupEnv); err != nil {
				return err
			}
			o.secretEnv = os.Getenv("SCUTTLE_SECRET")
			return serve(ctx, stdout, o)
		}
	},
}

// serveOptions are serve's flags.
type serveOptions struct {
	id, data                  string
	memory                    bool
	bind, advertise           string
	gossip, gossipAdvertise   string
	join                      []string
	httpAddr                  string
	httpTokenFile             string
	watchMaxBytes             int64 // api.Config.WatchMaxBytes
	sessionTTL                time.Duration
	maxSessions               int
	maxSessionLocks           int
	httpCert, httpKey         string
	certFile, keyFile, caFile string
	secretFile                string
	leave                     bool
	network, logLevel         string
	logFormat                 string
	reapAfter                 time.Duration
	maxDocuments              int
	secretEnv                 string // $SCUTTLE_SECRET
	// ready, if set, is called once the node and the API are up (tests).
	ready func(n *node.Node, httpAddr string)
}

// flags defines serve's flags on fs, to be parsed into o.
func (o *serveOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.id, "id", "", "the node's id, unique in the cluster and kept across restarts (default: the host name)")
	fs.StringVar(&o.data, "data", "", "data directory: the node's id and one log per document (default ./scuttle-data/<id>)")
	fs.BoolVar(&o.memory, "memory", false, "keep nothing on disk: a restarted node starts empty and gets everything from its peers")
	fs.StringVar(&o.bind, "bind", node.DefaultBindAddr, "replication listen address (TCP)")
	fs.StringVar(&o.advertise, "advertise", "", "replication address peers dial, if not -bind's (NAT)")
	fs.StringVar(&o.gossip, "gossip", node.DefaultGossipAddr, "gossip (memberlist) listen address, TCP and UDP")
	fs.StringVar(&o.gossipAdvertise, "gossip-advertise", "", "gossip address other members use, if not -gossip's (NAT)")
	fs.Func("join", "gossip address of a member to join (host:port); repeat or separate with commas", func(s string) error {
		for a := range strings.SplitSeq(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.join = append(o.join, a)
			}
		}
		return nil
	})
	fs.StringVar(&o.httpAddr, "http", "127.0.0.1:7948", "HTTP API listen address, with the web console at /ui/; without -http-token-file the API has no authentication, keep it on a trusted interface")
	fs.StringVar(&o.httpTokenFile, "http-token-file", "", "file holding the bearer token every API request must carry (except /healthz and /readyz)")
	fs.Int64Var(&o.watchMaxBytes, "watch-max-bytes", api.DefaultWatchMaxBytes, "bytes a watch stream may hold for a client that reads slower than writes arrive; past it the stream ends, telling the client to resume from its last id")
	fs.DurationVar(&o.sessionTTL, "session-ttl", api.DefaultSessionTTL, fmt.Sprintf("TTL of an API lock session created without one (%v to %v): how long its locks stay held after the client's last renewal", api.MinSessionTTL, api.MaxSessionTTL))
	fs.IntVar(&o.maxSessions, "max-sessions", api.DefaultMaxSessions, "the most lock sessions the API holds open at once; creating one more is a 503")
	fs.IntVar(&o.maxSessionLocks, "max-session-locks", api.DefaultMaxSessionLocks, "the most locks one lock session holds; a request for one more is a 409")
	fs.StringVar(&o.httpCert, "http-tls-cert", "", "PEM certificate: serve the API over HTTPS")
	fs.StringVar(&o.httpKey, "http-tls-key", "", "PEM private key of -http-tls-cert")
	fs.StringVar(&o.certFile, "tls-cert", "", "PEM certificate of this node, for mutual TLS on replication links; it must name the node id (SAN DNS ID or URI scuttle://ID)")
	fs.StringVar(&o.keyFile, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&o.caFile, "tls-ca", "", "PEM CA certificates: peers must present a certificate it signed")
	fs.StringVar(&o.secretFile, "secret-file", "", "file holding the cluster's shared secret (at least 16 random bytes; also $SCUTTLE_SECRET)")
	fs.BoolVar(&o.leave, "leave", true, "leave the cluster gracefully on SIGINT or SIGTERM; false stops as a crash would (for a quick restart)")
	fs.StringVar(&o.network, "network", "lan", "failure detector timers: lan, wan or local (memberlist presets)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object a line)")
	fs.DurationVar(&o.reapAfter, "reap-after", node.DefaultReapAfter, "how long a failed or departed member stays in status before it is forgotten (force-leave: at once)")
	fs.IntVar(&o.maxDocuments, "max-documents", node.DefaultMaxDocuments, "the most documents the node holds, of every type: creating one more is a 409 naming the cap, and names from peers past it are logged and not opened; give every node the same")
}

// serve runs one node and its HTTP API until ctx ends, then leaves the
// cluster (with -leave), stops the API and closes the node.
func serve(ctx context.Context, stdout io.Writer, o serveOptions) error {
	cfg, err := o.nodeConfig(stdout)
	if err != nil {
		return err
	}
	apiCfg, tlsConf, err := o.apiConfig(cfg.Logger)
	if err != nil {
		return err
	}
	// Every address is taken before the node exists: a taken or invalid
	// -http fails here, before any member has seen this node. node.New
	// binds replication and gossip before it joins.
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP API: %w", err)
	}
	defer ln.Close()
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	metrics := api.NewMetrics()
	cfg.Observer = metrics // fsync latency and replication lag
	apiCfg.Metrics = metrics
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	srv, err := api.New(n, apiCfg)
	if err != nil {
		n.Close()
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute, // bodies are small; watches and lock waits have none
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	cfg.Logger.Info("serving", "id", n.ID(), "http", ln.Addr().String(), "addr", n.Addr(), "gossip", n.GossipAddr(), "data", cfg.DataDir)
	if o.ready != nil {
		o.ready(n, ln.Addr().String())
	}

	var serveErr error
	leave := o.leave
	select {
	case <-ctx.Done():
		cfg.Logger.Info("stopping", "leave", o.leave)
	case serveErr = <-served:
		serveErr = fmt.Errorf("HTTP API: %w", serveErr)
	case serveErr = <-n.Fatal():
		// Refused by the cluster: we never joined, so there is nothing
		// to leave, and a leave would speak for the member holding our id.
		cfg.Logger.Error("refused by the cluster", "err", serveErr)
		leave = false
	}
	const timeout = 10 * time.Second
	// Stop taking requests first, so that nothing is written that would
	// not replicate; watches end at once.
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	cancel()
	var leaveErr error
	if leave {
		lctx, cancel := context.WithTimeout(context.Background(), timeout)
		leaveErr = n.Leave(lctx)
		cancel()
		if leaveErr != nil {
			cfg.Logger.Warn("leave", "err", leaveErr)
		}
	}
	closeErr := n.Close()
	cfg.Logger.Info("stopped")
	return errors.Join(serveErr, closeErr)
}

// apiConfig turns the API's flags into its Config and, with
// -http-tls-cert, the TLS configuration to serve it with.
func (o serveOptions) apiConfig(log *slog.Logger) (*api.Config, *tls.Config, error) {
	switch {
	case o.watchMaxBytes < 0:
		return nil, nil, fmt.Errorf("-watch-max-bytes %d is negative", o.watchMaxBytes)
	case o.sessionTTL != 0 && (o.sessionTTL < api.MinSessionTTL || o.sessionTTL > api.MaxSessionTTL):
		return nil, nil, fmt.Errorf("-session-ttl %v is not in [%v, %v]", o.sessionTTL, api.MinSessionTTL, api.MaxSessionTTL)
	case o.maxSessions < 0:
		return nil, nil, fmt.Errorf("-max-sessions %d is negative", o.maxSessions)
	case o.maxSessionLocks < 0:
		return nil, nil, fmt.Errorf("-max-session-locks %d is negative", o.maxSessionLocks)
	}
	cfg := &api.Config{Logger: log, WatchMaxBytes: o.watchMaxBytes,
		SessionTTL: o.sessionTTL, MaxSessions: o.maxSessions, MaxSessionLocks: o.maxSessionLocks}
	if o.httpTokenFile != "" {
		b, err := os.ReadFile(o.httpTokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("-http-token-file: %w", err)
		}
		if cfg.Token = bytes.TrimSpace(b); len(cfg.Token) == 0 {
			return nil, nil, fmt.Errorf("-http-token-file %s is empty", o.httpTokenFile)
		}
	}
	if (o.httpCert == "") != (o.httpKey == "") {
		return nil, nil, errors.New("-http-tls-cert and -http-tls-key go together")
	}
	if o.httpCert == "" {
		return cfg, nil, nil
	}
	pair, err := tls.LoadX509KeyPair(o.httpCert, o.httpKey)
	if err != nil {
		return nil, nil, fmt.Errorf("-http-tls-cert: %w", err)
	}
	return cfg, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// nodeConfig turns the flags into the node's Config.
func (o serveOptions) nodeConfig(logTo io.Writer) (*node.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch o.logFormat {
	case "text", "":
		handler = slog.NewTextHandler(logTo, opts)
	case "json":
		handler = slog.NewJSONHandler(logTo, opts)
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", o.logFormat)
	}
	if o.reapAfter < 0 {
		return nil, fmt.Errorf("-reap-after %v is negative", o.reapAfter)
	}
	if o.maxDocuments < 0 {
		return nil, fmt.Errorf("-max-documents %d is negative", o.maxDocuments) // 0: the default
	}
	cfg := &node.Config{
		ID:                  o.id,
		BindAddr:            o.bind,
		AdvertiseAddr:       o.advertise,
		GossipAddr:          o.gossip,
		GossipAdvertiseAddr: o.gossipAdvertise,
		Join:                o.join,
		CertFile:            o.certFile,
		KeyFile:             o.keyFile,
		CAFile:              o.caFile,
		Logger:              slog.New(handler),
		ReapAfter:           o.reapAfter,
		MaxDocuments:        o.maxDocuments,
	}
	switch o.network {
	case "lan":
		cfg.Memberlist = memberlist.DefaultLANConfig()
	case "wan":
		cfg.Memberlist = memberlist.DefaultWANConfig()
	case "local":
		cfg.Memberlist = memberlist.DefaultLocalConfig()
	default:
		return nil, fmt.Errorf("-network %q: want lan, wan or local", o.network)
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	if err := node.CheckName(cfg.ID); err != nil {
		return nil, fmt.Errorf("-id: %w", err)
	}
	switch {
	case o.memory && o.data != "":
		return nil, errors.New("-memory and -data exclude each other")
	case o.memory:
	case o.data != "":
		cfg.DataDir = o.data
	default:
		cfg.DataDir = filepath.Join("scuttle-data", cfg.ID)
	}
	secret := []byte(o.secretEnv)
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return nil, fmt.Errorf("-secret-file: %w", err)
		}
		secret = bytes.TrimRight(b, "\r\n")
		if fi, err := os.Stat(o.secretFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			// Not refused, as ssh refuses an open key: an operator may
			// share it through a group on purpose. Said at every start.
			cfg.Logger.Warn("the secret file is readable by others than its owner: chmod 600 it", "file", o.secretFile, "mode", fi.Mode().Perm().String())
		}
	}
	if len(secret) > 0 {
		if len(secret) < node.MinSecretSize {
			return nil, fmt.Errorf("secret of %d bytes: want at least %d random bytes (head -c 32 /dev/urandom | base64)", len(secret), node.MinSecretSize)
		}
		cfg.Secret = secret
	}
	return cfg, nil
}

// defaultID is the host name if it is a valid node id, else "node".
func defaultID() string {
	h, err := os.Hostname()
	if err != nil {
		return "node"
	}
	h, _, _ = strings.Cut(h, ".")
	if node.CheckName(h) != nil {
		return "node"
	}
	return h
}

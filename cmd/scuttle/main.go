// Command scuttle runs scuttle replicas from the command line.
//
// Usage:
//
//	scuttle <command> [flags]
//
// The commands are:
//
//	demo    three replicas over TCP loopback: writes, a partition, a heal,
//	        a crash and a restart from a log; -cluster: three serve processes
//	serve   run a cluster node and its HTTP API
//	get     print a model, one key, an emitter's events, or a JSON
//	        document or a path of it (-doc)
//	set     set a key of a model
//	del     delete a key of a model
//	patch   apply MongoDB update operators to a JSON document, atomically
//	watch   print a model's changes, an emitter's events or a JSON
//	        document's changes (-doc) live
//	emit    emit an event
//	call    call a function registered in the cluster by name
//	lock    hold a lock while a command runs (scuttle lock TABLE NAME -- CMD
//	        ARGS...), or until interrupted; release it or show its holders
//	status  print a node's members, links, documents and traffic
//	force-leave
//	        forget a failed member on every node now
//	version print the version from the build information (also -version)
//	help    print this help, or a command's flags: scuttle help demo
//
// The client commands (get, set, del, patch, watch, emit, call, lock,
// status, force-leave) talk to a node's HTTP API at -addr (default $SCUTTLE_ADDR or
// 127.0.0.1:7948), sending the bearer token of -token-file (or
// $SCUTTLE_TOKEN) if the API has one; -ca-file verifies an https:// API
// with a private CA.
//
// Run "scuttle help <command>" or "scuttle <command> -h" for a command's
// flags. The exit status is 0 on success, 1 if the command failed, and 2 for
// a usage error; scuttle lock with a command exits with the command's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses of run.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// command is one subcommand. A new subcommand (serve, get, set...) is one
// more entry in commands: a flag set and a run function.
type command struct {
	name    string
	args    string // what follows the flags in the usage line, if anything
	summary string // one line for the command list
	help    string // more for the command's usage, if anything: examples
	hidden  bool   // left out of the command list (internal commands)
	// setup defines the command's flags on fs and returns the function that
	// runs the command once they are parsed, with the remaining arguments.
	setup func(fs *flag.FlagSet) (run func(ctx context.Context, args []string, stdout io.Writer) error)

	// A client command (client.go) sets client in place of setup, and the
	// fields below for the preamble they share (see setupClient): check
	// the arguments, make the client of -addr, bound the request.
	client func(fs *flag.FlagSet) clientRun
	nargs  arity // the positional arguments
	// flagArgs are the positional arguments with a boolean flag that
	// switches the document type (-events, -doc), by flag name; at most
	// one of them may be set.
	flagArgs map[string]arity
	waits    bool // the request waits on purpose: no requestTimeout
}

// commands lists the subcommands in the order help prints them.
var commands = []*command{
	demoCommand,
	serveCommand,
	getCommand,
	setCommand,
	delCommand,
	patchCommand,
	watchCommand,
	emitCommand,
	callCommand,
	lockCommand,
	statusCommand,
	forceLeaveCommand,
	versionCommand,
	demoReplicaCommand,
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run runs the command line args (without the program name) and returns the
// exit status. Everything goes to stdout and stderr, never to os.Stdout
// directly, so that tests can run it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch name := args[0]; name {
	case "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			c := lookup(args[1])
			if c == nil {
				fmt.Fprintf(stderr, "scuttle help: unknown command %q\n", args[1])
				return exitUsage
			}
			fs, _ := c.newFlags(stdout)
			fs.Usage()
			return exitOK
		}
		usage(stdout)
		return exitOK
	default:
		c := lookup(name)
		if c == nil {
			fmt.Fprintf(stderr, "scuttle: unknown command %q\n", name)
			usage(stderr)
			return exitUsage
		}
		fs, runc := c.newFlags(stderr)
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage // the flag package has printed the error and usage
		}
		if err := runc(ctx, fs.Args(), stdout); err != nil {
			var ec *exitCodeError
			if errors.As(err, &ec) { // a command's status (scuttle lock -- CMD)
				if ec.err != nil {
					fmt.Fprintf(stderr, "scuttle %s: %v\n", c.name, ec.err)
				}
				return ec.code
			}
			fmt.Fprintf(stderr, "scuttle %s: %v\n", c.name, err)
			return exitFail
		}
		return exitOK
	}
}

// newFlags returns c's flag set, printing its errors and usage to w.
func (c *command) newFlags(w io.Writer) (*flag.FlagSet, func(context.Context, []string, io.Writer) error) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(w)
	var runc func(context.Context, []string, io.Writer) error
	if c.client != nil {
		runc = c.setupClient(fs)
	} else {
		runc = c.setup(fs)
	}
	fs.Usage = func() {
		line := "scuttle " + c.name + " [flags]"
		if c.args != "" {
			line += " " + c.args
		}
		fmt.Fprintf(w, "usage: %s\n\n%s\n\n", line, c.summary)
		if c.help != "" {
			fmt.Fprintf(w, "%s\n\n", c.help)
		}
		fmt.Fprintf(w, "flags:\n")
		fs.PrintDefaults()
	}
	return fs, runc
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("scuttle replicates data the way Scuttlebutt does.\n\n")
	b.WriteString("usage: scuttle <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(&b, "  %-8s %s\n", "help", "print this help, or a command's flags: scuttle help <command>")
	io.WriteString(w, b.String())
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/scuttle-go/scuttle/node"
)

var versionCommand = &command{
	name:    "version",
	summary: "print the program's version, from its build information (also scuttle -version)",
	setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
		return func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			_, err := io.WriteString(stdout, versionString()+"\n")
			return err
		}
	},
}

// versionString describes the build from runtime/debug's build
// information: the module version (a tag when built with go install
// module@version, "(devel)" from a checkout), the VCS revision and time
// and whether the tree was modified (go build in a checkout), and the Go
// version.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "scuttle (no build information)"
	}
	return formatVersion(bi)
}

func formatVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "scuttle %s", v)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		fmt.Fprintf(&b, " %s", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " %s", t)
		}
		if settings["vcs.modified"] == "true" {
			b.WriteString(" (modified)")
		}
	}
	fmt.Fprintf(&b, " %s", bi.GoVersion)
	if os, arch := settings["GOOS"], settings["GOARCH"]; os != "" && arch != "" {
		fmt.Fprintf(&b, " %s/%s", os, arch)
	}
	return b.String()
}

var forceLeaveCommand = &command{
	name:    "force-leave",
	args:    "<id>",
	summary: "forget a failed member on every node now, instead of after serve's -reap-after",
	help: `A member that failed (or is stuck leaving) is listed in status until
every node reaps it; force-leave forgets it at once on the node of -addr,
which tells every live member. A member that is alive is refused: stop it
first. A forced member that comes back joins again.`,
	nargs: arity{1, 1, "<id>"},
	client: func(fs *flag.FlagSet) clientRun {
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			if err := node.CheckName(args[0]); err != nil {
				return err
			}
			err := c.do(ctx, "POST", "/v1/members"+apiPath(args[0], "force-leave"), nil, nil)
			var ae *apiError
			if errors.As(err, &ae) && ae.code == http.StatusConflict {
				return fmt.Errorf("%s is alive: stop it first (%w)", args[0], err)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s forced out\n", args[0])
			return err
		}
	},
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
)

var callCommand = &command{
	name:    "call",
	args:    "<name> [arg...]",
	summary: "call a function registered in the cluster and print its result (each argument is JSON if it parses as JSON, else a string)",
	nargs:   arity{1, -1, "<name> [arg...]"},
	help: `The node at -addr calls the function on a member that serves it (itself
first) and prints the result as JSON. A handler's error exits 1 with its
message (502 from the API); a name no member serves is a 404.

  scuttle call add 1 2        # 3
  scuttle call greet ada      # "hello ada"`,
	client: func(fs *flag.FlagSet) clientRun {
		asString := fs.Bool("string", false, "take every argument as a string")
		return func(ctx context.Context, c *client, args []string, stdout io.Writer) error {
			in := []json.RawMessage{}
			for _, a := range args[1:] {
				in = append(in, jsonArg(a, *asString))
			}
			b, err := json.Marshal(in)
			if err != nil {
				return err
			}
			var out struct {
				Result json.RawMessage `json:"result"`
			}
			if err := c.do(ctx, "POST", "/v1/rpc"+apiPath(args[0]), b, &out); err != nil {
				return err
			}
			// Print the result as the API sent it, indented: numbers stay
			// as written.
			dec := json.NewDecoder(bytes.NewReader(out.Result))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return err
			}
			return printJSON(stdout, v)
		}
	},
}

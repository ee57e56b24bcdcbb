package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeCommands parses every scuttle command line in the README's
// shell examples with the command's flags: unknown flags, and flags
// written after the arguments (which the flag package takes for
// arguments), fail here rather than for a reader.
func TestReadmeCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), "") // continued lines
	line := regexp.MustCompile(`(?m)^\s*(?:.*;\s*)?scuttle ([a-z-]+)((?: [^#;&\n]*)?)`)
	checked := 0
	for _, m := range line.FindAllStringSubmatch(text, -1) {
		c := lookup(m[1])
		if c == nil {
			continue // prose, or a program of another name
		}
		args, ok := shellWords(strings.TrimSpace(m[2]))
		if !ok {
			t.Errorf("README: cannot split %q", m[0])
			continue
		}
		args = expandShell(args)
		fs, _ := c.newFlags(io.Discard)
		if err := fs.Parse(args); err != nil {
			t.Errorf("README: scuttle %s %s: %v", m[1], strings.Join(args, " "), err)
			continue
		}
		for _, a := range fs.Args() {
			if a == "--" {
				break // a command's own arguments follow (scuttle lock)
			}
			if strings.HasPrefix(a, "-") && len(a) > 1 && a[1] >= 'a' && a[1] <= 'z' {
				t.Errorf("README: scuttle %s %s: flag %s after the arguments is taken as an argument", m[1], strings.Join(args, " "), a)
			}
		}
		if c.nargs.names != "" && len(c.flagArgs) == 0 {
			if err := c.nargs.check(fs.Args()); err != nil {
				t.Errorf("README: scuttle %s %s: %v", m[1], strings.Join(args, " "), err)
			}
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("checked only %d command lines in the README", checked)
	}
}

// shellWords splits s as sh would for the README's simple lines: words
// separated by spaces, single and double quotes.
func shellWords(s string) (words []string, ok bool) {
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case r == '\\':
			return nil, false
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, false
	}
	if in {
		words = append(words, cur.String())
	}
	return words, true
}

// expandShell replaces the README's shell variables with examples.
func expandShell(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.NewReplacer("${i}", "1", "$i", "1").Replace(a)
	}
	return out
}

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Serve's settings come from four layers, the first that sets a flag
// winning:
//
//  1. the command line: -bind 127.0.0.1:7947
//  2. the environment: SCUTTLE_BIND=127.0.0.1:7947, the flag's name in
//     upper case with "-" as "_" (SCUTTLE_SECRET_FILE, SCUTTLE_LOG_FORMAT)
//  3. the config file named by -config (or SCUTTLE_CONFIG)
//  4. the flag's default
//
// The config file holds one "key = value" a line, the keys being the
// flag names without the dash; blank lines and lines starting with "#"
// are skipped, and the value is the rest of the line, spaces trimmed
// (no quoting: a value is taken as written, as on the command line). A
// key may repeat only if its flag may (join); an unknown key is an error,
// so that a typo does not go unnoticed:
//
//	# /etc/scuttle/scuttle.conf
//	id = web1
//	data = /var/lib/scuttle
//	bind = 10.0.0.1:7947
//	gossip = 10.0.0.1:7946
//	join = 10.0.0.2:7946
//	join = 10.0.0.3:7946
//	secret-file = /etc/scuttle/secret
//	log-format = json
//
// The format is the flags' own, so that every flag, including those
// added later, is a key with nothing to keep in step; JSON would need
// types and nesting the flags do not have.

// envPrefix starts the environment variable of each flag.
const envPrefix = "SCUTTLE_"

// envName returns the environment variable of the flag called name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// configFlag is the name of the flag that names the config file.
const configFlag = "config"

// layer sets every flag of fs that the command line left unset from the
// environment (lookup, os.LookupEnv in the program), then from the config
// file the config flag (or its variable) names, if any. fs must have been
// parsed.
func layer(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		v, ok := lookup(envName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("$%s: %w", envName(f.Name), err))
			return
		}
		set[f.Name] = true
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cf := fs.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	defer f.Close()
	return applyConfig(fs, f, path, set)
}

// applyConfig reads a config file from r (named path, for errors) and sets
// the flags of fs that are not in set.
func applyConfig(fs *flag.FlagSet, r io.Reader, path string, set map[string]bool) error {
	sc := bufio.NewScanner(r)
	seen := map[string]bool{}
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return fmt.Errorf("%s:%d: want key = value, got %q", path, line, text)
		}
		f := fs.Lookup(key)
		switch {
		case f == nil:
			return fmt.Errorf("%s:%d: unknown key %q (the keys are serve's flags without the dash)", path, line, key)
		case key == configFlag:
			return fmt.Errorf("%s:%d: a config file cannot name another", path, line)
		case seen[key] && key != "join":
			return fmt.Errorf("%s:%d: key %q given twice", path, line, key)
		}
		seen[key] = true
		if set[key] {
			continue // the command line or the environment set it
		}
		if err := fs.Set(key, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, line, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	return nil
}

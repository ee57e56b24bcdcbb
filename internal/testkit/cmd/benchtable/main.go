// Command benchtable runs the replication workloads of package
// internal/testkit/bench (W1 to W5 on package model, D1 to D3 on package
// doc, P1 and P2 on package filelog) and prints what they measured against
// the project's targets, one row per figure:
//
//	go run ./internal/testkit/cmd/benchtable [-runs 3] [-only W1,W3] [-heapprofile w5] [-cpuprofile cpu] [-version 1] [-compress] [-leaves 1000000]
//
// -version 1 runs the workloads on version 1 of the wire protocol, the
// figures before the compact encoding; -compress has both sides offer
// zstd compression of large frames (off by default, as in stream).
// W1 to W4, D1 and D3 run -runs times over each transport and keep the
// fastest run; W5, D2 and the persistence workloads P1 and P2 run once.
// Each D row follows the W row of the same workload on a Model (D1: W1, D3:
// W3, D2: W5 set locally), and its peers are the peers' figures for that
// workload; the doc rows have no targets of their own yet. -leaves sets
// D2's size (1,000,000 leaves by default, as the issue states it; a smaller
// size for a quicker run). With -heapprofile PREFIX, W5 writes the heap
// profiles of its replicas to PREFIX.local.prof and PREFIX.sync.prof, and
// D2 its document's to PREFIX.doc.prof, for
// `go tool pprof -sample_index=inuse_space`. With -cpuprofile PREFIX, each
// run of each workload writes a CPU profile of its timed part alone (the
// writes and the replication, not the setup and the checks) to
// PREFIX.W1.pipe.1.prof, PREFIX.W1.pipe.2.prof, ...; pprof merges the files
// it is given:
//
//	go build -o benchtable ./internal/testkit/cmd/benchtable
//	./benchtable -only W1 -runs 10 -cpuprofile cpu
//	go tool pprof -top benchtable cpu.W1.pipe.*.prof
//
// A row's status is "ok" when
// the target is met and "below" when it is not. `make bench` runs this
// program.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/internal/testkit/bench"
	"github.com/scuttle-go/scuttle/stream"
)

// timeout bounds one run of one workload.
const timeout = 2 * time.Minute

func main() {
	runs := flag.Int("runs", 3, "runs of W1-W4, D1 and D3 per transport; the fastest is reported")
	only := flag.String("only", "", "comma-separated workloads to run (W1,W1B,...,W5,D1,D2,D3,P1,P2); empty for all")
	heap := flag.String("heapprofile", "", "write W5's heap profiles to `PREFIX`.local.prof and PREFIX.sync.prof, D2's to PREFIX.doc.prof")
	cpu := flag.String("cpuprofile", "", "write a CPU profile of each run's timed part to `PREFIX`.W1.pipe.1.prof, ...")
	leaves := flag.Int("leaves", bench.DefaultD2Leaves, "leaves of D2's document")
	version := flag.Int("version", 0, "wire protocol version of both sides (stream.Options.Version); 0 for the newest")
	compress := flag.Bool("compress", false, "both sides offer zstd compression of large frames (stream.Options.Compress)")
	flag.Parse()
	conn := &stream.Options{Version: *version, Compress: *compress}
	if err := run(os.Stdout, os.Stderr, *runs, *only, profiles{heap: *heap, cpu: *cpu}, *leaves, conn); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// workload is one line of the plan: a workload on a transport, and the rows
// of the table it produces.
type workload struct {
	name  string
	tr    bench.Transport // "" for none
	runs  int
	run   func(context.Context, *bench.Options) (bench.Result, error)
	label string // appended to the transport column
	heap  string // W5, D2: the suffix of its heap profile's file
	keys  int    // Options.Keys; 0 for the workload's default
	rows  func(bench.Result) []row
}

// row is one figure of the table.
type row struct {
	measure string
	result  string
	target  string
	ok      *bool // nil when there is no target
	peers   string
}

// profiles are the prefixes of the profiles' files; "" for none.
type profiles struct {
	heap, cpu string
}

func run(stdout, stderr io.Writer, runs int, only string, prof profiles, leaves int, conn *stream.Options) error {
	if runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", runs)
	}
	if leaves < 1 {
		return fmt.Errorf("-leaves %d: want at least 1", leaves)
	}
	want := map[string]bool{}
	for w := range strings.SplitSeq(only, ",") {
		if w = strings.TrimSpace(strings.ToUpper(w)); w != "" {
			want[w] = true
		}
	}
	start := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " workload\t transport\t measure\t result\t target\t status\t peers")
	fmt.Fprintln(tw, " --------\t ---------\t -------\t ------\t ------\t ------\t -----")
	below := 0
	for _, w := range plan(runs, leaves) {
		if len(want) > 0 && !want[w.name] {
			continue
		}
		r, err := best(w, prof, conn)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", w.name, w.tr, err)
		}
		fmt.Fprintf(stderr, "ran %s\n", r)
		tr := string(w.tr) + w.label
		if w.tr == "" {
			tr = strings.TrimSpace(w.label)
		}
		for _, x := range w.rows(r) {
			status := ""
			if x.ok != nil {
				status = "ok"
				if !*x.ok {
					status = "below"
					below++
				}
			}
			fmt.Fprintf(tw, " %s\t %s\t %s\t %s\t %s\t %s\t %s\n", w.name, tr, x.measure, x.result, x.target, status, x.peers)
		}
	}
	wire := "wire version 2"
	if conn.Version == stream.Version1 {
		wire = "wire version 1"
	}
	if conn.Compress {
		wire += " with zstd"
	}
	fmt.Fprintf(stdout, "\nscuttle workloads, %s %s/%s, GOMAXPROCS=%d, %s, fastest of %d runs (W5, D2, P1, P2: 1 run)\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), wire, runs)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d figures below target; %s in all.\n", below, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// best runs w.runs times and returns the run with the shortest timed part.
// With prof.heap, a workload that measures the heap writes its profile;
// with prof.cpu, every run writes a CPU profile of its timed part.
func best(w workload, prof profiles, conn *stream.Options) (bench.Result, error) {
	var b bench.Result
	for i := range w.runs {
		o := &bench.Options{Transport: w.tr, Keys: w.keys, Conn: conn}
		if prof.heap != "" && w.heap != "" {
			f, err := os.Create(prof.heap + w.heap)
			if err != nil {
				return b, err
			}
			defer f.Close()
			o.HeapProfile = f
		}
		var ct *cpuTimer
		if prof.cpu != "" {
			tr := string(w.tr)
			if tr == "" {
				tr = "local"
			}
			ct = &cpuTimer{path: fmt.Sprintf("%s.%s.%s.%d.prof", prof.cpu, w.name, tr, i+1)}
			o.Timer = ct
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		r, err := w.run(ctx, o)
		cancel()
		if ct != nil {
			err = errors.Join(err, ct.end())
		}
		if err != nil {
			return r, err
		}
		if i == 0 || r.Duration < b.Duration {
			b = r
		}
	}
	return b, nil
}

// cpuTimer is the Timer of a workload's run that profiles its timed part:
// the first StartTimer starts a CPU profile, the StopTimer after it ends
// it, and later calls do nothing (a workload starts its timer again as it
// returns).
type cpuTimer struct {
	path    string
	f       *os.File
	started bool
	err     error
}

// StartTimer starts the profile, the first time.
func (t *cpuTimer) StartTimer() {
	if t.started {
		return
	}
	t.started = true
	if t.f, t.err = os.Create(t.path); t.err != nil {
		return
	}
	if t.err = pprof.StartCPUProfile(t.f); t.err != nil {
		t.f.Close()
		t.f = nil
	}
}

// StopTimer ends the profile, if it runs.
func (t *cpuTimer) StopTimer() {
	if t.f == nil {
		return
	}
	pprof.StopCPUProfile()
	t.err = t.f.Close()
	t.f = nil
}

// end ends the profile if the workload failed while it ran, and returns the
// first error.
func (t *cpuTimer) end() error {
	t.StopTimer()
	return t.err
}

// plan lists the workloads in the order of the table, with their targets;
// D2 writes leaves leaves.
func plan(runs, leaves int) []workload {
	var p []workload
	rate := map[bench.Transport]float64{bench.Pipe: 1_000_000, bench.TCP: 500_000}
	for _, tr := range bench.Transports {
		p = append(p, workload{name: "W1", tr: tr, runs: runs, run: bench.W1, rows: func(r bench.Result) []row {
			return []row{
				atLeast("updates/s", r.UpdatesPerSec, rate[tr], "JS 87k, Yjs 43k"),
				atMost("bytes/update", r.BytesPerUpdate, 45, "Yjs 56.7, JS 217"),
				{measure: "beyond the data", result: num(r.OverheadPerUpdate) + " B/update", target: "-"},
				atMostUnit("CPU/update", float64(r.CPUPerUpdate)/1e3, 0.5, " µs", "sender + receiver"),
			}
		}})
	}
	// The floor under W1's CPU: the base and the stream alone.
	p = append(p, workload{name: "W1B", tr: bench.Pipe, runs: runs, run: bench.W1Base, label: " (base)", rows: func(r bench.Result) []row {
		return []row{
			{measure: "CPU/update", result: num(float64(r.CPUPerUpdate)/1e3) + " µs", target: "-", peers: "W1 with a type that keeps nothing"},
		}
	}})
	for _, tr := range bench.Transports {
		p = append(p, workload{name: "D1", tr: tr, runs: runs, run: bench.D1, label: " (doc)", rows: func(r bench.Result) []row {
			return []row{
				{measure: "patches/s", result: count(r.UpdatesPerSec), target: "-", peers: "W1's workload: Yjs 43k"},
				{measure: "bytes/patch", result: num(r.BytesPerUpdate), target: "-", peers: "Yjs 56.7"},
				{measure: "beyond the data", result: num(r.OverheadPerUpdate) + " B/patch", target: "-"},
				{measure: "CPU/patch", result: num(float64(r.CPUPerUpdate)/1e3) + " µs", target: "-", peers: "sender + receiver"},
			}
		}})
	}
	for _, tr := range bench.Transports {
		p = append(p, workload{name: "W2", tr: tr, runs: runs, run: bench.W2, rows: func(r bench.Result) []row {
			return []row{
				atLeast("updates/s", r.UpdatesPerSec, rate[tr], "as fast as W1"),
				equal("history length", r.HistoryLen, bench.DefaultW2Keys),
				{measure: "heap, A+B", result: kib(r.HeapBytes), target: "O(keys)", peers: fmt.Sprintf("%.0f B/key/replica", r.HeapPerKey)},
			}
		}})
	}
	for _, tr := range bench.Transports {
		p = append(p, workload{name: "W3", tr: tr, runs: runs, run: bench.W3, rows: func(r bench.Result) []row {
			return []row{
				atMostUnit("bytes, both ways", float64(r.Bytes), 7_000, " B", "Yjs 8,646, JS 21,542"),
				{measure: "beyond the data", result: num(r.OverheadPerUpdate) + " B/update", target: "-"},
				atMostDur("time to synced", r.Duration, 5*time.Millisecond, "Yjs 13 ms"),
			}
		}})
	}
	for _, tr := range bench.Transports {
		p = append(p, workload{name: "D3", tr: tr, runs: runs, run: bench.D3, label: " (doc)", rows: func(r bench.Result) []row {
			return []row{
				{measure: "bytes, both ways", result: count(float64(r.Bytes)) + " B", target: "-", peers: "Yjs 8,646"},
				{measure: "beyond the data", result: num(r.OverheadPerUpdate) + " B/patch", target: "-"},
				{measure: "time to synced", result: ms(r.Duration), target: "-", peers: "Yjs 13 ms"},
			}
		}})
	}
	for _, tr := range bench.Transports {
		p = append(p, workload{name: "W4", tr: tr, runs: runs, run: bench.W4, rows: func(r bench.Result) []row {
			return []row{
				atMostDur("time to synced", r.Duration, 100*time.Millisecond, "Yjs 330 ms, JS 370 ms"),
				atMostUnit("bytes, both ways", float64(r.Bytes), 4_300_000, " B", "Yjs 4.59 MB, JS 10.86 MB"),
				{measure: "bytes/update", result: num(r.BytesPerUpdate), target: "-", peers: "beyond the data: " + num(r.OverheadPerUpdate)},
				{measure: "CPU/update", result: num(float64(r.CPUPerUpdate)/1e3) + " µs", target: "-", peers: "sender + receiver"},
			}
		}})
	}
	p = append(p,
		workload{name: "W5", label: "(Set locally)", heap: ".local.prof", runs: 1, run: bench.W5Local, rows: func(r bench.Result) []row {
			return []row{
				atMost("heap bytes/key", r.HeapPerKey, 150, "Yjs 323 / 399"),
				{measure: "Sets/s", result: count(r.UpdatesPerSec), target: "-"},
			}
		}},
		workload{name: "W5", tr: bench.Pipe, label: " (by sync)", heap: ".sync.prof", runs: 1, run: bench.W5Sync, rows: func(r bench.Result) []row {
			return []row{
				atMost("heap bytes/key", r.HeapPerKey, 150, "Yjs 323 / 399"),
				{measure: "sync time", result: ms(r.Duration), target: "-"},
			}
		}},
		workload{name: "D2", label: fmt.Sprintf("(doc, %s leaves)", count(float64(leaves))), heap: ".doc.prof", keys: leaves, runs: 1, run: bench.D2, rows: func(r bench.Result) []row {
			return []row{
				{measure: "heap bytes/leaf", result: num(r.HeapPerKey), target: "-", peers: "Yjs 323 / 399"},
				{measure: "patches/s", result: count(r.UpdatesPerSec), target: "-"},
			}
		}},
	)
	for _, c := range []struct {
		policy  filelog.SyncPolicy
		writers int
	}{
		{filelog.SyncAlways, 1}, {filelog.SyncAlways, 16}, {filelog.SyncInterval, 16}, {filelog.SyncNever, 1},
	} {
		p = append(p, workload{
			name: "P1", label: fmt.Sprintf("filelog sync=%s writers=%d", c.policy, c.writers), runs: 1,
			run: bench.P1(c.policy, c.writers), rows: func(r bench.Result) []row {
				return []row{
					{measure: "Sets/s", result: count(r.UpdatesPerSec), target: "-"},
					{measure: "log bytes/update", result: num(r.BytesPerUpdate), target: "-"},
				}
			}})
	}
	p = append(p, workload{name: "P2", label: "filelog reopen", runs: 1, run: bench.P2, rows: func(r bench.Result) []row {
		return []row{
			{measure: "replay 1M updates", result: ms(r.Duration), target: "-"},
			{measure: "updates/s", result: count(r.UpdatesPerSec), target: "-"},
		}
	}})
	return p
}

func atLeast(measure string, got, target float64, peers string) row {
	ok := got >= target
	return row{measure, count(got), ">= " + count(target), &ok, peers}
}

func atMost(measure string, got, target float64, peers string) row {
	return atMostUnit(measure, got, target, "", peers)
}

func atMostUnit(measure string, got, target float64, unit, peers string) row {
	ok := got <= target
	return row{measure, num(got) + unit, "<= " + num(target) + unit, &ok, peers}
}

// num formats a whole number with separators, anything else to 0.1, or
// 0.01 below 10.
func num(f float64) string {
	switch {
	case f < 10 && f != 0:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case f == float64(int64(f)):
		return count(f)
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

func atMostDur(measure string, got, target time.Duration, peers string) row {
	ok := got <= target
	return row{measure, ms(got), "<= " + ms(target), &ok, peers}
}

func equal(measure string, got, target int) row {
	ok := got == target
	return row{measure, count(float64(got)), "= " + count(float64(target)), &ok, "O(keys), not O(writes)"}
}

// count formats n rounded, with thousands separators.
func count(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func kib(n int64) string {
	return strconv.FormatFloat(float64(n)/1024, 'f', 0, 64) + " KiB"
}

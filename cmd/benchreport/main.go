// Command benchreport reads the output of `go test -bench` over
// ./cmd/dss-sync, followed by that of the other packages' micro-benchmarks
// (as `make bench` writes them to bench.txt), and writes
// bench/REPORT.md, each figure beside the raw ceiling measured in the same
// run, the seed system's published figure and the targets of the issues,
// and bench/sizes.svg, throughput and latency of the archive operations
// against the project's size.
//
//	go run ./cmd/benchreport [-out bench] [bench.txt]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MainPkg is the package whose benchmarks are the report's figures; the
// benchmarks of other packages are listed as micro-benchmarks.
const MainPkg = "github.com/dss-sync/dss-sync/cmd/dss-sync"

// Run is one `go test -bench` output, of one package or several in a row:
// its header and, per benchmark (name without the -GOMAXPROCS suffix), its
// metrics by unit and the package it belongs to.
type Run struct {
	CPU, GOOS, GOARCH string
	Procs             int     // the -N suffix of the benchmark names
	Elapsed           float64 // seconds the MainPkg benchmark process ran, from its "ok" line
	OtherElapsed      float64 // seconds the other packages' benchmark processes ran, together
	Order             []string
	Bench             map[string]map[string]float64
	Pkg               map[string]string // benchmark -> its package
	Notes             []string          // other lines the benchmarks printed (e.g. "load: ...")
}

// Get returns a metric and whether the run has it.
func (r *Run) Get(bench, unit string) (float64, bool) {
	v, ok := r.Bench[bench][unit]
	return v, ok
}

// Parse reads `go test -bench` output. Lines it does not know are skipped.
func Parse(in io.Reader) (*Run, error) {
	r := &Run{Bench: map[string]map[string]float64{}, Pkg: map[string]string{}}
	pkg := ""
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "cpu:"):
			r.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu:"))
		case strings.HasPrefix(line, "goos:"):
			r.GOOS = strings.TrimSpace(strings.TrimPrefix(line, "goos:"))
		case strings.HasPrefix(line, "goarch:"):
			r.GOARCH = strings.TrimSpace(strings.TrimPrefix(line, "goarch:"))
		case strings.HasPrefix(line, "pkg:"):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg:"))
		case strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "ok\t"):
			f := strings.Fields(line)
			if len(f) >= 3 {
				if d, err := time.ParseDuration(f[2]); err == nil {
					if f[1] == MainPkg {
						r.Elapsed = d.Seconds()
					} else {
						r.OtherElapsed += d.Seconds()
					}
				}
			}
		case strings.HasPrefix(line, "Benchmark"):
			if err := r.parseBench(line, pkg); err != nil {
				return nil, err
			}
		case strings.HasPrefix(line, "load:"):
			r.Notes = append(r.Notes, line)
		}
	}
	return r, sc.Err()
}

func (r *Run) parseBench(line, pkg string) error {
	f := strings.Fields(line)
	if len(f) < 2 {
		return nil // "BenchmarkX" alone: a benchmark that printed before its result
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return nil // not a result line
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if p, err := strconv.Atoi(name[i+1:]); err == nil {
			r.Procs = p
			name = name[:i]
		}
	}
	name = strings.TrimPrefix(name, "Benchmark")
	if pkg != "" && pkg != MainPkg {
		// Another package's benchmark: named with its package, so that
		// it cannot be taken for one of the report's figures.
		name = strings.TrimPrefix(pkg, "github.com/dss-sync/dss-sync/") + "." + name
	}
	m := r.Bench[name]
	if m == nil {
		r.Pkg[name] = pkg
		m = map[string]float64{}
		r.Bench[name] = m
		r.Order = append(r.Order, name)
	}
	rest := f[2:]
	if len(rest)%2 != 0 {
		return fmt.Errorf("benchmark line with an odd number of value/unit fields: %q", line)
	}
	for i := 0; i < len(rest); i += 2 {
		v, err := strconv.ParseFloat(rest[i], 64)
		if err != nil {
			return fmt.Errorf("benchmark %s: value %q: %v", name, rest[i], err)
		}
		m[rest[i+1]] = v
	}
	return nil
}

// Meta is what the report says of where and when it was made.
type Meta struct {
	Date, Commit, GoVersion string
	Cores                   int
	Source                  string // the file read
	Note                    string // e.g. how the input was put together
}

// seed is a figure the seed system published: a range of seconds and the
// memory it took (MB, 0 when not published).
type seed struct {
	lo, hi float64
	mb     float64
}

func (s seed) String() string {
	t := fmt.Sprintf("%g-%g s", s.lo, s.hi)
	if s.mb > 0 {
		t += fmt.Sprintf(", %g MB", s.mb)
	}
	return t
}

// versus says how many times faster a figure of ours (seconds) is than the
// seed system's range.
func (s seed) versus(ours float64) string {
	if ours <= 0 {
		return "—"
	}
	lo, hi := s.lo/ours, s.hi/ours
	if lo >= 1 {
		return fmt.Sprintf("%s-%sx faster", times(lo), times(hi))
	}
	return fmt.Sprintf("%s-%sx (slower)", times(lo), times(hi))
}

func times(x float64) string {
	if x >= 10 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

// num prints a value with a sensible number of digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return addCommas(fmt.Sprintf("%.0f", v))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// count prints a whole number with thousands separators.
func count(v float64) string { return addCommas(fmt.Sprintf("%.0f", v)) }

// perOp prints a time per operation given in nanoseconds, in the unit that
// suits it.
func perOp(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmtMS(ns / 1e6)
	case ns >= 1e3:
		return num(ns/1e3) + " µs"
	default:
		return num(ns) + " ns"
	}
}

func addCommas(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Target is a goal stated in the issues for one metric.
type Target struct {
	What        string
	Bench, Unit string
	AtLeast     bool // the value must be >= Limit; else < Limit
	Limit       float64
	Scale       float64 // printed value = metric * Scale (0: 1)
	Show        string  // the target as written, e.g. "< 100 ms"
}

// Targets are the goals of the issues.
var Targets = []Target{
	{"PUT throughput (16 clients, durable)", "PutHTTP", "puts/s", true, 5000, 0, ">= 5,000/s"},
	{"GET p99 under writes", "PutHTTP", "get-p99-ms", false, 5, 0, "< 5 ms"},
	{"changes batch of 10k (commit)", "ChangesBatch10k", "commit-ms", false, 100, 0, "< 100 ms"},
	{"append ratio vs raw Pebble batch", "AppendVsRaw", "ratio", true, 0.5, 0, ">= 0.5"},
	{"rebuild of 1M events", "Rebuild1M", "rebuild-s", false, 5, 0, "< 5 s"},
	{"rebuild of 1M events, peak RSS", "Rebuild1M", "peak-rss-MiB", false, 300, 0, "< 300 MiB"},
	{"merge 5k+3k", "Merge", "merge-ms", false, 50, 0, "< 50 ms"},
	{"export 10k (.dss)", "Archives10k", "export-ms", false, 100, 0, "< 100 ms"},
	{"DTCG export 10k", "Archives10k", "export-dtcg-ms", false, 100, 0, "< 100 ms"},
	{"dry-run analysis 10k", "Archives10k", "dry-run-ms", false, 50, 0, "< 50 ms"},
	{"import 10k", "Archives10k", "import-ms", false, 150, 0, "< 150 ms"},
	{"import 1M (job), server peak RSS", "Import1MJob", "server-peak-rss-MiB", false, 256, 0, "< 256 MiB"},
	{"replication 100k to two peers", "Replication100k", "to-two-peers-s", false, 5, 0, "< 5 s"},
	{"replication ratio vs raw JetStream", "Replication100k", "ratio-vs-raw", true, 0.3, 0, ">= 0.3"},
	{"paced GET throughput", "LoadHey", "paced-GET/s", true, 10000, 0, ">= 10,000/s"},
	{"paced GET p99", "LoadHey", "paced-GET-p99-ms", false, 10, 0, "< 10 ms"},
}

// Check says whether the run meets t; ok is false when the run lacks it.
func (t Target) Check(r *Run) (value float64, met, ok bool) {
	v, ok := r.Get(t.Bench, t.Unit)
	if !ok {
		return 0, false, false
	}
	if t.AtLeast {
		return v, v >= t.Limit, true
	}
	return v, v < t.Limit, true
}

// row is one line of a figure table.
type row struct {
	figure, value, raw, ratio, seed, vsSeed, mem string
}

type table struct {
	title, about string
	rows         []row
}

func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n", t.title)
	if t.about != "" {
		fmt.Fprintf(w, "%s\n\n", t.about)
	}
	fmt.Fprintln(w, "| figure | value | raw ceiling (same run) | ratio to raw | seed system | vs seed | peak memory |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range t.rows {
		cells := []string{r.figure, r.value, r.raw, r.ratio, r.seed, r.vsSeed, r.mem}
		for i, c := range cells {
			if c == "" {
				cells[i] = "—"
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
}

// Sizes are the project sizes of BenchmarkArchivesBySize.
var Sizes = []struct {
	N     int
	Label string
}{{10_000, "10k"}, {100_000, "100k"}, {1_000_000, "1M"}}

// Ops are the archive operations swept over the sizes, by metric prefix.
var Ops = []struct{ Name, Prefix, Color string }{
	{"export (.dss)", "export", "#1f77b4"},
	{"DTCG export", "export-dtcg", "#ff7f0e"},
	{"dry-run analysis", "dry-run", "#2ca02c"},
	{"import", "import", "#d62728"},
}

// sizeMS returns an operation's time at a size in ms, and whether it came
// from BenchmarkImport1MJob (the 1M import the sweep leaves out).
func sizeMS(r *Run, prefix, label string) (ms float64, fromJob, ok bool) {
	if v, ok := r.Get("ArchivesBySize", prefix+"-ms@"+label); ok {
		return v, false, true
	}
	if prefix == "import" && label == "1M" {
		if v, ok := r.Get("Import1MJob", "import-1M-s"); ok {
			return v * 1000, true, true
		}
	}
	return 0, false, false
}

func sizeHeap(r *Run, prefix, label string) (float64, bool) {
	return r.Get("ArchivesBySize", prefix+"-heap-MiB@"+label)
}

// Report writes the Markdown report of r.
func Report(w io.Writer, r *Run, m Meta) {
	fmt.Fprintln(w, "# dss-sync benchmark report")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Generated by `make bench` (`go run ./cmd/benchreport %s`). Every benchmark of ./cmd/dss-sync ran once (`-benchtime 1x`) in one `go test` process; each figure stands beside the raw ceiling measured in the same run. The other packages' benchmarks follow, under Micro-benchmarks.\n\n", m.Source)
	fmt.Fprintf(w, "- machine: %s, %s/%s, GOMAXPROCS %d, %d cores\n", orDash(r.CPU), orDash(r.GOOS), orDash(r.GOARCH), r.Procs, m.Cores)
	fmt.Fprintf(w, "- Go: %s\n", m.GoVersion)
	fmt.Fprintf(w, "- date: %s\n", m.Date)
	fmt.Fprintf(w, "- commit: %s\n", m.Commit)
	if r.Elapsed > 0 {
		fmt.Fprintf(w, "- benchmark process run: %.0f s\n", r.Elapsed)
	}
	if r.OtherElapsed > 0 {
		fmt.Fprintf(w, "- micro-benchmarks of the other packages: %.0f s\n", r.OtherElapsed)
	}
	if m.Note != "" {
		fmt.Fprintf(w, "- note: %s\n", m.Note)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Seed system figures are those it published (export 10k tokens 5-10 s and 200 MB; import 10k 8-15 s and 250 MB; merge 5k+3k 3-5 s and 150 MB; analysis 10k 1-2 s). Our peak memory is the peak RSS of the process where measured, else the heap an operation added to the in-process site (sampled every 5 ms): MiB, not the seed's MB, and not the same measure, so compare with care.")
	fmt.Fprintln(w)

	// Headline and below target first: what a reader wants.
	if hs := headlines(r); len(hs) > 0 {
		fmt.Fprintln(w, "## Against the seed system")
		fmt.Fprintln(w)
		for _, h := range hs {
			fmt.Fprintf(w, "- %s\n", h)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "## Below target")
	fmt.Fprintln(w)
	var below, missing []string
	for _, t := range Targets {
		v, met, ok := t.Check(r)
		switch {
		case !ok:
			missing = append(missing, t.What)
		case !met:
			below = append(below, fmt.Sprintf("- %s: %s, target %s", t.What, withUnit(v, t.Unit), t.Show))
		}
	}
	if len(below) == 0 {
		fmt.Fprintln(w, "Nothing: every target measured is met.")
	} else {
		fmt.Fprintln(w, strings.Join(below, "\n"))
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "\nNot measured in this run: %s.\n", strings.Join(missing, "; "))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | value | goal | status |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, t := range Targets {
		v, met, ok := t.Check(r)
		status, val := "not measured", "—"
		if ok {
			val = withUnit(v, t.Unit)
			status = "met"
			if !met {
				status = "**below**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.What, val, t.Show, status)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Figures")
	fmt.Fprintln(w)
	for _, t := range tables(r) {
		if len(t.rows) > 0 {
			t.write(w)
		}
	}

	writeSizes(w, r)

	writeMicro(w, r)

	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "## Benchmark notes")
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "    %s\n", n)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "## All metrics")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| benchmark | metric | value |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, b := range r.Order {
		units := make([]string, 0, len(r.Bench[b]))
		for u := range r.Bench[b] {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			fmt.Fprintf(w, "| %s | %s | %s |\n", b, u, num(r.Bench[b][u]))
		}
	}
}

// section starts a level-2 section: its title, then each block, the last
// (a table's header) left open for the rows that follow.
func section(w io.Writer, title string, blocks ...string) {
	fmt.Fprintf(w, "## %s\n\n", title)
	for i, b := range blocks {
		fmt.Fprintln(w, b)
		if i < len(blocks)-1 {
			fmt.Fprintln(w)
		}
	}
}

// writeMicro lists the benchmarks of the packages other than MainPkg: the
// parsers, codecs and archive code on their own, run with Go's default
// benchtime and -benchmem, so their figures are per operation.
func writeMicro(w io.Writer, r *Run) {
	var names []string
	for _, b := range r.Order {
		if p := r.Pkg[b]; p != "" && p != MainPkg {
			names = append(names, b)
		}
	}
	if len(names) == 0 {
		return
	}
	section(w, "Micro-benchmarks",
		"The benchmarks of the other packages, each on its own (Go's default benchtime, `-benchmem`), with no ceiling beside them: they show where the time of the figures above goes.",
		"| benchmark | time/op | MB/s | bytes/op | allocs/op |\n|---|---|---|---|---|")
	cell := func(b, unit string, f func(float64) string) string {
		if v, ok := r.Get(b, unit); ok {
			return f(v)
		}
		return "—"
	}
	for _, b := range names {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", b,
			cell(b, "ns/op", perOp),
			cell(b, "MB/s", num), cell(b, "B/op", count), cell(b, "allocs/op", count))
	}
	fmt.Fprintln(w)
}

// headlines compare the run with the seed system's published figures, as
// "export 10k: 0.13 s vs seed 5-10 s: 38-76x faster".
func headlines(r *Run) []string {
	var out []string
	for _, h := range []struct {
		what, bench, unit string
		seed              seed
		heap              string // the sweep's heap metric at 10k, if any
	}{
		{"export 10k (.dss)", "Archives10k", "export-ms", seed{5, 10, 200}, "export"},
		{"DTCG export 10k", "Archives10k", "export-dtcg-ms", seed{5, 10, 200}, "export-dtcg"},
		{"import 10k", "Archives10k", "import-ms", seed{8, 15, 250}, "import"},
		{"merge 5k+3k", "Merge", "merge-ms", seed{3, 5, 150}, ""},
		{"analysis (dry run) 10k", "Archives10k", "dry-run-ms", seed{1, 2, 0}, "dry-run"},
	} {
		v, ok := r.Get(h.bench, h.unit)
		if !ok {
			continue
		}
		line := fmt.Sprintf("%s: %s s vs seed %g-%g s: %s", h.what, num(v/1000), h.seed.lo, h.seed.hi, h.seed.versus(v/1000))
		if m, ok := sizeHeap(r, h.heap, "10k"); ok && h.heap != "" {
			line += fmt.Sprintf("; heap added %s MiB", num(m))
			if h.seed.mb > 0 {
				line += fmt.Sprintf(" vs seed %g MB", h.seed.mb)
			}
		}
		out = append(out, line)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// withUnit prints a metric's value with the unit the report uses for it.
func withUnit(v float64, u string) string {
	switch {
	case strings.HasSuffix(u, "-ms"):
		return num(v) + " ms"
	case strings.HasSuffix(u, "-s"):
		return num(v) + " s"
	case strings.HasSuffix(u, "-MiB"):
		return num(v) + " MiB"
	case strings.HasSuffix(u, "/s"):
		return num(v) + "/s"
	}
	return num(v)
}

// tables builds the figure tables of the areas the run covers.
func tables(r *Run) []*table {
	var out []*table
	g := func(b, u string) (float64, bool) { return r.Get(b, u) }
	add := func(t *table, figure string, b, u, suffix string, fill func(v float64, rw *row)) {
		v, ok := g(b, u)
		if !ok {
			return
		}
		rw := row{figure: figure, value: num(v) + suffix}
		if fill != nil {
			fill(v, &rw)
		}
		t.rows = append(t.rows, rw)
	}

	writes := &table{title: "Writes", about: "Raw ceilings: Pebble `Set` with fsync from 16 goroutines (beside PUT), and a plain Pebble batch write with fsync (beside append)."}
	add(writes, "PUT, 16 clients over HTTP, durable", "PutHTTP", "puts/s", "/s", func(v float64, rw *row) {
		if raw, ok := g("PutHTTP", "raw-sync-writes/s"); ok {
			rw.raw, rw.ratio = num(raw)+"/s", fmt.Sprintf("%.2f", v/raw)
		}
	})
	add(writes, "PUT p99", "PutHTTP", "put-p99-ms", " ms", nil)
	add(writes, "GET p99 during the PUTs", "PutHTTP", "get-p99-ms", " ms", nil)
	add(writes, "changes batch 10k, commit", "ChangesBatch10k", "commit-ms", " ms", nil)
	add(writes, "changes batch 10k, over HTTP", "ChangesBatch10k", "http-ms", " ms", nil)
	add(writes, "event append", "AppendVsRaw", "append-events/s", "/s", func(v float64, rw *row) {
		if raw, ok := g("AppendVsRaw", "raw-batch-events/s"); ok {
			rw.raw, rw.ratio = num(raw)+"/s", fmt.Sprintf("%.2f", v/raw)
		}
	})
	add(writes, "rebuild of 1M events", "Rebuild1M", "rebuild-s", " s", func(v float64, rw *row) {
		if m, ok := g("Rebuild1M", "peak-rss-MiB"); ok {
			rw.mem = num(m) + " MiB RSS"
		}
	})
	out = append(out, writes)

	merge := &table{title: "Merge"}
	seedMerge := seed{3, 5, 150}
	add(merge, "merge 5k local + 3k incoming", "Merge", "merge-ms", " ms", func(v float64, rw *row) {
		rw.seed, rw.vsSeed = seedMerge.String(), seedMerge.versus(v/1000)
	})
	add(merge, "per incoming event", "Merge", "us/incoming-event", " µs", nil)
	for _, k := range []int{10, 100, 1000} {
		add(merge, fmt.Sprintf("late arrival, %d events after it", k), "LateArrival", fmt.Sprintf("us/late-event@%d", k), " µs", nil)
	}
	out = append(out, merge)

	arch := &table{title: "Archives, 10k tokens", about: "Raw ceiling of import: plain JetStream publish + consume-ack of 10,000 messages of 300 bytes in the same run. Export and analysis read the store and have no write ceiling. Peak memory: heap added in process, from the size sweep at 10k."}
	seeds := map[string]seed{"export": {5, 10, 200}, "dry-run": {1, 2, 0}, "import": {8, 15, 250}}
	for _, op := range []struct{ name, prefix, seedKey string }{
		{"export 10k (.dss)", "export", "export"},
		{"DTCG export 10k", "export-dtcg", "export"},
		{"dry-run analysis 10k", "dry-run", "dry-run"},
		{"import 10k", "import", "import"},
	} {
		add(arch, op.name, "Archives10k", op.prefix+"-ms", " ms", func(v float64, rw *row) {
			s := seeds[op.seedKey]
			rw.seed, rw.vsSeed = s.String(), s.versus(v/1000)
			if op.prefix == "import" {
				if raw, ok := g("Archives10k", "raw-js-10k-msgs-ms"); ok {
					rw.raw, rw.ratio = num(raw)+" ms", fmt.Sprintf("%.2f", raw/v)
				}
			}
			if h, ok := sizeHeap(r, op.prefix, "10k"); ok {
				rw.mem = num(h) + " MiB heap"
				if s.mb > 0 {
					rw.mem += fmt.Sprintf(" (seed %g MB)", s.mb)
				}
			}
		})
	}
	add(arch, "archive size 10k", "Archives10k", "archive-KiB", " KiB", nil)
	add(arch, "import 1M tokens (DTCG, job, own process)", "Import1MJob", "import-1M-s", " s", func(v float64, rw *row) {
		if t, ok := g("Import1MJob", "tokens/s"); ok {
			rw.value += fmt.Sprintf(" (%s tokens/s)", num(t))
		}
		if m, ok := g("Import1MJob", "server-peak-rss-MiB"); ok {
			rw.mem = num(m) + " MiB RSS"
		}
	})
	out = append(out, arch)

	repl := &table{title: "Replication", about: "Raw ceiling: plain JetStream publish + consume-ack of as many messages of the same size, same run."}
	add(repl, "100k events to two new peers", "Replication100k", "to-two-peers-s", " s", func(v float64, rw *row) {
		if raw, ok := g("Replication100k", "raw-js-s"); ok {
			rw.raw = num(raw) + " s"
		}
		if x, ok := g("Replication100k", "ratio-vs-raw"); ok {
			rw.ratio = fmt.Sprintf("%.2f", x)
		}
	})
	add(repl, "catch-up of a 50k backlog", "CatchUp50k", "catch-up-s", " s", func(v float64, rw *row) {
		if raw, ok := g("CatchUp50k", "raw-js-s"); ok {
			rw.raw = num(raw) + " s"
		}
		if x, ok := g("CatchUp50k", "ratio-vs-raw"); ok {
			rw.ratio = fmt.Sprintf("%.2f", x)
		}
	})
	out = append(out, repl)

	load := &table{title: "Load (hey against the real binary in its own process)", about: "The paced phase offers 10,500 GET/s for 10 s (50 connections at 210/s: hey's pacing drops ticks, so offering exactly 10,000 serves a little under); the mixed phase reads with 50 connections and writes with 4 at once, as fast as they go, for 10 s."}
	for _, l := range []struct{ what, prefix, rate string }{
		{"paced GET", "paced-GET", "paced-GET/s"}, {"mixed: GET", "GET", "GET/s"}, {"mixed: PUT", "PUT", "PUT/s"},
	} {
		add(load, l.what, "LoadHey", l.rate, "/s", func(v float64, rw *row) {
			for _, q := range []string{"p50", "p99"} {
				if p, ok := g("LoadHey", l.prefix+"-"+q+"-ms"); ok {
					rw.value += fmt.Sprintf(", %s %s ms", q, num(p))
				}
			}
			if e, ok := g("LoadHey", l.prefix+"-errors"); ok {
				rw.value += fmt.Sprintf(", %s errors", count(e))
			}
		})
	}
	out = append(out, load)
	return out
}

// writeSizes writes the size sweep: time, throughput and memory per
// operation and size, and how cost grows from one size to the next.
func writeSizes(w io.Writer, r *Run) {
	if _, ok := r.Bench["ArchivesBySize"]; !ok {
		return
	}
	section(w, "Cost against size",
		"BenchmarkArchivesBySize: projects of 10k, 100k and 1M tokens generated with a fixed seed (colors, dimensions, numbers, font families, durations, typography and shadow composites, every tenth token an alias, one component per 1,000 tokens). Median of 3 at 10k, one run above. Memory: peak heap the operation added to the process holding the sites.",
		"![throughput and latency against size](sizes.svg)",
		"| operation | size | time | tokens/s | heap added | growth of time vs previous size |\n|---|---|---|---|---|---|")
	job := false
	for _, op := range Ops {
		prev := 0.0
		for _, s := range Sizes {
			ms, fromJob, ok := sizeMS(r, op.Prefix, s.Label)
			if !ok {
				continue
			}
			name := op.Name
			mem := "—"
			if h, ok := sizeHeap(r, op.Prefix, s.Label); ok {
				mem = num(h) + " MiB"
			}
			if fromJob {
				name += " †"
				job = true
				if rss, ok := r.Get("Import1MJob", "server-peak-rss-MiB"); ok {
					mem = num(rss) + " MiB RSS"
				}
			}
			growth := "—"
			if prev > 0 {
				growth = fmt.Sprintf("%.1fx for 10x tokens", ms/prev)
			}
			prev = ms
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", name, s.Label, fmtMS(ms), num(float64(s.N)/(ms/1000)), mem, growth)
		}
	}
	fmt.Fprintln(w)
	if job {
		fmt.Fprintln(w, "† 1M import: a DTCG file imported as a job by the site running as its own process (BenchmarkImport1MJob), not the in-process .dss import of the smaller sizes, which would take about a minute more.")
		fmt.Fprintln(w)
	}
	if v, ok := r.Get("ArchivesBySize", "process-peak-rss-MiB"); ok {
		fmt.Fprintf(w, "Peak RSS of the benchmark process after the sweep: %s MiB.\n\n", num(v))
	}
}

func fmtMS(ms float64) string {
	if ms >= 1000 {
		return num(ms/1000) + " s"
	}
	return num(ms) + " ms"
}

// Point is one measured operation at one size.
type Point struct {
	N  int
	MS float64
}

// series returns the sweep's points per operation.
func series(r *Run) [][]Point {
	out := make([][]Point, len(Ops))
	for i, op := range Ops {
		for _, s := range Sizes {
			if ms, _, ok := sizeMS(r, op.Prefix, s.Label); ok && ms > 0 {
				out[i] = append(out[i], Point{s.N, ms})
			}
		}
	}
	return out
}

// SVG writes the plot: throughput (tokens/s) and latency (ms) against size,
// both axes logarithmic, one line per operation.
func SVG(w io.Writer, r *Run) {
	const W, H = 960, 420
	ser := series(r)
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(w, `<text x="%d" y="22" text-anchor="middle" font-size="15">dss-sync archive operations against project size (log-log)</text>`+"\n", W/2)
	panel(w, ser, 70, 50, 360, 280, "throughput (tokens/s)", func(p Point) float64 { return float64(p.N) / (p.MS / 1000) })
	panel(w, ser, 560, 50, 360, 280, "latency (ms)", func(p Point) float64 { return p.MS })
	// legend
	x := 70
	for i, op := range Ops {
		if len(ser[i]) == 0 {
			continue
		}
		fmt.Fprintf(w, `<line x1="%d" y1="395" x2="%d" y2="395" stroke="%s" stroke-width="2.5"/>`, x, x+24, op.Color)
		fmt.Fprintf(w, `<circle cx="%d" cy="395" r="3.5" fill="%s"/>`, x+12, op.Color)
		fmt.Fprintf(w, `<text x="%d" y="399">%s</text>`+"\n", x+30, esc(op.Name))
		x += 40 + 8*len(op.Name)
	}
	fmt.Fprintln(w, "</svg>")
}

func panel(w io.Writer, ser [][]Point, x0, y0, pw, ph int, title string, val func(Point) float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ser {
		for _, p := range s {
			v := val(p)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi <= ylo {
		yhi = ylo + 1
	}
	xlo, xhi := 4.0, 6.0 // 10k .. 1M
	px := func(n float64) float64 {
		return float64(x0) + (math.Log10(n)-xlo)/(xhi-xlo)*float64(pw)
	}
	py := func(v float64) float64 {
		return float64(y0+ph) - (math.Log10(v)-ylo)/(yhi-ylo)*float64(ph)
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle" font-size="13">%s</text>`+"\n", x0+pw/2, y0-8, esc(title))
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", x0, y0, pw, ph)
	for e := ylo; e <= yhi; e++ {
		y := py(math.Pow(10, e))
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, x0, y, x0+pw, y)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`, x0-5, y, x0, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-8, y+4, tick(math.Pow(10, e)))
	}
	for _, s := range Sizes {
		x := px(float64(s.N))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`, x, y0, x, y0+ph)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`, x, y0+ph, x, y0+ph+5)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, y0+ph+18, s.Label)
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">tokens in the project</text>`+"\n", x0+pw/2, y0+ph+36)
	for i, s := range ser {
		if len(s) == 0 {
			continue
		}
		var pts []string
		for _, p := range s {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(float64(p.N)), py(val(p))))
		}
		fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.Join(pts, " "), Ops[i].Color)
		for _, p := range s {
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s %d: %s</title></circle>`+"\n",
				px(float64(p.N)), py(val(p)), Ops[i].Color, esc(Ops[i].Name), p.N, num(val(p)))
		}
	}
}

func tick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", v)
	}
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func main() {
	out := flag.String("out", "bench", "directory to write REPORT.md and sizes.svg into")
	note := flag.String("note", "", "a line for the report's header, e.g. how the input was put together")
	flag.Parse()
	src := "bench.txt"
	if flag.NArg() > 0 {
		src = flag.Arg(0)
	}
	if err := run(src, *out, *note); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(src, out, note string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	r, err := Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if len(r.Bench) == 0 {
		return fmt.Errorf("%s: no benchmark results", src)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	m := Meta{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), GoVersion: runtime.Version(), Cores: runtime.NumCPU(), Source: src, Note: note, Commit: "unknown"}
	if c, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(c))
	}
	var md, svg strings.Builder
	Report(&md, r, m)
	SVG(&svg, r)
	if err := os.WriteFile(filepath.Join(out, "REPORT.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "sizes.svg"), []byte(svg.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(out, "REPORT.md"), filepath.Join(out, "sizes.svg"))
	return nil
}

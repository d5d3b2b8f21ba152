package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `GOBIN=/work/main/bin go install github.com/rakyll/hey@v0.1.5
goos: linux
goarch: amd64
pkg: github.com/dss-sync/dss-sync/cmd/dss-sync
cpu: Test CPU 9000             
BenchmarkPutHTTP-2           	       1	3005529426 ns/op	         3.023 get-p99-ms	      3915 puts/s	         0.2129 ratio	     18392 raw-sync-writes/s
BenchmarkAppendVsRaw-2       	       1	2205799336 ns/op	     45335 append-events/s	         0.6 ratio	    537862 raw-batch-events/s
BenchmarkMerge-2             	       1	 135035804 ns/op	       40.0 merge-ms	        45.00 us/incoming-event
BenchmarkArchives10k-2       	       1	4837929496 ns/op	      1293 archive-KiB	       388.4 dry-run-ms	        76.89 export-dtcg-ms	       131.6 export-ms	       624.2 import-ms	       102.2 raw-js-10k-msgs-ms
BenchmarkArchivesBySize
BenchmarkArchivesBySize-2    	       1	28741477756 ns/op	       3875 dry-run-ms@100k	       381.3 dry-run-ms@10k	       2238 export-ms@100k	       128.1 export-ms@10k	        72.11 export-heap-MiB@10k	       9936 import-ms@100k	       654.4 import-ms@10k	  40000 export-ms@1M
BenchmarkImport1MJob-2       	       1	65501827952 ns/op	        65.50 import-1M-s	       239.5 server-peak-rss-MiB	     15267 tokens/s
BenchmarkLoadHey-2   	       1	27755607968 ns/op	         0 GET-errors	         3.400 GET-p50-ms	        13.90 GET-p99-ms	     12644 GET/s	         0 PUT-errors	        13.00 PUT-p99-ms	      1497 PUT/s	         0 paced-GET-errors	         8.800 paced-GET-p99-ms	     10348 paced-GET/s	0.5 paced-GET-p50-ms
load: paced 9576 GET/s p99 13.3ms
PASS
ok  	github.com/dss-sync/dss-sync/cmd/dss-sync	179.253s
goos: linux
goarch: amd64
pkg: github.com/dss-sync/dss-sync/events
cpu: Test CPU 9000             
BenchmarkParseJSON-2    	  471242	      2523 ns/op	 194.19 MB/s	    1072 B/op	      39 allocs/op
PASS
ok  	github.com/dss-sync/dss-sync/events	2.389s
pkg: github.com/dss-sync/dss-sync/internal/archive
BenchmarkExport10k/dss-2            	      10	 108976894 ns/op	43613614 B/op	  685134 allocs/op
BenchmarkMerge-2 	 10	 5000 ns/op
ok  	github.com/dss-sync/dss-sync/internal/archive	5.272s
`

func parseSample(t *testing.T) *Run {
	t.Helper()
	r, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	r := parseSample(t)
	if r.CPU != "Test CPU 9000" || r.GOOS != "linux" || r.GOARCH != "amd64" || r.Procs != 2 {
		t.Errorf("header: %+v", r)
	}
	if r.Elapsed != 179.253 || math.Abs(r.OtherElapsed-7.661) > 1e-9 {
		t.Errorf("elapsed %v, others %v", r.Elapsed, r.OtherElapsed)
	}
	// Other packages' benchmarks are named with their package: the
	// archive package's Merge is not the report's Merge.
	want := []string{"PutHTTP", "AppendVsRaw", "Merge", "Archives10k", "ArchivesBySize", "Import1MJob", "LoadHey",
		"events.ParseJSON", "internal/archive.Export10k/dss", "internal/archive.Merge"}
	if strings.Join(r.Order, ",") != strings.Join(want, ",") {
		t.Errorf("order %v, want %v", r.Order, want)
	}
	for _, c := range []struct {
		bench, unit string
		v           float64
	}{
		{"PutHTTP", "puts/s", 3915}, {"PutHTTP", "ns/op", 3005529426}, {"Merge", "us/incoming-event", 45},
		{"ArchivesBySize", "export-ms@100k", 2238}, {"ArchivesBySize", "export-heap-MiB@10k", 72.11},
		{"Import1MJob", "import-1M-s", 65.5}, {"Merge", "merge-ms", 40},
		{"events.ParseJSON", "allocs/op", 39}, {"internal/archive.Merge", "ns/op", 5000},
	} {
		if v, ok := r.Get(c.bench, c.unit); !ok || v != c.v {
			t.Errorf("%s %s = %v %v, want %v", c.bench, c.unit, v, ok, c.v)
		}
	}
	if len(r.Notes) != 1 || !strings.HasPrefix(r.Notes[0], "load: paced") {
		t.Errorf("notes %q", r.Notes)
	}
	if _, err := Parse(strings.NewReader("BenchmarkX-2 1 100 ns/op 5\n")); err == nil {
		t.Error("a line with a value and no unit parsed")
	}
	if _, err := Parse(strings.NewReader("BenchmarkX-2 1 abc ns/op\n")); err == nil {
		t.Error("a line with a bad value parsed")
	}
}

func TestTargets(t *testing.T) {
	r := parseSample(t)
	got := map[string]string{}
	for _, tg := range Targets {
		_, met, ok := tg.Check(r)
		switch {
		case !ok:
			got[tg.What] = "missing"
		case met:
			got[tg.What] = "met"
		default:
			got[tg.What] = "below"
		}
	}
	for what, want := range map[string]string{
		"PUT throughput (16 clients, durable)": "below",
		"GET p99 under writes":                 "met",
		"append ratio vs raw Pebble batch":     "met", // >= 0.5 with 0.6
		"merge 5k+3k":                          "met", // < 50 ms with 40
		"export 10k (.dss)":                    "below",
		"DTCG export 10k":                      "met",
		"import 1M (job), server peak RSS":     "met",
		"rebuild of 1M events":                 "missing",
		"paced GET throughput":                 "met",
		"paced GET p99":                        "met",
	} {
		if got[what] != want {
			t.Errorf("%s: %s, want %s", what, got[what], want)
		}
	}
}

func TestReport(t *testing.T) {
	r := parseSample(t)
	var sb strings.Builder
	Report(&sb, r, Meta{Date: "2026-01-02 03:04 UTC", Commit: "abc1234", GoVersion: "go1.99", Cores: 2, Source: "bench.txt"})
	md := sb.String()
	for _, want := range []string{
		"- machine: Test CPU 9000, linux/amd64, GOMAXPROCS 2, 2 cores",
		"- Go: go1.99", "- date: 2026-01-02 03:04 UTC", "- commit: abc1234", "- benchmark process run: 179 s",
		// below target, with the figure and the goal
		"- PUT throughput (16 clients, durable): 3,915/s, target >= 5,000/s",
		"- export 10k (.dss): 132 ms, target < 100 ms",
		"- import 10k: 624 ms, target < 150 ms",
		"Not measured in this run: ",
		// headlines against the seed system
		"- export 10k (.dss): 0.132 s vs seed 5-10 s: 38-76x faster; heap added 72.1 MiB vs seed 200 MB",
		"- merge 5k+3k: 0.04 s vs seed 3-5 s: 75-125x faster",
		"- import 10k: 0.624 s vs seed 8-15 s: 13-24x faster",
		// figure, raw ceiling, ratio
		"| PUT, 16 clients over HTTP, durable | 3,915/s | 18,392/s | 0.21 |",
		"| import 10k | 624 ms | 102 ms | 0.16 | 8-15 s, 250 MB | 13-24x faster |",
		// beside the seed system
		"| export 10k (.dss) | 132 ms | — | — | 5-10 s, 200 MB | 38-76x faster | 72.1 MiB heap (seed 200 MB) |",
		"| merge 5k local + 3k incoming | 40.0 ms | — | — | 3-5 s, 150 MB | 75-125x faster |",
		"| dry-run analysis 10k | 388 ms | — | — | 1-2 s | 2.6-5.1x faster |",
		"| import 1M tokens (DTCG, job, own process) | 65.5 s (15,267 tokens/s) |",
		// the sweep, with the 1M import taken from the job
		"| export (.dss) | 100k | 2.24 s | 44,683 | — | 17.5x for 10x tokens |",
		"| export (.dss) | 1M | 40.0 s | 25,000 | — | 17.9x for 10x tokens |",
		"| import † | 1M | 65.5 s | 15,267 | 240 MiB RSS | 6.6x for 10x tokens |",
		"![throughput and latency against size](sizes.svg)",
		"| ArchivesBySize | export-ms@1M | 40,000 |",
		// load: rate, latencies and errors
		"| paced GET | 10,348/s, p50 0.5 ms, p99 8.80 ms, 0 errors |",
		"| mixed: PUT | 1,497/s, p99 13.0 ms, 0 errors |",
		// the other packages, per operation
		"- micro-benchmarks of the other packages: 8 s",
		"## Micro-benchmarks",
		"| events.ParseJSON | 2.52 µs | 194 | 1,072 | 39 |",
		"| internal/archive.Export10k/dss | 109 ms | — | 43,613,614 | 685,134 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "GET p99 under writes: ") {
		t.Error("a met target is listed below target")
	}
}

func TestSVG(t *testing.T) {
	r := parseSample(t)
	var sb strings.Builder
	SVG(&sb, r)
	svg := sb.String()
	d := xml.NewDecoder(strings.NewReader(svg))
	elems := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			elems[se.Name.Local]++
		}
	}
	// four operations with points (DTCG export has none in the sample: three
	// lines), in two panels; sizes on the x axis; a legend
	if elems["polyline"] != 6 {
		t.Errorf("%d polylines, want 6", elems["polyline"])
	}
	for _, want := range []string{">10k<", ">100k<", ">1M<", "throughput (tokens/s)", "latency (ms)", "dry-run analysis", "tokens in the project"} {
		if !strings.Contains(svg, want) {
			t.Errorf("plot lacks %q", want)
		}
	}
	if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
		t.Error("plot has a NaN or Inf coordinate")
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.txt")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bench")
	if err := run(in, out, "a note"); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if err != nil || !strings.Contains(string(md), "- note: a note") {
		t.Errorf("REPORT.md: %v %.200s", err, md)
	}
	if _, err := os.Stat(filepath.Join(out, "sizes.svg")); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(in, []byte("PASS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, out, ""); err == nil {
		t.Error("an input without results made a report")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/projections"
)

// sizeBenchSeed fixes the generated token mix, so every run measures the
// same data.
const sizeBenchSeed = 20260101

// mixedTokenChanges returns n token creations drawn with a fixed seed from a
// realistic DTCG mix: colors, dimensions, numbers, font families, durations,
// typography and shadow composites, with every tenth token an alias of an
// earlier token of its group; then one component per 1,000 tokens, each
// referencing three tokens.
func mixedTokenChanges(n int, seed int64) []projections.Change {
	rng := rand.New(rand.NewSource(seed))
	fonts := []string{"Inter", "Roboto", "Source Sans 3", "IBM Plex Sans", "Georgia"}
	cs := make([]projections.Change, 0, n+n/1000)
	for i := 0; i < n; i++ {
		path := fmt.Sprintf("t.g%04d.t%07d", i/100, i)
		var data string
		switch r := rng.Intn(100); {
		case i%10 == 9: // alias of the first token of its block of ten
			data = fmt.Sprintf(`{"$value":"{%s}"}`, cs[i-9].Path)
		case r < 40:
			data = fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"color %d"}`, rng.Intn(1<<24), i)
		case r < 60:
			data = fmt.Sprintf(`{"$type":"dimension","$value":{"value":%d,"unit":"px"}}`, 1+rng.Intn(96))
		case r < 70:
			data = fmt.Sprintf(`{"$type":"number","$value":%.2f}`, rng.Float64()*4)
		case r < 75:
			data = fmt.Sprintf(`{"$type":"fontFamily","$value":%q}`, fonts[rng.Intn(len(fonts))])
		case r < 80:
			data = fmt.Sprintf(`{"$type":"duration","$value":{"value":%d,"unit":"ms"}}`, 50*(1+rng.Intn(10)))
		case r < 90:
			data = fmt.Sprintf(`{"$type":"typography","$value":{"fontFamily":%q,"fontSize":"%dpx","fontWeight":%d,"letterSpacing":"0px","lineHeight":%.1f}}`,
				fonts[rng.Intn(len(fonts))], 10+rng.Intn(40), 100*(1+rng.Intn(9)), 1+rng.Float64())
		default:
			data = fmt.Sprintf(`{"$type":"shadow","$value":{"color":"#%06x","offsetX":"%dpx","offsetY":"%dpx","blur":"%dpx","spread":"0px"}}`,
				rng.Intn(1<<24), rng.Intn(8), rng.Intn(8), rng.Intn(24))
		}
		cs = append(cs, projections.Change{Path: path, Data: json.RawMessage(data)})
	}
	for c := 0; c < n/1000; c++ {
		a, b, d := cs[rng.Intn(n)].Path, cs[rng.Intn(n)].Path, cs[rng.Intn(n)].Path
		cs = append(cs, projections.Change{Kind: "component", Path: fmt.Sprintf("C%05d", c),
			Data: json.RawMessage(fmt.Sprintf(`{"description":"component %d","tokens":[%q,%q,%q]}`, c, a, b, d))})
	}
	return cs
}

// seedMixed creates project "design" holding the mixed tokens, applied in
// batches of at most 100,000 changes (the API's limit of one batch).
func seedMixed(b *testing.B, m *Main, n int) {
	b.Helper()
	ctx := context.Background()
	if _, err := m.Site.CreateProject(ctx, "design", "Design", "bench"); err != nil {
		b.Fatal(err)
	}
	cs := mixedTokenChanges(n, sizeBenchSeed)
	for len(cs) > 0 {
		k := min(len(cs), api.MaxChanges)
		if _, err := m.Site.Apply(ctx, "design", "bench", cs[:k]); err != nil {
			b.Fatal(clientErrorDetail(err))
		}
		cs = cs[k:]
	}
}

// heapPeak samples the heap in use (objects plus unused spans, as
// MemStats.HeapInuse) every 5 ms from start until stop; MiB returns the
// highest sample less the heap in use at start (after a GC): what the
// operation added to the process holding the sites.
type heapPeak struct {
	stop chan struct{}
	done chan struct{}
	base uint64
	peak atomic.Uint64
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	h := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	read := func() {
		metrics.Read(s)
		if v := s[0].Value.Uint64() + s[1].Value.Uint64(); v > h.peak.Load() {
			h.peak.Store(v)
		}
	}
	read()
	h.base = h.peak.Load()
	go func() {
		defer close(h.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return h
}

func (h *heapPeak) MiB() float64 {
	close(h.stop)
	<-h.done
	return float64(h.peak.Load()-h.base) / (1 << 20)
}

// sizeSite starts a site in-process as benchMain does, and returns a close
// that may be called early (to free a size's sites before the next size)
// and runs once.
func sizeSite(b *testing.B, site string) (*Main, string, func()) {
	b.Helper()
	dir := b.TempDir()
	cfg, err := loadConfig([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--site", site}, env(nil))
	if err != nil {
		b.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: quiet}
	if err := m.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	closeIt := func() { once.Do(func() { m.Close(context.Background()) }) }
	b.Cleanup(closeIt)
	key, _ := os.ReadFile(filepath.Join(dir, "admin.key"))
	return m, strings.TrimSpace(string(key)), closeIt
}

// sizeLabel names a size in metric units: 10k, 100k, 1M.
func sizeLabel(n int) string {
	if n >= 1_000_000 && n%1_000_000 == 0 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}

// BenchmarkArchivesBySize: the archive operations of BenchmarkArchives10k
// over projects of 10k, 100k and 1M mixed tokens (fixed seed): export of the
// signed archive (.dss), DTCG export, dry-run analysis of the archive on
// another site, and its import there; each with the peak heap it added to
// this process (sampled every 5 ms), and the process's peak RSS at the end. At 1M the in-process import is left out (it
// would take about a minute more): BenchmarkImport1MJob measures the import
// of 1M tokens, with its peak RSS, in a process of its own.
// DSS_BENCH_SIZES (e.g. "10000,100000") narrows the sweep.
func BenchmarkArchivesBySize(b *testing.B) {
	sizes := []int{10_000, 100_000, 1_000_000}
	if s := os.Getenv("DSS_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			var n int
			fmt.Sscanf(f, "%d", &n)
			sizes = append(sizes, n)
		}
	}
	ctx := context.Background()
	for _, n := range sizes {
		lab := "@" + sizeLabel(n)
		reps := 1
		if n <= 10_000 {
			reps = 3
		}
		src, keySrc, closeSrc := sizeSite(b, "paris")
		t0 := time.Now()
		seedMixed(b, src, n)
		b.ReportMetric(time.Since(t0).Seconds(), "seed-s"+lab)
		c := api.NewClient(src.HTTPURL(), keySrc)

		var archive []byte
		var exp, expDTCG []time.Duration
		var expHeap, dtcgHeap float64
		for i := 0; i < reps; i++ {
			var buf bytes.Buffer
			h := startHeapPeak()
			t0 := time.Now()
			if err := c.Download(ctx, "/v1/projects/design/export", url.Values{"format": {"dss"}}, &buf, nil); err != nil {
				b.Fatal(err)
			}
			exp = append(exp, time.Since(t0))
			expHeap = max(expHeap, h.MiB())
			archive = bytes.Clone(buf.Bytes())
			buf = bytes.Buffer{}
			h = startHeapPeak()
			t0 = time.Now()
			if err := c.Download(ctx, "/v1/projects/design/export", url.Values{"format": {"dtcg"}}, io.Discard, nil); err != nil {
				b.Fatal(err)
			}
			expDTCG = append(expDTCG, time.Since(t0))
			dtcgHeap = max(dtcgHeap, h.MiB())
		}
		b.ReportMetric(float64(median(exp).Microseconds())/1000, "export-ms"+lab)
		b.ReportMetric(expHeap, "export-heap-MiB"+lab)
		b.ReportMetric(float64(median(expDTCG).Microseconds())/1000, "export-dtcg-ms"+lab)
		b.ReportMetric(dtcgHeap, "export-dtcg-heap-MiB"+lab)
		b.ReportMetric(float64(len(archive))/(1<<20), "archive-MiB"+lab)

		var dry, imp []time.Duration
		var dryHeap, impHeap float64
		for i := 0; i < reps; i++ {
			dst, keyDst, closeDst := sizeSite(b, "lyon")
			dc := api.NewClient(dst.HTTPURL(), keyDst)
			h := startHeapPeak()
			t0 := time.Now()
			benchDryRun(b, dc, archive)
			dry = append(dry, time.Since(t0))
			dryHeap = max(dryHeap, h.MiB())
			if n >= 1_000_000 {
				closeDst()
				continue
			}
			h = startHeapPeak()
			t0 = time.Now()
			j := benchImport(b, dst, dc, archive)
			imp = append(imp, time.Since(t0))
			impHeap = max(impHeap, h.MiB())
			checkImported(b, dst, j, n)
			closeDst()
		}
		b.ReportMetric(float64(median(dry).Microseconds())/1000, "dry-run-ms"+lab)
		b.ReportMetric(dryHeap, "dry-run-heap-MiB"+lab)
		if len(imp) > 0 {
			b.ReportMetric(float64(median(imp).Microseconds())/1000, "import-ms"+lab)
			b.ReportMetric(impHeap, "import-heap-MiB"+lab)
		}
		archive = nil
		closeSrc()
	}
	b.ReportMetric(float64(vmHWM("self"))/(1<<20), "process-peak-rss-MiB")
}

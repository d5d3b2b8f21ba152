package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// heyPath finds the hey load generator: $DSS_HEY, then bin/hey (where
// `make bench` installs it), then $PATH.
func heyPath(b *testing.B) string {
	b.Helper()
	for _, p := range []string{os.Getenv("DSS_HEY"), "../../bin/hey"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("hey"); err == nil {
		return p
	}
	if os.Getenv("DSS_REQUIRE_HEY") != "" {
		b.Fatal("hey not found: make bench installs it into bin/")
	}
	b.Skip("hey not found (make bench installs it)")
	return ""
}

// heyResult is what one hey run measured, from its per-request CSV.
type heyResult struct {
	requests, errors int
	rps              float64
	p50, p99         time.Duration
}

func runHey(b *testing.B, hey string, d time.Duration, args ...string) heyResult {
	b.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(hey, append([]string{"-z", d.String(), "-o", "csv"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		b.Fatalf("hey %v: %v\n%s", args, err, errOut.String())
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) < 2 {
		b.Fatalf("hey output: %v (%d rows)", err, len(rows))
	}
	var lat []time.Duration
	r := heyResult{}
	for _, row := range rows[1:] { // response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
		secs, err1 := strconv.ParseFloat(row[0], 64)
		code, err2 := strconv.Atoi(row[6])
		if err1 != nil || err2 != nil {
			b.Fatalf("hey row %v", row)
		}
		r.requests++
		if code < 200 || code > 299 {
			r.errors++
		}
		lat = append(lat, time.Duration(secs*float64(time.Second)))
	}
	slices.Sort(lat)
	r.rps = float64(r.requests) / d.Seconds()
	r.p50, r.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	return r
}

// BenchmarkLoadHey drives a real site (HTTP, Pebble, JetStream) on this
// machine with hey, rate limits off, as for a trusted load: first 10,000
// GET/s offered for 10 s (the target: all served, p99 under 10 ms, no
// errors), then, for 10 s, hey reading one token with 50 connections while
// another hey writes with 4, as fast as they go.
func BenchmarkLoadHey(b *testing.B) {
	hey := heyPath(b)
	dir := b.TempDir()
	cfg, err := loadConfig([]string{"--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1",
		"--site", "load", "--rate-limit-ip", "off", "--rate-limit-key", "off"}, env(nil))
	if err != nil {
		b.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	key := adminKey(b, cfg.DataDir)
	benchSeed(b, m, 1000)
	auth := "Authorization: Bearer " + key
	get := m.HTTPURL() + "/v1/projects/design/tokens/t.g042.t00042"
	const d = 10 * time.Second

	// Phase 1, the target: 10,000 GET/s offered (50 connections at 200/s
	// each), reads only.
	paced := runHey(b, hey, d, "-c", "50", "-q", "200", "-H", auth, get)
	b.ReportMetric(paced.rps, "paced-GET/s")
	b.ReportMetric(float64(paced.p99.Microseconds())/1000, "paced-GET-p99-ms")
	b.ReportMetric(float64(paced.errors), "paced-GET-errors")

	// Phase 2: reads and writes at once, as fast as they go.
	var reads, writes heyResult
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		reads = runHey(b, hey, d, "-c", "50", "-H", auth, get)
	}()
	go func() {
		defer wg.Done()
		writes = runHey(b, hey, d, "-c", "4", "-m", "PUT", "-T", "application/json", "-H", auth,
			"-d", `{"$type":"number","$value":1}`, m.HTTPURL()+"/v1/projects/design/tokens/load.w")
	}()
	wg.Wait()
	b.ReportMetric(reads.rps, "GET/s")
	b.ReportMetric(float64(reads.p50.Microseconds())/1000, "GET-p50-ms")
	b.ReportMetric(float64(reads.p99.Microseconds())/1000, "GET-p99-ms")
	b.ReportMetric(float64(reads.errors), "GET-errors")
	b.ReportMetric(writes.rps, "PUT/s")
	b.ReportMetric(float64(writes.p99.Microseconds())/1000, "PUT-p99-ms")
	b.ReportMetric(float64(writes.errors), "PUT-errors")
	if paced.errors+reads.errors+writes.errors > 0 {
		b.Errorf("%d paced GET, %d GET and %d PUT errors", paced.errors, reads.errors, writes.errors)
	}
	fmt.Fprintf(os.Stderr, "load: paced %.0f GET/s p99 %v; mixed %.0f GET/s (p50 %v, p99 %v) with %.0f PUT/s (p99 %v)\n",
		paced.rps, paced.p99, reads.rps, reads.p50, reads.p99, writes.rps, writes.p99)
}

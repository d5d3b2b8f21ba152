package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/internal/pebble"
)

// runRebuild is `dss-sync rebuild`: discard the projections of a stopped
// site's data dir and fold them again from the event log. The log is the
// record; projections are derived and can always be rebuilt.
func runRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	dataDir := fs.String("data-dir", "./data", "the data dir of a stopped site")
	project := fs.String("project", "", "rebuild only this project (default: all)")
	cacheMiB := fs.Int64("cache-size", 32, "Pebble block cache, in MiB")
	budgetMiB := fs.Int("memory", 128, "projection state held in memory before spilling to disk, in MiB")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Errorf("%w\n\nusage: dss-sync rebuild [--data-dir DIR] [--project P]\n%s", err, flagHelp(fs))}
	}
	// Keep the process near its budget: the GC works harder past it.
	debug.SetMemoryLimit(int64(*budgetMiB)<<20 + int64(*cacheMiB)<<20 + 96<<20)
	pebble.RebuildBudget = *budgetMiB << 20
	store, err := pebble.Open(filepath.Join(*dataDir, "pebble"), pebble.Options{
		Logger: slog.New(slog.NewTextHandler(stderr, nil)), CacheSize: *cacheMiB << 20, MemTableSize: 16 << 20})
	if err != nil {
		return fmt.Errorf("%w (is the site still running?)", err)
	}
	defer store.Close()
	projects := []string{*project}
	if *project == "" {
		if projects, err = store.Projects(ctx); err != nil {
			return err
		}
	}
	for _, p := range projects {
		start := time.Now()
		if err := store.Rebuild(ctx, p); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rebuilt %s in %s\n", p, time.Since(start).Round(time.Millisecond))
	}
	if hwm := peakRSS(); hwm > 0 {
		fmt.Fprintf(stdout, "peak RSS %d MiB\n", hwm>>20)
	}
	return nil
}

// peakRSS returns the process's peak resident set size (VmHWM), or 0 where
// /proc is not available.
func peakRSS() int64 { return vmHWM("self") }

// vmHWM returns the peak resident set size in bytes of the process proc
// names in /proc ("self", or a pid), or 0 where /proc is not available.
func vmHWM(proc string) int64 {
	b, err := os.ReadFile("/proc/" + proc + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/api"
)

// clientFlags are the flags every client command takes: where the site is
// and which key to use.
type clientFlags struct {
	server, token, dataDir string
}

func (c *clientFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	server := getenv("DSS_SYNC_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.server, "server", server, "the site's URL (env DSS_SYNC_SERVER)")
	fs.StringVar(&c.token, "token", getenv("DSS_SYNC_TOKEN"), "API key (env DSS_SYNC_TOKEN; default: <data-dir>/admin.key when it exists)")
	dataDir := getenv("DSS_SYNC_DATA_DIR")
	if dataDir == "" {
		dataDir = "./data"
	}
	fs.StringVar(&c.dataDir, "data-dir", dataDir, "where to look for admin.key when no token is given")
}

// client returns the API client the flags name.
func (c *clientFlags) client() *api.Client {
	token := c.token
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(c.dataDir, "admin.key")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	return api.NewClient(c.server, token)
}

// parseFlags parses args, letting flags and positional arguments mix
// (`export PROJECT -o FILE`). It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, usageLine string) ([]string, error) {
	fs.SetOutput(new(strings.Builder))
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{fmt.Errorf("%w\n\nusage: %s\n%s", err, usageLine, flagHelp(fs))}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// progress draws a progress line on a terminal; elsewhere (piped, CI) it
// stays silent.
type progress struct {
	w     io.Writer
	on    bool
	what  string
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, what string) *progress {
	p := &progress{w: w, what: what, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

// bytes shows a byte count, and total when known (> 0).
func (p *progress) bytes(n, total int64) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if total > 0 {
		fmt.Fprintf(p.w, "\r%s %s %s / %s   ", p.what, bar(n, total), human(n), human(total))
	} else {
		fmt.Fprintf(p.w, "\r%s %s   ", p.what, human(n))
	}
}

// count shows done of total units.
func (p *progress) count(done, total int64) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r%s %s %d / %d   ", p.what, bar(done, total), done, total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r%s done in %s%s\n", p.what, time.Since(p.start).Round(time.Millisecond), strings.Repeat(" ", 30))
	}
}

func bar(n, total int64) string {
	const width = 30
	if total <= 0 {
		return ""
	}
	k := int(n * width / total)
	if k > width {
		k = width
	}
	return "[" + strings.Repeat("#", k) + strings.Repeat(".", width-k) + "]"
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeOutput writes what fn produces to path atomically (a temp file
// renamed into place), or to stdout for "-".
func writeOutput(path string, stdout io.Writer, fn func(io.Writer) error) error {
	if path == "-" {
		return fn(stdout)
	}
	if path == "" {
		return usageError{fmt.Errorf("name the output file with -o")}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

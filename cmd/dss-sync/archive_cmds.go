package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/archive"
)

// runExport is `dss-sync export PROJECT -o FILE`.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	out := fs.String("o", "", "output file (- for stdout)")
	format := fs.String("format", "dss", "dss (a signed archive) or dtcg (one DTCG file of the tokens)")
	noHistory := fs.Bool("no-history", false, "leave the event history out of the archive")
	prefix := fs.String("prefix", "", "only this group of tokens and components")
	typ := fs.String("type", "", "only tokens of this type")
	pos, err := parseFlags(fs, args, "dss-sync export PROJECT -o FILE [--format dss|dtcg] [--no-history] [--prefix P] [--type T]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("export takes one project, got %d arguments", len(pos))}
	}
	if *format != "dss" && *format != "dtcg" {
		return usageError{fmt.Errorf("--format must be dss or dtcg")}
	}
	q := url.Values{"format": {*format}, "history": {fmt.Sprint(!*noHistory)}}
	if *prefix != "" {
		q.Set("prefix", *prefix)
	}
	if *typ != "" {
		q.Set("type", *typ)
	}
	p := newProgress(stderr, "export")
	err = writeOutput(*out, stdout, func(w io.Writer) error {
		return cf.client().Download(ctx, "/v1/projects/"+url.PathEscape(pos[0])+"/export", q, w, func(n int64) { p.bytes(n, 0) })
	})
	if err == nil {
		p.done()
	}
	return err
}

// runImport is `dss-sync import FILE --project P`.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	project := fs.String("project", "", "the project to import into")
	strategy := fs.String("strategy", "merge", "merge (causal merge with what is there) or replace (make the project equal to the input)")
	dryRun := fs.Bool("dry-run", false, "print the analysis and change nothing")
	pos, err := parseFlags(fs, args, "dss-sync import FILE --project P [--strategy replace|merge] [--dry-run]")
	if err != nil {
		return err
	}
	if len(pos) != 1 || *project == "" {
		return usageError{fmt.Errorf("import takes one file and --project")}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	ct := "application/json"
	head := make([]byte, 2)
	if n, _ := f.ReadAt(head, 0); n == 2 && string(head) == "PK" {
		ct = "application/zip"
	}
	q := url.Values{"strategy": {*strategy}}
	if *dryRun {
		q.Set("dry_run", "true")
	}
	c := cf.client()
	p := newProgress(stderr, "upload")
	body := api.CountingReader(f, func(n int64) { p.bytes(n, st.Size()) })
	res, err := c.Do(ctx, "POST", "/v1/projects/"+url.PathEscape(*project)+"/import", q, ct, body)
	if err != nil {
		var ce *api.ClientError
		if errors.As(err, &ce) && len(ce.Body) > 0 {
			fmt.Fprintf(stdout, "%s\n", indent(ce.Body))
		}
		return err
	}
	defer res.Body.Close()
	p.done()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == 202 {
		var j api.Job
		if err := json.Unmarshal(b, &j); err != nil {
			return err
		}
		jp := newProgress(stderr, "import")
		done, err := c.WaitJob(ctx, j.ID, func(j *api.Job) { jp.count(j.Progress.Done, j.Progress.Total) })
		if err != nil {
			return err
		}
		jp.done()
		b, _ = json.Marshal(done)
		if done.State == "failed" {
			fmt.Fprintf(stdout, "%s\n", indent(b))
			return fmt.Errorf("the import failed: %s", done.Error)
		}
	}
	fmt.Fprintf(stdout, "%s\n", indent(b))
	if *dryRun {
		var rep archive.Report
		if json.Unmarshal(b, &rep) == nil && !rep.Valid {
			return errors.New("the import would be refused")
		}
	}
	return nil
}

// runAnalyze is `dss-sync analyze FILE`: the checks of an import, offline.
func runAnalyze(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("usage: dss-sync analyze FILE")}
	}
	rep, err := checkFile(args[0])
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	if !rep.Valid {
		var problems []string
		for _, s := range rep.Stages {
			for _, e := range s.Errors {
				problems = append(problems, s.Name+": "+e)
			}
		}
		return fmt.Errorf("%s is not valid: %s", args[0], strings.Join(problems, "; "))
	}
	return nil
}

func checkFile(path string) (*archive.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	rep, _ := archive.Check(f, st.Size(), archive.DefaultImportLimits, nil)
	return rep, nil
}

func indent(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return out
}

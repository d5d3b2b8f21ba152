package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/dss-sync/dss-sync/projections/audit"
)

// runAudit is `dss-sync audit export|verify`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{fmt.Errorf("usage: dss-sync audit export PROJECT -o FILE [flags] | dss-sync audit verify FILE")}
	}
	switch args[0] {
	case "export":
		return runAuditExport(ctx, args[1:], stdout, stderr, getenv)
	case "verify":
		return runAuditVerify(args[1:], stdout)
	}
	return usageError{fmt.Errorf("unknown audit command %q: export or verify", args[0])}
}

func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	out := fs.String("o", "", "output file (- for stdout)")
	from := fs.String("from", "", "only events at or after this time (RFC 3339)")
	to := fs.String("to", "", "only events before this time (RFC 3339)")
	actor := fs.String("actor", "", "only this actor's events")
	entity := fs.String("entity", "", "only this token's, component's or project's events")
	typ := fs.String("type", "", "only events of this type (token.set, ...)")
	format := fs.String("format", "ndjson", "ndjson or csv")
	pos, err := parseFlags(fs, args, "dss-sync audit export PROJECT -o FILE [--from T] [--to T] [--actor A] [--format ndjson|csv]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("audit export takes one project, got %d arguments", len(pos))}
	}
	q := url.Values{"format": {*format}}
	for k, v := range map[string]string{"from": *from, "to": *to, "actor": *actor, "entity": *entity, "type": *typ} {
		if v != "" {
			q.Set(k, v)
		}
	}
	p := newProgress(stderr, "audit export")
	err = writeOutput(*out, stdout, func(w io.Writer) error {
		return cf.client().Download(ctx, "/v1/projects/"+url.PathEscape(pos[0])+"/audit", q, w, func(n int64) { p.bytes(n, 0) })
	})
	if err == nil {
		p.done()
	}
	return err
}

// runAuditVerify checks an audit export offline: exit 1 on any break,
// naming the first bad line.
func runAuditVerify(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("usage: dss-sync audit verify FILE")}
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 2)
	if n, _ := f.ReadAt(head, 0); n == 2 && string(head) == "PK" {
		// An archive: its manifest's hashes and signature, and its history's chains.
		rep, err := checkFile(args[0])
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		for _, s := range rep.Stages {
			if len(s.Errors) > 0 {
				return fmt.Errorf("%s: %s: %s", args[0], s.Name, s.Errors[0])
			}
		}
		return nil
	}
	res, err := audit.Verify(f)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	if res.Problem != "" {
		return fmt.Errorf("%s: line %d: %s", args[0], res.Line, res.Problem)
	}
	return nil
}

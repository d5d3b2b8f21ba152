package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/keys"
)

// keyAdmin implements api.KeyAdmin over the site's key store.
type keyAdmin struct{ s *keys.Store }

var _ api.KeyAdmin = keyAdmin{}

func apiKey(k *keys.Key, now time.Time) api.APIKey {
	out := api.APIKey{
		ID: k.ID, Name: k.Name, Scopes: k.Scopes, Projects: k.Projects, State: k.State(now),
		CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, RevokedBy: k.RevokedBy,
		RotatedFrom: k.RotatedFrom, RotatedTo: k.RotatedTo, UseCount: k.UseCount,
	}
	if out.Projects == nil {
		out.Projects = []string{}
	}
	for _, t := range []struct {
		from time.Time
		to   **time.Time
	}{{k.ExpiresAt, &out.ExpiresAt}, {k.RevokedAt, &out.RevokedAt}, {k.LastUsedAt, &out.LastUsedAt}} {
		if !t.from.IsZero() {
			v := t.from
			*t.to = &v
		}
	}
	return out
}

func (a keyAdmin) ListKeys(ctx context.Context) ([]api.APIKey, error) {
	list, err := a.s.List(ctx)
	if err != nil {
		return nil, err
	}
	now := a.s.Now()
	out := make([]api.APIKey, len(list))
	for i, k := range list {
		out[i] = apiKey(k, now)
	}
	return out, nil
}

func (a keyAdmin) CreateKey(ctx context.Context, actor, name string, scopes, projects []string, ttl time.Duration) (*api.KeyToken, error) {
	k, token, err := a.s.Create(keys.WithActor(ctx, actor), name, scopes, projects, ttl)
	if err != nil {
		return nil, err
	}
	return &api.KeyToken{Key: apiKey(k, a.s.Now()), Token: token}, nil
}

func (a keyAdmin) RotateKey(ctx context.Context, actor, id string, overlap time.Duration) (*api.KeyToken, error) {
	old, next, token, err := a.s.Rotate(keys.WithActor(ctx, actor), id, overlap)
	if err != nil {
		return nil, err
	}
	now := a.s.Now()
	prev := apiKey(old, now)
	return &api.KeyToken{Key: apiKey(next, now), Token: token, Previous: &prev}, nil
}

func (a keyAdmin) RevokeKey(ctx context.Context, actor, id string) (*api.APIKey, error) {
	k, err := a.s.Revoke(keys.WithActor(ctx, actor), id)
	if err != nil {
		return nil, err
	}
	out := apiKey(k, a.s.Now())
	return &out, nil
}

func (a keyAdmin) SecurityLog(ctx context.Context, after uint64, limit int) ([]api.SecurityRecord, error) {
	recs, err := a.s.Records(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.SecurityRecord, len(recs))
	for i, r := range recs {
		out[i] = api.SecurityRecord(r)
	}
	return out, nil
}

const keysUsage = `usage: dss-sync keys <command> [flags]

commands:
  create --name N --scope read[,write,admin] [--project P]... [--ttl 720h]
         mint a key; prints its token (once: it cannot be shown again)
  list   [--json]   every key: id, name, scopes, projects, state, expiry, last use
  rotate ID [--overlap 168h]
         mint ID's successor; ID keeps working for the overlap; prints the new token
  revoke ID         stop key ID at once
  log    [--after N] [--limit N] [--verify]
         the security log (NDJSON); --verify checks its hash chain from the first record

Every command takes --server, --token and --data-dir (see dss-sync export -h).
`

// runKeys is `dss-sync keys create|list|rotate|revoke|log`.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{errors.New(strings.TrimSuffix(keysUsage, "\n"))}
	}
	switch args[0] {
	case "create":
		return runKeysCreate(ctx, args[1:], stdout, stderr, getenv)
	case "list":
		return runKeysList(ctx, args[1:], stdout, getenv)
	case "rotate":
		return runKeysRotate(ctx, args[1:], stdout, stderr, getenv)
	case "revoke":
		return runKeysRevoke(ctx, args[1:], stdout, getenv)
	case "log":
		return runKeysLog(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		return fmt.Errorf("%w\n\n%s", flag.ErrHelp, keysUsage)
	}
	if strings.HasPrefix(args[0], "-") {
		return usageError{fmt.Errorf("name the keys command before its flags\n\n%s", strings.TrimSuffix(keysUsage, "\n"))}
	}
	return usageError{fmt.Errorf("unknown keys command %q: create, list, rotate, revoke or log", args[0])}
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

func runKeysCreate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	name := fs.String("name", "", "the key's name: the actor recorded on everything done with it")
	var scopes, projects listFlag
	fs.Var(&scopes, "scope", "read, write or admin (repeatable, or comma-separated)")
	fs.Var(&projects, "project", "limit the key to this project (repeatable; none: every project)")
	ttl := fs.Duration("ttl", 0, "the key's lifetime (default: the site's, 90 days)")
	line := "dss-sync keys create --name N --scope read[,write,admin] [--project P]... [--ttl 720h]"
	pos, err := parseFlags(fs, args, line)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError{fmt.Errorf("keys create takes no arguments, got %q\n\nusage: %s", pos, line)}
	case *name == "":
		return usageError{fmt.Errorf("name the key with --name\n\nusage: %s", line)}
	case len(scopes) == 0:
		return usageError{fmt.Errorf("give the key a --scope: read, write or admin\n\nusage: %s", line)}
	case *ttl < 0:
		return usageError{fmt.Errorf("--ttl must be positive, not %s", *ttl)}
	}
	spec := api.KeySpec{Name: *name, Scopes: scopes, Projects: projects}
	if *ttl > 0 {
		spec.TTL = ttl.String()
	}
	kt, err := cf.client().CreateKey(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, kt.Token)
	fmt.Fprintf(stderr, "created key %s %q (%s on %s), expires %s.\nThe token above is shown this once: store it now.\n",
		kt.Key.ID, kt.Key.Name, strings.Join(kt.Key.Scopes, ","), projectsText(kt.Key.Projects), timeText(kt.Key.ExpiresAt))
	return nil
}

func projectsText(p []string) string {
	if len(p) == 0 {
		return "every project"
	}
	return strings.Join(p, ",")
}

func timeText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func runKeysList(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	asJSON := fs.Bool("json", false, "print the keys as JSON")
	pos, err := parseFlags(fs, args, "dss-sync keys list [--json]")
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("keys list takes no arguments, got %q", pos)}
	}
	list, err := cf.client().ListKeys(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(map[string]any{"keys": list}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tPROJECTS\tSTATE\tEXPIRES\tLAST USED\tUSES")
	for _, k := range list {
		last := "never"
		if k.LastUsedAt != nil {
			last = k.LastUsedAt.UTC().Format(time.RFC3339)
		}
		state := k.State
		switch {
		case k.State == keys.StateRotated:
			state += " -> " + k.RotatedTo
		case k.State == keys.StateRevoked && k.RevokedAt != nil:
			state += " " + k.RevokedAt.UTC().Format(time.RFC3339)
		}
		proj := "*"
		if len(k.Projects) > 0 {
			proj = strings.Join(k.Projects, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", k.ID, k.Name, strings.Join(k.Scopes, ","), proj, state,
			timeText(k.ExpiresAt), last, k.UseCount)
	}
	return tw.Flush()
}

func runKeysRotate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	overlap := fs.Duration("overlap", 0, "how long the old key keeps working (default: the site's, 7 days)")
	line := "dss-sync keys rotate ID [--overlap 168h]"
	pos, err := parseFlags(fs, args, line)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usageError{fmt.Errorf("keys rotate takes one key id, got %d arguments\n\nusage: %s", len(pos), line)}
	case !keys.ValidID(pos[0]):
		return usageError{fmt.Errorf("%q is not a key id (16 of a-z, 2-7; see dss-sync keys list)", pos[0])}
	case *overlap < 0:
		return usageError{fmt.Errorf("--overlap must be positive, not %s (to cut a key off at once, rotate it, then revoke it)", *overlap)}
	}
	kt, err := cf.client().RotateKey(ctx, pos[0], *overlap)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, kt.Token)
	until := "now"
	if kt.Previous != nil {
		until = timeText(kt.Previous.ExpiresAt)
	}
	fmt.Fprintf(stderr, "rotated key %s %q to %s; the old key works until %s, the new one expires %s.\nThe token above is shown this once: store it now.\n",
		pos[0], kt.Key.Name, kt.Key.ID, until, timeText(kt.Key.ExpiresAt))
	// The key in <data-dir>/admin.key, which client commands use by
	// default, follows its rotation.
	if cf.token == "" {
		path := filepath.Join(cf.dataDir, "admin.key")
		if b, err := os.ReadFile(path); err == nil {
			if id, _, ok := keys.ParseToken(strings.TrimSpace(string(b))); ok && id == pos[0] {
				if err := writeFileAtomic(path, []byte(kt.Token+"\n"), 0o600); err != nil {
					return fmt.Errorf("the key is rotated, but %s still holds the old one: %w", path, err)
				}
				fmt.Fprintf(stderr, "%s now holds the new key.\n", path)
			}
		}
	}
	return nil
}

func runKeysRevoke(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("keys revoke", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	line := "dss-sync keys revoke ID"
	pos, err := parseFlags(fs, args, line)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usageError{fmt.Errorf("keys revoke takes one key id, got %d arguments\n\nusage: %s", len(pos), line)}
	case !keys.ValidID(pos[0]):
		return usageError{fmt.Errorf("%q is not a key id (16 of a-z, 2-7; see dss-sync keys list)", pos[0])}
	}
	k, err := cf.client().RevokeKey(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked key %s %q at %s\n", k.ID, k.Name, timeText(k.RevokedAt))
	return nil
}

func runKeysLog(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("keys log", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	after := fs.Uint64("after", 0, "start after this record")
	limit := fs.Int("limit", 0, "at most this many records (default: all)")
	verify := fs.Bool("verify", false, "check the hash chain (from the first record; not with --after)")
	pos, err := parseFlags(fs, args, "dss-sync keys log [--after N] [--limit N] [--verify]")
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError{fmt.Errorf("keys log takes no arguments, got %q", pos)}
	case *limit < 0:
		return usageError{fmt.Errorf("--limit must be positive")}
	case *verify && *after > 0:
		return usageError{fmt.Errorf("--verify checks the chain from the first record: leave out --after")}
	}
	c := cf.client()
	var v keys.Verifier
	n := 0
	next := *after
	for {
		page := api.MaxSecurityRecords
		if *limit > 0 {
			page = min(page, *limit-n)
		}
		recs, more, err := c.SecurityLog(ctx, next, page)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if *verify {
				kr := keys.Record(r)
				if err := v.Add(&kr); err != nil {
					return err
				}
			}
			b, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", b)
			next = r.Seq
			n++
		}
		if more == nil || len(recs) == 0 || (*limit > 0 && n >= *limit) {
			break
		}
	}
	if *verify {
		fmt.Fprintf(stderr, "security log verified: %d records, hash chain intact\n", v.Count())
	}
	return nil
}

package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/archive"
	"github.com/dss-sync/dss-sync/internal/keys"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/gorilla/mux"
	"github.com/oklog/ulid/v2"
	"gopkg.in/yaml.v3"
)

// httpMethods are the keys of an OpenAPI path item that name operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// scopeRank orders the scopes: a key holding one holds those below it.
var scopeRank = map[string]int{api.ScopeRead: 1, api.ScopeWrite: 2, api.ScopeAdmin: 3}

// testPrincipal holds every scope up to level (0: none), on every project.
type testPrincipal struct {
	name  string
	level int
}

func (p testPrincipal) Actor() string { return p.name }

func (p testPrincipal) Can(scope, project string) bool {
	r, ok := scopeRank[scope]
	return ok && r <= p.level
}

func (p testPrincipal) CanAny(scope string) bool { return p.Can(scope, "") }

// testAuth accepts the keys "none", "read", "write" and "admin", each
// holding the scopes up to its name.
type testAuth struct{}

func (testAuth) Authenticate(_ context.Context, token string) (api.Principal, error) {
	if token == "none" {
		return testPrincipal{name: "none"}, nil
	}
	if r, ok := scopeRank[token]; ok {
		return testPrincipal{name: token, level: r}, nil
	}
	return nil, events.Errorf(events.EUNAUTHORIZED, "unknown key")
}

func newServer(t testing.TB, auth api.Authenticator) *api.Server {
	t.Helper()
	site, err := projections.NewSite(projections.SiteConfig{ID: "test", Storage: projections.NewMemory()})
	if err != nil {
		t.Fatalf("NewSite: %v", err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	return api.NewServer(api.Config{Site: site, Auth: auth, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SigningKey: key,
		Archives: &testArchives{site: site, key: key, jobs: map[string]*api.Job{}}, Sync: testSync{}, Keys: newTestKeys(t)})
}

// testKeys implements api.KeyAdmin over a real key store (internal/keys on
// a Pebble bucket), as cmd/dss-sync does, so that the spec is checked
// against the answers real keys and security records make.
type testKeys struct{ s *keys.Store }

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := keys.Open(st.Bucket("keys"), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{ks}
}

func (k testKeys) apiKey(x *keys.Key) api.APIKey {
	out := api.APIKey{ID: x.ID, Name: x.Name, Scopes: x.Scopes, Projects: append([]string{}, x.Projects...), State: x.State(k.s.Now()),
		CreatedAt: x.CreatedAt, CreatedBy: x.CreatedBy, RevokedBy: x.RevokedBy, RotatedFrom: x.RotatedFrom, RotatedTo: x.RotatedTo, UseCount: x.UseCount}
	for _, tv := range []struct {
		from time.Time
		to   **time.Time
	}{{x.ExpiresAt, &out.ExpiresAt}, {x.RevokedAt, &out.RevokedAt}, {x.LastUsedAt, &out.LastUsedAt}} {
		if v := tv.from; !v.IsZero() {
			*tv.to = &v
		}
	}
	return out
}

func (k testKeys) ListKeys(ctx context.Context) ([]api.APIKey, error) {
	list, err := k.s.List(ctx)
	out := []api.APIKey{}
	for _, x := range list {
		out = append(out, k.apiKey(x))
	}
	return out, err
}

func (k testKeys) CreateKey(ctx context.Context, actor, name string, scopes, projects []string, ttl time.Duration) (*api.KeyToken, error) {
	x, token, err := k.s.Create(keys.WithActor(ctx, actor), name, scopes, projects, ttl)
	if err != nil {
		return nil, err
	}
	return &api.KeyToken{Key: k.apiKey(x), Token: token}, nil
}

func (k testKeys) RotateKey(ctx context.Context, actor, id string, overlap time.Duration) (*api.KeyToken, error) {
	old, next, token, err := k.s.Rotate(keys.WithActor(ctx, actor), id, overlap)
	if err != nil {
		return nil, err
	}
	prev := k.apiKey(old)
	return &api.KeyToken{Key: k.apiKey(next), Token: token, Previous: &prev}, nil
}

func (k testKeys) RevokeKey(ctx context.Context, actor, id string) (*api.APIKey, error) {
	x, err := k.s.Revoke(keys.WithActor(ctx, actor), id)
	if err != nil {
		return nil, err
	}
	out := k.apiKey(x)
	return &out, nil
}

func (k testKeys) SecurityLog(ctx context.Context, after uint64, limit int) ([]api.SecurityRecord, error) {
	recs, err := k.s.Records(ctx, after, limit)
	out := []api.SecurityRecord{}
	for _, r := range recs {
		out = append(out, api.SecurityRecord(r))
	}
	return out, err
}

// testSync reports one peer with every field set, the shape cmd/dss-sync's
// answers take, so that the spec's Peer schema is checked against it.
type testSync struct{}

func (testSync) Connection() string { return "connected" }

func (testSync) Peers(context.Context) []api.PeerStatus {
	last := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return []api.PeerStatus{{
		URL: "nats://***@lyon.example:4222", Site: "lyon", Connection: "connected", Lag: api.PeerLag{Events: 3},
		Sites:       []api.PeerSite{{Site: "lyon", Applied: 120, Behind: 3}, {Site: "nice", Applied: 7, Error: "consumer not found"}},
		AntiEntropy: api.AntiEntropy{LastRun: &last, Repaired: 2, Error: "site nice refused dss.nice.sync.vectors: store is closed"},
		Error:       "",
	}}
}

// testArchives implements api.Archives with the archive format
// (internal/archive) over the site, as cmd/dss-sync does, but without the job
// runner: an import is applied before it answers, as one job that succeeded
// (200), which Job then returns. The answers have the shapes of the real ones.
type testArchives struct {
	site *projections.Site
	key  ed25519.PrivateKey
	mu   sync.Mutex
	jobs map[string]*api.Job
}

// Limits of cmd/dss-sync's archives.
const (
	testImportChunk = 2000    // records per job chunk
	testMaxPlan     = 200_000 // records a dry run plans
	testMaxReplace  = 250_000 // records a replace holds
)

func (a *testArchives) Export(ctx context.Context, project string, q api.ExportQuery, w io.Writer) error {
	if q.Format == "dtcg" {
		_, err := archive.ExportDTCG(ctx, a.site, project, q.Prefix, q.Type, w)
		return err
	}
	_, err := archive.Export(ctx, a.site, project, archive.ExportOptions{History: q.History, Prefix: q.Prefix, Type: q.Type, Key: a.key}, w)
	return err
}

// testReportError is a refused import: a 422 whose problem carries the
// report.
type testReportError struct {
	err    *events.Error
	report *archive.Report
}

func (e testReportError) Error() string                 { return e.err.Error() }
func (e testReportError) ProblemExtras() map[string]any { return map[string]any{"report": e.report} }
func (e testReportError) Unwrap() error                 { return e.err }

// testImportSummary is the result of an import job (importSummary in
// cmd/dss-sync).
type testImportSummary struct {
	History struct {
		Applied    int `json:"applied"`
		Duplicates int `json:"duplicates"`
		Held       int `json:"held"`
		Refused    int `json:"refused"`
	} `json:"history"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
	Events    int `json:"events"`
}

func (a *testArchives) Import(ctx context.Context, req api.ImportRequest) (*api.ImportAnswer, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	rep, in := archive.Check(bytes.NewReader(body), int64(len(body)), archive.DefaultImportLimits, nil)
	if in == nil {
		return nil, testReportError{events.Errorf(events.EINVALID, "the import is refused: see the report's stages"), rep}
	}
	project, err := a.site.Project(ctx, req.Project)
	if err != nil && events.ErrorCode(err) != events.ENOTFOUND {
		return nil, err
	}
	// Its own project: history and revs kept; another: a copy.
	same := in.Project.ID == "" || in.Project.ID == req.Project
	createName := ""
	if project == nil && (!in.HasHistory || !same) {
		if createName = in.Project.Name; createName == "" {
			createName = req.Project
		}
	}
	var evs []*events.Event
	var items []projections.Item
	err = in.Records(ctx, archive.RecordOptions{History: same, Revs: same}, func(r archive.Record) error {
		if r.Event != nil {
			evs = append(evs, r.Event)
		} else {
			items = append(items, *r.Item)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	records := len(evs) + len(items)
	opt := projections.ImportOptions{Replace: req.Strategy == "replace", CreateName: createName}
	if req.DryRun {
		st := rep.Stage(archive.StageMerge)
		if records > testMaxPlan {
			st.Warnings = append(st.Warnings, fmt.Sprintf("more than %d records: the plan is not computed", testMaxPlan))
			return &api.ImportAnswer{Status: http.StatusOK, Body: rep}, nil
		}
		plan, err := a.site.AnalyzeImport(ctx, req.Project, req.Actor, evs, items, opt)
		if err != nil {
			st.OK, st.Errors, rep.Valid = false, append(st.Errors, events.ErrorMessage(err)), false
			return &api.ImportAnswer{Status: http.StatusOK, Body: rep}, nil
		}
		rep.Plan = plan
		for kind, n := range plan.Conflicts {
			st.Warnings = append(st.Warnings, fmt.Sprintf("%d %s conflicts would open", n, kind))
		}
		for _, f := range plan.Flags {
			st.Warnings = append(st.Warnings, "clock skew: "+f.String())
		}
		for _, r := range plan.Refused {
			st.OK, rep.Valid = false, false
			st.Errors = append(st.Errors, fmt.Sprintf("event %s would be refused: %s", r.Event, r.Reason))
		}
		return &api.ImportAnswer{Status: http.StatusOK, Body: rep}, nil
	}
	if opt.Replace && records > testMaxReplace {
		return nil, events.Errorf(events.ETOOLARGE, "a replace applies in one transaction, up to %d records; this holds %d: use merge", testMaxReplace, records)
	}
	now := time.Now().UTC()
	chunks := int64((records + testImportChunk - 1) / testImportChunk)
	j := &api.Job{ID: ulid.Make().String(), Kind: "import", Project: req.Project, State: "succeeded",
		Progress: api.JobProgress{Done: chunks, Total: chunks}, Created: now, Updated: now}
	if chunks > 0 { // the job runner applies nothing, and sums no result, for no chunks
		// A merge's references were checked whole by Check; a job's chunks
		// skip them.
		opt.SkipReferences = !opt.Replace
		res, err := a.site.Import(ctx, req.Project, req.Actor, evs, items, opt)
		if err != nil {
			return nil, events.Errorf(events.EINVALID, "the import failed: %s", events.ErrorMessage(err))
		}
		var sum testImportSummary
		if rc := res.Receipt; rc != nil {
			sum.History.Applied, sum.History.Duplicates = len(rc.Applied), rc.Duplicates
			sum.History.Held, sum.History.Refused = len(rc.Held), len(rc.Refused)
		}
		sum.Created, sum.Updated, sum.Deleted, sum.Unchanged, sum.Events = res.Created, res.Updated, res.Deleted, res.Unchanged, res.Events
		if j.Result, err = json.Marshal(sum); err != nil {
			return nil, err
		}
		j.Updated = time.Now().UTC()
	}
	a.mu.Lock()
	a.jobs[j.ID] = j
	a.mu.Unlock()
	return &api.ImportAnswer{Status: http.StatusOK, Body: j}, nil
}

func (a *testArchives) Job(_ context.Context, id string) (*api.Job, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	j, ok := a.jobs[id]
	if !ok {
		return nil, events.Errorf(events.ENOTFOUND, "no job %q", id)
	}
	c := *j
	return &c, nil
}

func loadSpec(t testing.TB) map[string]any {
	t.Helper()
	var spec map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &spec); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	if spec == nil {
		t.Fatalf("openapi.yaml is empty")
	}
	return spec
}

// normalizeTemplate turns a gorilla/mux template into an OpenAPI one by
// dropping variable patterns: "/a/{id:[0-9]+}" becomes "/a/{id}".
func normalizeTemplate(tpl string) string {
	var b strings.Builder
	depth := 0
	skipping := false
	for _, r := range tpl {
		switch {
		case r == '{':
			depth++
			if depth == 1 {
				b.WriteRune(r)
				continue
			}
		case r == '}':
			depth--
			if depth == 0 {
				skipping = false
				b.WriteRune(r)
				continue
			}
		case r == ':' && depth == 1:
			skipping = true
		}
		if !skipping {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// serverRoutes returns "METHOD /template" for every route of srv.
func serverRoutes(t testing.TB, srv *api.Server) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := srv.Router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s: %w", tpl, err)
		}
		if len(methods) != 1 {
			return fmt.Errorf("route %s has methods %v, want exactly one", tpl, methods)
		}
		out[methods[0]+" "+normalizeTemplate(tpl)] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walk routes: %v", err)
	}
	if len(out) == 0 {
		t.Fatalf("the router has no routes")
	}
	return out
}

// operation is one operation of the spec.
type operation struct {
	method, path string
	item, op     map[string]any
}

func (o operation) key() string { return strings.ToUpper(o.method) + " " + o.path }

func specOperations(t testing.TB, spec map[string]any) []operation {
	t.Helper()
	paths, ok := spec["paths"].(map[string]any)
	if !ok {
		t.Fatalf("paths is %T, want a mapping", spec["paths"])
	}
	var out []operation
	for path, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("paths[%q] is %T, want a mapping", path, v)
		}
		for _, m := range httpMethods {
			if op, ok := item[m].(map[string]any); ok {
				out = append(out, operation{method: m, path: path, item: item, op: op})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

func findOperation(t testing.TB, ops []operation, key string) operation {
	t.Helper()
	for _, o := range ops {
		if o.key() == key {
			return o
		}
	}
	t.Fatalf("the spec has no operation %s", key)
	return operation{}
}

// lookup follows a local reference ("#/components/schemas/Token").
func lookup(spec map[string]any, ref string) (any, bool) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var node any = spec
	for _, seg := range strings.Split(rest, "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return node, true
}

// deref follows $ref until it reaches a node without one.
func deref(t testing.TB, spec map[string]any, node any) map[string]any {
	t.Helper()
	for i := 0; i < 32; i++ {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("node is %T, want a mapping", node)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if node, ok = lookup(spec, ref); !ok {
			t.Fatalf("$ref %q does not resolve", ref)
		}
	}
	t.Fatalf("$ref chain too long")
	return nil
}

// parameters returns the parameters of an operation (its own and its path
// item's), references resolved.
func parameters(t testing.TB, spec map[string]any, o operation) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, src := range []any{o.item["parameters"], o.op["parameters"]} {
		if src == nil {
			continue
		}
		list, ok := src.([]any)
		if !ok {
			t.Fatalf("%s: parameters is %T, want a list", o.key(), src)
		}
		for _, p := range list {
			out = append(out, deref(t, spec, p))
		}
	}
	return out
}

var templateVarRE = regexp.MustCompile(`\{([^{}]+)\}`)

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	routes := serverRoutes(t, newServer(t, nil))
	spec := loadSpec(t)
	documented := map[string]bool{}
	for _, o := range specOperations(t, spec) {
		documented[o.key()] = true
	}
	for _, k := range slices.Sorted(maps.Keys(routes)) {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.yaml", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !routes[k] {
			t.Errorf("openapi.yaml describes %s, which no route serves", k)
		}
	}
	if got, want := len(documented), len(routes); got != want {
		t.Errorf("openapi.yaml has %d operations, want %d (one per route)", got, want)
	}
}

func TestOpenAPIIsWellFormed(t *testing.T) {
	spec := loadSpec(t)
	if got, want := fmt.Sprint(spec["openapi"]), "3.1.0"; got != want {
		t.Fatalf("openapi = %q, want %q", got, want)
	}
	for _, k := range []string{"info", "paths", "components"} {
		if _, ok := spec[k].(map[string]any); !ok {
			t.Fatalf("%s is %T, want a mapping", k, spec[k])
		}
	}
	schemes, _ := deref(t, spec, spec["components"])["securitySchemes"].(map[string]any)
	bearer, ok := schemes["bearerAuth"].(map[string]any)
	if !ok || bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Fatalf("securitySchemes.bearerAuth = %v, want an http bearer scheme", schemes["bearerAuth"])
	}
	global, _ := spec["security"].([]any)
	if len(global) == 0 {
		t.Fatalf("global security = %v, want bearerAuth", spec["security"])
	}
	checkSecurity := func(where string, reqs []any) {
		t.Helper()
		for _, r := range reqs {
			m, ok := r.(map[string]any)
			if !ok {
				t.Errorf("%s: security requirement is %T, want a mapping", where, r)
				continue
			}
			for name := range m {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s: security names scheme %q, which is not in securitySchemes", where, name)
				}
			}
		}
	}
	checkSecurity("global", global)

	ids := map[string]string{}
	statusRE := regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]XX|default)$`)
	for _, o := range specOperations(t, spec) {
		id, _ := o.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", o.key())
		} else if other, dup := ids[id]; dup {
			t.Errorf("operationId %q is used by %s and %s", id, other, o.key())
		} else {
			ids[id] = o.key()
		}

		responses, _ := o.op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s has no responses", o.key())
		}
		for code := range responses {
			if !statusRE.MatchString(code) {
				t.Errorf("%s: response key %q is not a status code", o.key(), code)
			}
		}

		if sec, ok := o.op["security"]; ok {
			list, ok := sec.([]any)
			if !ok {
				t.Errorf("%s: security is %T, want a list", o.key(), sec)
			}
			checkSecurity(o.key(), list)
		}

		declared := map[string]bool{}
		for _, p := range parameters(t, spec, o) {
			if p["in"] != "path" {
				continue
			}
			name, _ := p["name"].(string)
			declared[name] = true
			if p["required"] != true {
				t.Errorf("%s: path parameter %q has required=%v, want true", o.key(), name, p["required"])
			}
		}
		inTemplate := map[string]bool{}
		for _, m := range templateVarRE.FindAllStringSubmatch(o.path, -1) {
			inTemplate[m[1]] = true
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared", o.key(), m[1])
			}
		}
		for name := range declared {
			if !inTemplate[name] {
				t.Errorf("%s: declares path parameter %q, which is not in the template", o.key(), name)
			}
		}
	}

	refs := 0
	walkYAML(spec, "#", func(where string, node map[string]any) {
		ref, ok := node["$ref"]
		if !ok {
			return
		}
		refs++
		s, ok := ref.(string)
		if !ok || !strings.HasPrefix(s, "#/components/") {
			t.Errorf("%s: $ref %v, want a reference into #/components/", where, ref)
			return
		}
		if _, ok := lookup(spec, s); !ok {
			t.Errorf("%s: $ref %q does not resolve", where, s)
		}
	})
	if refs == 0 {
		t.Errorf("the document has no $ref at all; want shared components")
	}
	for _, name := range []string{
		"Token", "Component", "Project", "Event", "Conflict", "Candidate", "Change", "Result",
		"TokenPage", "ComponentPage", "EventPage", "Problem", "Job", "SyncStatus", "DTCGType",
	} {
		if _, ok := lookup(spec, "#/components/schemas/"+name); !ok {
			t.Errorf("components/schemas has no %s", name)
		}
	}
	if _, ok := lookup(spec, "#/components/responses/Problem"); !ok {
		t.Errorf("components/responses has no Problem")
	}
}

// walkYAML calls fn on every mapping in node, with its JSON pointer.
func walkYAML(node any, where string, fn func(string, map[string]any)) {
	switch n := node.(type) {
	case map[string]any:
		fn(where, n)
		for k, v := range n {
			walkYAML(v, where+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), fn)
		}
	case []any:
		for i, v := range n {
			walkYAML(v, fmt.Sprintf("%s/%d", where, i), fn)
		}
	}
}

func do(t testing.TB, h http.Handler, method, target, key string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestOpenAPIServed(t *testing.T) {
	srv := newServer(t, testAuth{})
	rec := do(t, srv, "GET", "/v1/openapi.yaml", "", nil, nil)
	if got, want := rec.Code, http.StatusUnauthorized; got != want {
		t.Fatalf("GET /v1/openapi.yaml without a key: status %d, want %d", got, want)
	}
	if got, want := rec.Header().Get("Content-Type"), "application/problem+json"; got != want {
		t.Errorf("GET /v1/openapi.yaml without a key: Content-Type %q, want %q", got, want)
	}
	if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("GET /v1/openapi.yaml without a key: WWW-Authenticate %q, want a Bearer challenge", got)
	}

	rec = do(t, srv, "GET", "/healthz", "", nil, nil)
	if got, want := rec.Code, http.StatusOK; got != want {
		t.Fatalf("GET /healthz without a key: status %d, want %d", got, want)
	}

	rec = do(t, srv, "GET", "/v1/openapi.yaml", "read", nil, nil)
	if got, want := rec.Code, http.StatusOK; got != want {
		t.Fatalf("GET /v1/openapi.yaml with a read key: status %d, want %d", got, want)
	}
	if got, want := rec.Header().Get("Content-Type"), "application/yaml"; got != want {
		t.Errorf("GET /v1/openapi.yaml: Content-Type %q, want %q", got, want)
	}
	if !bytes.Equal(rec.Body.Bytes(), api.OpenAPI()) {
		t.Errorf("GET /v1/openapi.yaml: body differs from api.OpenAPI() (got %d bytes, want %d)", rec.Body.Len(), len(api.OpenAPI()))
	}
}

// concreteURL fills a path template with values that match the parameters'
// patterns.
func concreteURL(template string) string {
	return templateVarRE.ReplaceAllStringFunc(template, func(v string) string {
		switch v {
		case "{p}":
			return "demo"
		case "{path}":
			return "color.base"
		case "{name}":
			return "Button"
		case "{id}":
			return "0123456789abcdef01234567"
		}
		return "x"
	})
}

// TestOpenAPIScopesMatchServer checks each operation's documented scope
// (x-scope, and the "Scope:" line of its description) and security against
// what the server enforces: no key gets 401 unless security is empty, a key
// one scope short gets 403, and a key with the scope gets past the check.
func TestOpenAPIScopesMatchServer(t *testing.T) {
	srv := newServer(t, testAuth{})
	spec := loadSpec(t)
	levels := []string{"none", api.ScopeRead, api.ScopeWrite, api.ScopeAdmin}
	for _, o := range specOperations(t, spec) {
		method, target := strings.ToUpper(o.method), concreteURL(o.path)
		sec, hasSec := o.op["security"].([]any)
		open := hasSec && len(sec) == 0
		scope, _ := o.op["x-scope"].(string)
		desc, _ := o.op["description"].(string)

		rec := do(t, srv, method, target, "", nil, nil)
		if open {
			if scope != "" {
				t.Errorf("%s: security is empty but x-scope is %q", o.key(), scope)
			}
			if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden {
				t.Errorf("%s without a key: status %d, want it served (security is empty)", o.key(), rec.Code)
			}
			continue
		}
		if got, want := rec.Code, http.StatusUnauthorized; got != want {
			t.Errorf("%s without a key: status %d, want %d", o.key(), got, want)
		}
		rank, ok := scopeRank[scope]
		if !ok {
			t.Errorf("%s: x-scope is %q, want read, write or admin", o.key(), scope)
			continue
		}
		if want := "Scope: `" + scope + "`"; !strings.Contains(desc, want) {
			t.Errorf("%s: description does not say %q", o.key(), want)
		}
		if got, want := do(t, srv, method, target, levels[rank-1], nil, nil).Code, http.StatusForbidden; got != want {
			t.Errorf("%s with a %s key: status %d, want %d (documented scope %s)", o.key(), levels[rank-1], got, want, scope)
		}
		if got := do(t, srv, method, target, levels[rank], nil, nil).Code; got == http.StatusUnauthorized || got == http.StatusForbidden {
			t.Errorf("%s with a %s key: status %d, want past the scope check", o.key(), levels[rank], got)
		}
	}
}

// specExample returns the value of an example in the spec, as JSON.
func specExample(t testing.TB, spec map[string]any, ref string) []byte {
	t.Helper()
	node, ok := lookup(spec, ref)
	if !ok {
		t.Fatalf("example %s is not in the spec", ref)
	}
	b, err := json.Marshal(node)
	if err != nil {
		t.Fatalf("example %s: %v", ref, err)
	}
	return b
}

// TestOpenAPIMatchesResponses drives the server through its documented
// examples and checks every answer against the spec: its status is
// documented for the operation, its documented headers are present, and its
// body fits the documented schema for its media type. Response objects are
// checked strictly: a property the schema does not list is an error, so an
// undocumented field fails here.
func TestOpenAPIMatchesResponses(t *testing.T) {
	srv := newServer(t, testAuth{})
	spec := loadSpec(t)
	ops := specOperations(t, spec)

	createProject := specExample(t, spec, "#/paths/~1v1~1projects/post/requestBody/content/application~1json/example")
	changeBatch := specExample(t, spec, "#/components/examples/ChangeBatch/value")
	colorInput := specExample(t, spec, "#/components/examples/ColorTokenInput/value")
	aliasInput := specExample(t, spec, "#/paths/~1v1~1projects~1{p}~1tokens~1{path}/put/requestBody/content/application~1json/examples/alias/value")
	componentInput := specExample(t, spec, "#/paths/~1v1~1projects~1{p}~1components~1{name}/put/requestBody/content/application~1json/example")
	dtcgDocument := specExample(t, spec, "#/components/schemas/DTCGDocument/example")
	createKey := specExample(t, spec, "#/paths/~1v1~1admin~1keys/post/requestBody/content/application~1json/example")
	rotateKey := specExample(t, spec, "#/paths/~1v1~1admin~1keys~1{id}~1rotate/post/requestBody/content/application~1json/example")

	type step struct {
		op     string // "METHOD /template"
		target string // "{job}" stands for the id of the last job answered
		key    string
		body   []byte
		bodyOf *[]byte // when set, the body is what it points to when the step runs
		keep   *[]byte // when set, receives the answer's body
		header map[string]string
		want   int
	}
	var exported []byte // the .dss archive of project web
	jobID := ""
	jsonCT := map[string]string{"Content-Type": "application/json"}
	zipCT := map[string]string{"Content-Type": "application/zip"}
	tok := "/v1/projects/web/tokens/"
	comp := "/v1/projects/web/components/"
	steps := []step{
		{op: "GET /healthz", target: "/healthz", want: 200},
		{op: "GET /readyz", target: "/readyz", want: 200},
		{op: "GET /metrics", target: "/metrics", key: "read", want: 200},
		{op: "GET /v1/openapi.yaml", target: "/v1/openapi.yaml", key: "read", want: 200},
		{op: "GET /v1/projects", target: "/v1/projects", want: 401},
		{op: "POST /v1/projects", target: "/v1/projects", key: "write", body: createProject, header: jsonCT, want: 201},
		{op: "POST /v1/projects", target: "/v1/projects", key: "write", body: createProject, header: jsonCT, want: 409},
		{op: "POST /v1/projects", target: "/v1/projects", key: "write", body: []byte(`{"id":"Bad Id"}`), header: jsonCT, want: 400},
		{op: "POST /v1/projects", target: "/v1/projects", key: "write", body: []byte(`{"id":"x","extra":1}`), header: jsonCT, want: 400},
		{op: "GET /v1/projects", target: "/v1/projects", key: "read", want: 200},
		{op: "GET /v1/projects/{p}", target: "/v1/projects/web", key: "read", want: 200},
		{op: "GET /v1/projects/{p}", target: "/v1/projects/nope", key: "read", want: 404},
		{op: "POST /v1/projects/{p}/changes", target: "/v1/projects/web/changes", key: "write", body: changeBatch, header: jsonCT, want: 200},
		{op: "POST /v1/projects/{p}/changes", target: "/v1/projects/web/changes", key: "write", body: []byte(`{"changes":[]}`), header: jsonCT, want: 422},
		{op: "PUT /v1/projects/{p}/tokens/{path}", target: tok + "color.brand.primary", key: "write", body: colorInput, header: jsonCT, want: 200},
		{op: "PUT /v1/projects/{p}/tokens/{path}", target: tok + "color.accent", key: "write", body: colorInput, header: jsonCT, want: 201},
		{op: "PUT /v1/projects/{p}/tokens/{path}", target: tok + "color.text.visited", key: "write", body: aliasInput, header: jsonCT, want: 201},
		{op: "PUT /v1/projects/{p}/tokens/{path}", target: tok + "color.accent", key: "write", body: colorInput,
			header: map[string]string{"Content-Type": "application/json", "If-Match": `"01JQ8Z6W60R4M2XH5V3K9P7SAB"`}, want: 412},
		{op: "PUT /v1/projects/{p}/tokens/{path}", target: tok + "color.accent", key: "write", body: colorInput,
			header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{op: "PUT /v1/projects/{p}/tokens/{path}", target: tok + "color.accent", key: "write",
			body: []byte(`{"$type":"color","$value":"not a colour"}`), header: jsonCT, want: 422},
		{op: "GET /v1/projects/{p}/tokens", target: "/v1/projects/web/tokens?type=color&limit=1", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/tokens", target: "/v1/projects/web/tokens?prefix=color", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/tokens", target: "/v1/projects/web/tokens?at=2", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/tokens", target: "/v1/projects/web/tokens?limit=0", key: "read", want: 400},
		{op: "GET /v1/projects/{p}/tokens/{path}", target: tok + "color.brand.primary", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/tokens/{path}", target: tok + "color.missing", key: "read", want: 404},
		{op: "GET /v1/projects/{p}/tokens/{path}/history", target: tok + "color.brand.primary/history", key: "read", want: 200},
		{op: "DELETE /v1/projects/{p}/tokens/{path}", target: tok + "color.brand.primary", key: "write", want: 409},
		{op: "DELETE /v1/projects/{p}/tokens/{path}", target: tok + "color.accent", key: "write", want: 204},
		{op: "GET /v1/projects/{p}/components", target: "/v1/projects/web/components", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/components/{name}", target: comp + "Button", key: "read", want: 200},
		{op: "PUT /v1/projects/{p}/components/{name}", target: comp + "Button", key: "write", body: componentInput, header: jsonCT, want: 200},
		{op: "PUT /v1/projects/{p}/components/{name}", target: comp + "Card", key: "write", body: componentInput, header: jsonCT, want: 201},
		{op: "GET /v1/projects/{p}/components/{name}/history", target: comp + "Button/history", key: "read", want: 200},
		{op: "DELETE /v1/projects/{p}/components/{name}", target: comp + "Card", key: "write", want: 204},
		{op: "GET /v1/projects/{p}/events", target: "/v1/projects/web/events?limit=2", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/events", target: "/v1/projects/web/events", key: "read",
			header: map[string]string{"Accept": "application/x-ndjson"}, want: 200},
		{op: "GET /v1/projects/{p}/events", target: "/v1/projects/web/events?after=nope", key: "read", want: 400},
		{op: "GET /v1/projects/{p}/conflicts", target: "/v1/projects/web/conflicts", key: "read", want: 200},
		{op: "POST /v1/projects/{p}/conflicts/{id}/resolve", target: "/v1/projects/web/conflicts/0123456789abcdef01234567/resolve",
			key: "write", body: []byte(`{"pick":"01JQ8Z6W60R4M2XH5V3K9P7SAB"}`), header: jsonCT, want: 404},
		{op: "GET /v1/projects/{p}/audit", target: "/v1/projects/web/audit?format=csv", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/audit", target: "/v1/projects/web/audit?type=token.explode", key: "read", want: 400},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/web/export", key: "read", keep: &exported, want: 200},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/web/export?format=dss&history=false&prefix=color", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/web/export?format=dtcg", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/web/export?format=dtcg&type=color", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/web/export?format=pdf", key: "read", want: 400},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/web/export?type=colour", key: "read", want: 400},
		{op: "GET /v1/projects/{p}/export", target: "/v1/projects/nope/export", key: "read", want: 404},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import?dry_run=true", key: "write", bodyOf: &exported, header: zipCT, want: 200},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import?dry_run=true", key: "write", body: dtcgDocument, header: jsonCT, want: 200},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import?dry_run=true&strategy=replace", key: "write", body: dtcgDocument, header: jsonCT, want: 200},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import", key: "write", body: dtcgDocument, header: jsonCT, want: 200},
		{op: "GET /v1/jobs/{id}", target: "/v1/jobs/{job}", key: "read", want: 200},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/copy/import", key: "write", bodyOf: &exported, header: zipCT, want: 200},
		{op: "GET /v1/jobs/{id}", target: "/v1/jobs/{job}", key: "read", want: 200},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import", key: "write", body: dtcgDocument,
			header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import", key: "write",
			body: []byte("neither a zip nor JSON"), header: map[string]string{"Content-Type": "application/octet-stream"}, want: 422},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import", key: "write", body: []byte(`{"color":{"$value":"#zz"}}`), header: jsonCT, want: 422},
		{op: "POST /v1/projects/{p}/import", target: "/v1/projects/web/import?strategy=overwrite", key: "write", body: dtcgDocument, header: jsonCT, want: 400},
		{op: "GET /v1/jobs/{id}", target: "/v1/jobs/01JQ8Z6W60R4M2XH5V3K9P7SAB", key: "read", want: 404},
		{op: "GET /v1/sync/status", target: "/v1/sync/status", key: "read", want: 200},
		{op: "GET /v1/projects/{p}/events/stream", target: "/v1/projects/web/events/stream", key: "read", want: 501},

		{op: "GET /v1/admin/keys", target: "/v1/admin/keys", key: "admin", want: 200},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: createKey, header: jsonCT, want: 201},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: createKey, header: jsonCT, want: 409},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: []byte(`{"name":"x","scopes":["read"],"ttl":"soon"}`), header: jsonCT, want: 400},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: []byte(`{"name":"x","scopes":["read"],"secret":"mine"}`), header: jsonCT, want: 400},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: []byte(`{"name":"x","scopes":["root"]}`), header: jsonCT, want: 422},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: []byte(`{"name":"x","scopes":["read"],"ttl":"-1h"}`), header: jsonCT, want: 422},
		{op: "POST /v1/admin/keys", target: "/v1/admin/keys", key: "admin", body: createKey, header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/{key}/rotate", key: "admin", body: rotateKey, header: jsonCT, want: 201},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/{key}/rotate", key: "admin", want: 201},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/{first}/rotate", key: "admin", want: 409},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/{key}/rotate", key: "admin", body: []byte(`{"overlap":"0s"}`), header: jsonCT, want: 422},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/{key}/rotate", key: "admin", body: []byte(`{"overlap":"a week"}`), header: jsonCT, want: 400},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/aaaaaaaaaaaaaaaa/rotate", key: "admin", want: 404},
		{op: "POST /v1/admin/keys/{id}/revoke", target: "/v1/admin/keys/{first}/revoke", key: "admin", want: 200},
		{op: "POST /v1/admin/keys/{id}/revoke", target: "/v1/admin/keys/{first}/revoke", key: "admin", want: 200},
		{op: "POST /v1/admin/keys/{id}/revoke", target: "/v1/admin/keys/aaaaaaaaaaaaaaaa/revoke", key: "admin", want: 404},
		{op: "POST /v1/admin/keys/{id}/rotate", target: "/v1/admin/keys/{first}/rotate", key: "admin", want: 409},
		{op: "GET /v1/admin/keys", target: "/v1/admin/keys", key: "admin", want: 200},
		{op: "GET /v1/admin/keys", target: "/v1/admin/keys", key: "write", want: 403},
		{op: "GET /v1/admin/security-log", target: "/v1/admin/security-log", key: "admin", want: 200},
		{op: "GET /v1/admin/security-log", target: "/v1/admin/security-log?after=1&limit=2", key: "admin", want: 200},
		{op: "GET /v1/admin/security-log", target: "/v1/admin/security-log?after=-1", key: "admin", want: 400},
		{op: "GET /v1/admin/security-log", target: "/v1/admin/security-log?limit=1001", key: "admin", want: 400},
	}
	firstKey, lastKey := "", ""
	for i, s := range steps {
		method, _, _ := strings.Cut(s.op, " ")
		o := findOperation(t, ops, s.op)
		target, body := strings.NewReplacer("{job}", jobID, "{key}", lastKey, "{first}", firstKey).Replace(s.target), s.body
		if s.bodyOf != nil {
			body = *s.bodyOf
		}
		rec := do(t, srv, method, target, s.key, body, s.header)
		where := fmt.Sprintf("step %d: %s %s", i, method, target)
		if rec.Code != s.want {
			t.Errorf("%s: status %d, want %d; body %.300s", where, rec.Code, s.want, rec.Body.Bytes())
			continue
		}
		checkResponse(t, spec, o, where, rec)
		if s.keep != nil {
			*s.keep = rec.Body.Bytes()
		}
		var job struct{ ID, State string }
		if s.op == "POST /v1/projects/{p}/import" && rec.Code/100 == 2 && json.Unmarshal(rec.Body.Bytes(), &job) == nil && job.ID != "" {
			jobID = job.ID
		}
		var made api.KeyToken
		if strings.HasPrefix(s.op, "POST /v1/admin/keys") && rec.Code == 201 && json.Unmarshal(rec.Body.Bytes(), &made) == nil {
			lastKey = made.Key.ID
			if firstKey == "" {
				firstKey = made.Key.ID
			}
		}
	}
}

// checkResponse checks one answer against its operation's documentation.
func checkResponse(t *testing.T, spec map[string]any, o operation, where string, rec *httptest.ResponseRecorder) {
	t.Helper()
	responses, _ := o.op["responses"].(map[string]any)
	raw, ok := responses[fmt.Sprint(rec.Code)]
	if !ok {
		t.Errorf("%s: status %d is not documented for %s", where, rec.Code, o.key())
		return
	}
	resp := deref(t, spec, raw)
	headers, _ := resp["headers"].(map[string]any)
	for name := range headers {
		if rec.Header().Get(name) == "" {
			t.Errorf("%s: documented header %s is missing", where, name)
		}
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Errorf("%s: X-Request-Id is missing", where)
	}
	content, _ := resp["content"].(map[string]any)
	if rec.Body.Len() == 0 {
		if len(content) > 0 && rec.Code != http.StatusNotModified {
			t.Errorf("%s: empty body, want one of %v", where, slices.Sorted(maps.Keys(content)))
		}
		return
	}
	mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if err != nil {
		t.Errorf("%s: Content-Type %q: %v", where, rec.Header().Get("Content-Type"), err)
		return
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		t.Errorf("%s: media type %s is not documented for status %d (documented: %v)", where, mt, rec.Code, slices.Sorted(maps.Keys(content)))
		return
	}
	switch mt {
	case "application/json", "application/problem+json":
		var body any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("%s: body is not JSON: %v", where, err)
			return
		}
		v := validator{spec: spec}
		v.check(where, media["schema"], body)
		for _, e := range v.errs {
			t.Errorf("%s", e)
		}
		if mt == "application/problem+json" {
			p, _ := body.(map[string]any)
			if got, want := fmt.Sprint(p["status"]), fmt.Sprint(rec.Code); got != want {
				t.Errorf("%s: problem status %s, want %s", where, got, want)
			}
			if got, want := p["instance"], rec.Header().Get("X-Request-Id"); got != want {
				t.Errorf("%s: problem instance %v, want the request id %q", where, got, want)
			}
		}
	case "application/x-ndjson":
		sc := bufio.NewScanner(bytes.NewReader(rec.Body.Bytes()))
		sc.Buffer(nil, 1<<20)
		lines := 0
		for sc.Scan() {
			lines++
			var ev any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("%s: line %d is not JSON: %v", where, lines, err)
				continue
			}
			v := validator{spec: spec}
			v.check(fmt.Sprintf("%s: line %d", where, lines), map[string]any{"$ref": "#/components/schemas/Event"}, ev)
			for _, e := range v.errs {
				t.Errorf("%s", e)
			}
		}
		if lines == 0 {
			t.Errorf("%s: no NDJSON lines", where)
		}
	}
}

// validator checks a JSON value against the subset of JSON Schema the spec
// uses: $ref, type, enum, const, pattern, properties, required,
// additionalProperties, propertyNames, items, anyOf, oneOf, allOf. Objects
// whose schema lists properties are closed unless additionalProperties says
// otherwise.
type validator struct {
	spec map[string]any
	errs []string
}

func (v *validator) check(where string, schema, val any) {
	s, ok := schema.(map[string]any)
	if !ok {
		return
	}
	for i := 0; i < 32; i++ {
		ref, ok := s["$ref"].(string)
		if !ok {
			break
		}
		node, ok := lookup(v.spec, ref)
		if !ok {
			v.errs = append(v.errs, fmt.Sprintf("%s: $ref %q does not resolve", where, ref))
			return
		}
		if s, ok = node.(map[string]any); !ok {
			return
		}
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[k].([]any); ok {
			matched := 0
			for _, alt := range alts {
				sub := validator{spec: v.spec}
				sub.check(where, alt, val)
				if len(sub.errs) == 0 {
					matched++
				}
			}
			if matched == 0 || (k == "oneOf" && matched > 1) {
				v.errs = append(v.errs, fmt.Sprintf("%s: %s matches %d of %d %s alternatives", where, brief(val), matched, len(alts), k))
			}
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			v.check(where, sub, val)
		}
	}
	if typ, ok := s["type"]; ok && !typeMatches(typ, val) {
		v.errs = append(v.errs, fmt.Sprintf("%s: %s has type %s, want %v", where, brief(val), jsonType(val), typ))
		return
	}
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(val) {
		v.errs = append(v.errs, fmt.Sprintf("%s: %s, want %v", where, brief(val), c))
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if reflect.DeepEqual(e, val) {
				found = true
			}
		}
		if !found {
			v.errs = append(v.errs, fmt.Sprintf("%s: %s is not one of %v", where, brief(val), enum))
		}
	}
	if str, ok := val.(string); ok {
		if pat, ok := s["pattern"].(string); ok && !regexp.MustCompile(pat).MatchString(str) {
			v.errs = append(v.errs, fmt.Sprintf("%s: %q does not match %s", where, str, pat))
		}
	}
	if arr, ok := val.([]any); ok {
		for i, item := range arr {
			v.check(fmt.Sprintf("%s[%d]", where, i), s["items"], item)
		}
	}
	obj, ok := val.(map[string]any)
	if !ok {
		return
	}
	req, _ := s["required"].([]any)
	for _, r := range req {
		if _, ok := obj[fmt.Sprint(r)]; !ok {
			v.errs = append(v.errs, fmt.Sprintf("%s: required property %v is missing", where, r))
		}
	}
	props, hasProps := s["properties"].(map[string]any)
	additional, hasAdditional := s["additionalProperties"]
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if names, ok := s["propertyNames"]; ok {
			v.check(where+" key "+k, names, k)
		}
		if ps, ok := props[k]; ok {
			v.check(where+"."+k, ps, obj[k])
			continue
		}
		switch {
		case hasAdditional && additional != false:
			v.check(where+"."+k, additional, obj[k])
		case hasProps || additional == false:
			v.errs = append(v.errs, fmt.Sprintf("%s: property %q is not documented", where, k))
		}
	}
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func typeMatches(typ, val any) bool {
	var types []any
	switch t := typ.(type) {
	case string:
		types = []any{t}
	case []any:
		types = t
	default:
		return true
	}
	got := jsonType(val)
	for _, t := range types {
		if t == got || (t == "number" && got == "integer") {
			return true
		}
	}
	return false
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}

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
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/keys"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/dss-sync/dss-sync/projections/audit"
)

// testServer is the real router over a real Pebble store in a temp dir,
// with real API keys.
type testServer struct {
	*httptest.Server
	admin, reader, writerOther string
	store                      *pebble.Store
	site                       *projections.Site
	signer                     string // the signing key's id
}

type keyAuth struct{ s *keys.Store }

func (k keyAuth) Authenticate(ctx context.Context, token string) (api.Principal, error) {
	p, err := k.s.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func newTestServer(t testing.TB, maxBody int64) *testServer {
	t.Helper()
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	site, err := projections.NewSite(projections.SiteConfig{ID: "paris", Storage: store})
	if err != nil {
		t.Fatal(err)
	}
	ks := keys.NewStore(store.Bucket("keys"), nil, nil)
	ctx := context.Background()
	_, admin, _ := ks.Create(ctx, "admin", []string{keys.ScopeAdmin}, nil, 0)
	_, reader, _ := ks.Create(ctx, "reader", []string{keys.ScopeRead}, nil, 0)
	_, other, _ := ks.Create(ctx, "other", []string{keys.ScopeWrite}, []string{"other"}, 0)
	_, signing, _ := ed25519.GenerateKey(nil)
	srv := httptest.NewServer(api.NewServer(api.Config{Site: site, Auth: keyAuth{ks}, Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: maxBody, SigningKey: signing}))
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, admin: admin, reader: reader, writerOther: other, store: store, site: site,
		signer: events.KeyID(signing.Public().(ed25519.PublicKey))}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request with the given key; hdr holds extra header pairs.
func (s *testServer) do(t testing.TB, method, path, key, body string, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (s *testServer) want(t testing.TB, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("error content type %q", ct)
		}
		var p api.Problem
		r.json(t, &p)
		if p.Status != status || !strings.HasPrefix(p.Type, api.ProblemTypeBase) || p.Title == "" || p.Detail == "" {
			t.Fatalf("problem %+v", p)
		}
	}
	return r
}

func TestTokensThroughTheRouter(t *testing.T) {
	s := newTestServer(t, 0)
	a := s.admin
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"design","name":"Design"}`), 201)
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"design","name":"Design"}`), 409)

	r := s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/color.base.blue", a, `{"$type":"color","$value":"#0000ff"}`), 201)
	var tok projections.Token
	r.json(t, &tok)
	if r.header.Get("ETag") != `"`+tok.Rev+`"` || r.header.Get("Location") == "" {
		t.Fatalf("headers %v", r.header)
	}
	s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/color.brand", a, `{"$value":"{color.base.blue}","$description":"Brand"}`), 201)

	// GET with If-None-Match: 304.
	r = s.want(t, s.do(t, "GET", "/v1/projects/design/tokens/color.base.blue", s.reader, ""), 200)
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens/color.base.blue", s.reader, "", "If-None-Match", r.header.Get("ETag")), 304)

	// If-Match: current rev passes, then the old one fails.
	old := r.header.Get("ETag")
	s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/color.base.blue", a, `{"$type":"color","$value":"#0000ee"}`, "If-Match", old), 200)
	s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/color.base.blue", a, `{"$type":"color","$value":"#000000"}`, "If-Match", old), 412)
	s.want(t, s.do(t, "DELETE", "/v1/projects/design/tokens/color.nothing", a, "", "If-Match", "*"), 412)

	var brand projections.Token
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens/color.brand", a, ""), 200).json(t, &brand)
	if string(brand.ResolvedValue) != `"#0000ee"` || string(brand.Description) != `"Brand"` {
		t.Fatalf("brand %+v", brand)
	}

	// History, oldest first.
	var hist struct{ Events []map[string]any }
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens/color.base.blue/history", a, ""), 200).json(t, &hist)
	if len(hist.Events) != 2 || hist.Events[0]["lamport"].(float64) >= hist.Events[1]["lamport"].(float64) {
		t.Fatalf("history %v", hist.Events)
	}

	// The list, a page at a time, and as of Lamport 2 (before the update).
	var page struct {
		Tokens []projections.Token
		Next   *string
	}
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens?limit=1", a, ""), 200).json(t, &page)
	if len(page.Tokens) != 1 || page.Next == nil {
		t.Fatalf("page %+v", page)
	}
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens?limit=1&cursor="+*page.Next, a, ""), 200).json(t, &page)
	if len(page.Tokens) != 1 || page.Tokens[0].Path != "color.brand" || page.Next != nil {
		t.Fatalf("second page %+v", page)
	}
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens?at=2&type=color", a, ""), 200).json(t, &page)
	if len(page.Tokens) != 1 || string(page.Tokens[0].Value) != `"#0000ff"` {
		t.Fatalf("as of 2: %+v", page.Tokens)
	}

	// Deleting a token an alias uses is a 409; deleting the alias first works.
	s.want(t, s.do(t, "DELETE", "/v1/projects/design/tokens/color.base.blue", a, ""), 409)
	s.want(t, s.do(t, "DELETE", "/v1/projects/design/tokens/color.brand", a, ""), 204)
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens/color.brand", a, ""), 404)
}

func TestBadInputChangesNothing(t *testing.T) {
	s := newTestServer(t, 4096)
	a := s.admin
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"design"}`), 201)
	s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/size.s", a, `{"$type":"dimension","$value":"4px"}`), 201)
	before := s.do(t, "GET", "/v1/projects/design", a, "").body

	huge := `{"$type":"color","$value":"#ffffff","$description":"` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name, method, path, key, body string
		hdr                           []string
		status                        int
	}{
		{"no key", "GET", "/v1/projects/design/tokens", "", "", nil, 401},
		{"wrong key", "GET", "/v1/projects/design/tokens", "dss_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43), "", nil, 401},
		{"garbage key", "GET", "/v1/projects/design/tokens", "nonsense", "", nil, 401},
		{"read key writes", "PUT", "/v1/projects/design/tokens/a", s.reader, `{"$type":"number","$value":1}`, nil, 403},
		{"other project's key", "PUT", "/v1/projects/design/tokens/a", s.writerOther, `{"$type":"number","$value":1}`, nil, 403},
		{"malformed json", "PUT", "/v1/projects/design/tokens/a", a, `{"$type":`, nil, 400},
		{"duplicate keys", "PUT", "/v1/projects/design/tokens/a", a, `{"$type":"number","$value":1,"$value":2}`, nil, 400},
		{"wrong media type", "PUT", "/v1/projects/design/tokens/a", a, `{"$type":"number","$value":1}`, []string{"Content-Type", "text/plain"}, 415},
		{"too large", "PUT", "/v1/projects/design/tokens/a", a, huge, nil, 413},
		{"bad name", "PUT", "/v1/projects/design/tokens/a.$b", a, `{"$type":"number","$value":1}`, nil, 422},
		{"bad type", "PUT", "/v1/projects/design/tokens/a", a, `{"$type":"colour","$value":"#fff"}`, nil, 422},
		{"bad value", "PUT", "/v1/projects/design/tokens/a", a, `{"$type":"dimension","$value":"4 parsecs"}`, nil, 422},
		{"dangling alias", "PUT", "/v1/projects/design/tokens/a", a, `{"$value":"{size.missing}"}`, nil, 422},
		{"unknown project", "GET", "/v1/projects/nope/tokens", a, "", nil, 404},
		{"unknown token", "GET", "/v1/projects/design/tokens/nope", a, "", nil, 404},
		{"unknown route", "GET", "/v1/nothing", a, "", nil, 404},
		{"bad limit", "GET", "/v1/projects/design/tokens?limit=0", a, "", nil, 400},
		{"bad at", "GET", "/v1/projects/design/tokens?at=x", a, "", nil, 400},
		{"bad type filter", "GET", "/v1/projects/design/tokens?type=colour", a, "", nil, 400},
		{"bad cursor", "GET", "/v1/projects/design/tokens?cursor=%%%", a, "", nil, 400},
		{"bad after", "GET", "/v1/projects/design/events?after=xyz", a, "", nil, 400},
		{"batch with one bad change", "POST", "/v1/projects/design/changes", a,
			`{"changes":[{"path":"ok.one","data":{"$type":"number","$value":1}},{"path":"bad","data":{"$type":"number","$value":"one"}}]}`, nil, 422},
		{"batch with unknown field", "POST", "/v1/projects/design/changes", a, `{"changes":[],"extra":1}`, nil, 400},
		{"empty batch", "POST", "/v1/projects/design/changes", a, `{"changes":[]}`, nil, 422},
		{"not yet built", "GET", "/v1/projects/design/export", a, "", nil, 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.want(t, s.do(t, tc.method, tc.path, tc.key, tc.body, tc.hdr...), tc.status)
		})
	}
	if after := s.do(t, "GET", "/v1/projects/design", a, "").body; !bytes.Equal(before, after) {
		t.Fatalf("refused requests changed the project:\n%s\n%s", before, after)
	}
	r := s.do(t, "GET", "/v1/projects/design/tokens", "", "")
	if r.header.Get("WWW-Authenticate") == "" || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("401 headers %v", r.header)
	}
}

func TestChangesBatchAndEvents(t *testing.T) {
	s := newTestServer(t, 0)
	a := s.admin
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"design"}`), 201)
	var out struct{ Results []projections.Result }
	s.want(t, s.do(t, "POST", "/v1/projects/design/changes", a, `{"changes":[
		{"path":"color.a","data":{"$type":"color","$value":"#111111"}},
		{"path":"color.b","data":{"$value":"{color.a}"}},
		{"kind":"component","path":"Button","data":{"description":"A button","tokens":["color.b"]}},
		{"op":"rename","path":"color.a","to":"color.z"},
		{"path":"color.b","data":{"$value":"{color.z}"}}
	]}`), 200).json(t, &out)
	if len(out.Results) != 5 || !out.Results[0].Created || out.Results[3].Path != "color.z" {
		t.Fatalf("results %+v", out.Results)
	}
	var c projections.Component
	s.want(t, s.do(t, "GET", "/v1/projects/design/components/Button", a, ""), 200).json(t, &c)
	if string(c.Tokens) != `["color.b"]` {
		t.Fatalf("component %+v", c)
	}

	// Events as JSON pages and as NDJSON.
	var page struct {
		Events []map[string]any
		Next   *string
	}
	s.want(t, s.do(t, "GET", "/v1/projects/design/events?limit=2", a, ""), 200).json(t, &page)
	if len(page.Events) != 2 || page.Next == nil || page.Events[0]["type"] != "project.create" {
		t.Fatalf("events page %+v", page)
	}
	r := s.want(t, s.do(t, "GET", "/v1/projects/design/events?after="+*page.Next, a, "", "Accept", "application/x-ndjson"), 200)
	if r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("content type %q", r.header.Get("Content-Type"))
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e["hash"] == "" {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d NDJSON events after the first two, want 4", n)
	}
	var proj projections.Project
	s.want(t, s.do(t, "GET", "/v1/projects/design", a, ""), 200).json(t, &proj)
	if proj.Counts.Tokens != 2 || proj.Counts.Components != 1 || proj.Counts.Events != 6 || proj.Lamport != 6 || proj.Vector["paris"] != 6 {
		t.Fatalf("project %+v", proj)
	}
	var list struct{ Projects []projections.Project }
	s.want(t, s.do(t, "GET", "/v1/projects", s.writerOther, ""), 200).json(t, &list)
	if len(list.Projects) != 0 {
		t.Fatalf("a key limited to project other sees %d projects", len(list.Projects))
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s := newTestServer(t, 0)
	s.want(t, s.do(t, "GET", "/healthz", "", ""), 200)
	s.want(t, s.do(t, "GET", "/readyz", "", ""), 200)
	s.want(t, s.do(t, "GET", "/metrics", "", ""), 401)
	r := s.want(t, s.do(t, "GET", "/metrics", s.reader, ""), 200)
	if !bytes.Contains(r.body, []byte(`dss_http_requests_total{code="401",method="GET",route="/metrics"} 1`)) {
		t.Fatalf("metrics lack the counted 401:\n%s", r.body)
	}
}

func TestProtocolDetails(t *testing.T) {
	s := newTestServer(t, 0)
	a := s.admin
	// A key limited to project "other" may create that project, no other.
	s.want(t, s.do(t, "POST", "/v1/projects", s.writerOther, `{"id":"design"}`), 403)
	s.want(t, s.do(t, "POST", "/v1/projects", s.writerOther, `{"id":"other"}`), 201)
	s.want(t, s.do(t, "POST", "/v1/projects", s.reader, `{"id":"third"}`), 403)
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"Bad Id"}`), 400)

	// 405 names the methods the resource has.
	r := s.want(t, s.do(t, "POST", "/v1/projects/other/tokens/a.b", a, `{}`), 405)
	if got := r.header.Get("Allow"); got != "GET, PUT, DELETE" {
		t.Fatalf("Allow: %q", got)
	}

	// If-None-Match: weak tags, lists and "*" all match the current rev.
	r = s.want(t, s.do(t, "PUT", "/v1/projects/other/tokens/a.b", a, `{"$type":"number","$value":1}`), 201)
	tag := r.header.Get("ETag")
	for _, inm := range []string{tag, "W/" + tag, `"nope", ` + tag, "*"} {
		s.want(t, s.do(t, "GET", "/v1/projects/other/tokens/a.b", a, "", "If-None-Match", inm), 304)
	}
	s.want(t, s.do(t, "GET", "/v1/projects/other/tokens/a.b", a, "", "If-None-Match", `"nope"`), 200)

	// type filters tokens only.
	s.want(t, s.do(t, "GET", "/v1/projects/other/components?type=color", a, ""), 400)
}

func allEvents(t testing.TB, s projections.Storage, project string) []*events.Event {
	t.Helper()
	var out []*events.Event
	s.View(context.Background(), project, func(r projections.Reader) error {
		return r.ScanEvents(events.Position{}, func(e *events.Event) error { out = append(out, e); return nil })
	})
	return out
}

// TestResolveThroughTheRouter makes a conflict by receiving a peer's
// concurrent edit, lists it, and settles it over HTTP.
func TestResolveThroughTheRouter(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, 0)
	a := s.admin
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"design"}`), 201)
	s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/color.x", a, `{"$type":"color","$value":"#000000"}`), 201)
	// A peer (in memory) gets the project, then edits the token concurrently.
	peerStore := projections.NewMemory()
	peer, _ := projections.NewSite(projections.SiteConfig{ID: "lyon", Storage: peerStore})
	if _, err := peer.Receive(ctx, "design", allEvents(t, s.store, "design")); err != nil {
		t.Fatal(err)
	}
	s.want(t, s.do(t, "PUT", "/v1/projects/design/tokens/color.x", a, `{"$type":"color","$value":"#111111"}`), 200)
	if _, err := peer.ApplyOne(ctx, "design", "bob", projections.Change{Path: "color.x", Data: json.RawMessage(`{"$type":"color","$value":"#222222"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.site.Receive(ctx, "design", allEvents(t, peerStore, "design")); err != nil {
		t.Fatal(err)
	}
	var list struct{ Conflicts []projections.Conflict }
	s.want(t, s.do(t, "GET", "/v1/projects/design/conflicts", s.reader, ""), 200).json(t, &list)
	if len(list.Conflicts) != 1 || list.Conflicts[0].Kind != "value" || len(list.Conflicts[0].Candidates) != 2 {
		t.Fatalf("conflicts %+v", list.Conflicts)
	}
	c := list.Conflicts[0]
	var tok projections.Token
	s.want(t, s.do(t, "GET", "/v1/projects/design/tokens/color.x", a, ""), 200).json(t, &tok)
	if !tok.Conflicted {
		t.Fatal("token not marked conflicted")
	}
	loser := c.Candidates[0].Event
	if loser == c.Winner {
		loser = c.Candidates[1].Event
	}
	s.want(t, s.do(t, "POST", "/v1/projects/design/conflicts/"+c.ID+"/resolve", s.reader, `{"pick":"`+loser.String()+`"}`), 403)
	s.want(t, s.do(t, "POST", "/v1/projects/design/conflicts/"+c.ID+"/resolve", a, `{"pick":"`+loser.String()+`","value":1}`), 400)
	var res projections.Resolved
	s.want(t, s.do(t, "POST", "/v1/projects/design/conflicts/"+c.ID+"/resolve", a, `{"pick":"`+loser.String()+`"}`), 200).json(t, &res)
	if len(res.Events) != 1 || res.Token == nil || res.Token.Conflicted {
		t.Fatalf("resolved %+v", res)
	}
	s.want(t, s.do(t, "GET", "/v1/projects/design/conflicts", a, ""), 200).json(t, &list)
	if len(list.Conflicts) != 0 {
		t.Fatalf("still %d conflicts", len(list.Conflicts))
	}
	s.want(t, s.do(t, "POST", "/v1/projects/design/conflicts/"+c.ID+"/resolve", a, `{"pick":"`+loser.String()+`"}`), 404)
	// The resolution travels: the peer closes the conflict too.
	if _, err := peer.Receive(ctx, "design", allEvents(t, s.store, "design")); err != nil {
		t.Fatal(err)
	}
	if cs, _ := peer.Conflicts(ctx, "design"); len(cs) != 0 {
		t.Fatalf("the peer still has %d conflicts", len(cs))
	}
}

func TestAuditThroughTheRouter(t *testing.T) {
	s := newTestServer(t, 0)
	a := s.admin
	s.want(t, s.do(t, "POST", "/v1/projects", a, `{"id":"design"}`), 201)
	for i := 0; i < 5; i++ {
		s.want(t, s.do(t, "PUT", fmt.Sprintf("/v1/projects/design/tokens/t.n%d", i), a, `{"$type":"number","$value":1}`), 201)
	}
	for _, format := range []string{"ndjson", "csv"} {
		r := s.want(t, s.do(t, "GET", "/v1/projects/design/audit?format="+format, s.reader, ""), 200)
		res, err := audit.Verify(bytes.NewReader(r.body))
		if err != nil || res.Problem != "" || res.Events != 6 || res.Signer != s.signer {
			t.Fatalf("%s: %+v %v", format, res, err)
		}
	}
	r := s.want(t, s.do(t, "GET", "/v1/projects/design/audit?type=project.create", a, ""), 200)
	if res, _ := audit.Verify(bytes.NewReader(r.body)); res.Problem != "" || res.Events != 1 || res.Complete {
		t.Fatalf("filtered: %+v", res)
	}
	s.want(t, s.do(t, "GET", "/v1/projects/design/audit?from=yesterday", a, ""), 400)
	s.want(t, s.do(t, "GET", "/v1/projects/nope/audit", a, ""), 404)
}

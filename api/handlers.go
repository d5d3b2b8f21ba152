package api

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/dss-sync/dss-sync/projections/audit"
	"github.com/dss-sync/dss-sync/projections/dtcg"
	"github.com/gorilla/mux"
	"github.com/oklog/ulid/v2"
)

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the OpenAPI 3.1 description served at /v1/openapi.yaml.
func OpenAPI() []byte { return openapiYAML }

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openapiYAML)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	JSON(w, http.StatusOK, map[string]string{"status": "ok", "site": s.cfg.Site.ID(), "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Ready(r.Context()); err != nil {
		Error(w, r, events.WrapError(events.EUNAVAILABLE, "not ready: "+err.Error(), err))
		return
	}
	JSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// vars returns a route variable, percent-decoded.
func routeVar(r *http.Request, name string) string {
	v := mux.Vars(r)[name]
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

func projectVar(r *http.Request) string {
	if mux.CurrentRoute(r) == nil {
		return ""
	}
	return routeVar(r, "p")
}

var errBodyTooLarge = errors.New("request body too large")

// readJSONBody reads a JSON request body within the size limit, refusing
// other media types (415), oversized bodies (413) and invalid JSON (400).
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil, events.Errorf(events.EMEDIATYPE, "send Content-Type: application/json (got %q)", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, s.cfg.MaxBodyBytes)
	}
	if err != nil {
		return nil, events.WrapError(events.EMALFORMED, "cannot read the request body", err)
	}
	canon, err := events.Canonicalize(body)
	if err != nil {
		return nil, events.WrapError(events.EMALFORMED, "body is not valid JSON: "+err.Error(), err)
	}
	return canon, nil
}

// decodeBody reads a JSON body into v, refusing unknown fields.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return events.WrapError(events.EMALFORMED, "body does not have the expected shape: "+err.Error(), err)
	}
	return nil
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := s.decodeBody(w, r, &in); err != nil {
		Error(w, r, err)
		return
	}
	if p := principal(r.Context()); !p.Can(ScopeWrite, in.ID) {
		Error(w, r, events.Errorf(events.EFORBIDDEN, "key %q may not create project %q", p.Actor(), in.ID))
		return
	}
	p, err := s.cfg.Site.CreateProject(r.Context(), in.ID, in.Name, actor(r))
	if err != nil {
		Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/projects/"+p.ID)
	JSON(w, http.StatusCreated, p)
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	all, err := s.cfg.Site.Projects(r.Context())
	if err != nil {
		Error(w, r, err)
		return
	}
	p := principal(r.Context())
	out := make([]*projections.Project, 0, len(all))
	for _, x := range all {
		if p.Can(ScopeRead, x.ID) {
			out = append(out, x)
		}
	}
	JSON(w, http.StatusOK, map[string]any{"projects": out})
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Site.Project(r.Context(), projectVar(r))
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, p)
}

// pageQuery parses the list parameters shared by tokens and components.
func pageQuery(r *http.Request) (projections.Query, uint64, error) {
	v, err := query(r)
	if err != nil {
		return projections.Query{}, 0, err
	}
	q := projections.Query{Type: v.Get("type"), Prefix: v.Get("prefix")}
	if q.Type != "" && !dtcg.IsType(q.Type) {
		return q, 0, events.Errorf(events.EMALFORMED, "type %q is not a DTCG type (%s)", q.Type, strings.Join(dtcg.Types, ", "))
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > projections.MaxLimit {
			return q, 0, events.Errorf(events.EMALFORMED, "limit must be 1..%d", projections.MaxLimit)
		}
		q.Limit = n
	}
	if c := v.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return q, 0, events.Errorf(events.EMALFORMED, "cursor is not one this server gave")
		}
		q.After = string(b)
	}
	var at uint64
	if a := v.Get("at"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return q, 0, events.Errorf(events.EMALFORMED, "at must be a Lamport time (a positive integer)")
		}
		at = n
	}
	return q, at, nil
}

func cursorOf(next string) *string {
	if next == "" {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString([]byte(next))
	return &c
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	q, at, err := pageQuery(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	toks, next, err := s.cfg.Site.Tokens(r.Context(), projectVar(r), q, at)
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, map[string]any{"tokens": toks, "next": cursorOf(next)})
}

func (s *Server) listComponents(w http.ResponseWriter, r *http.Request) {
	q, at, err := pageQuery(r)
	if err == nil && q.Type != "" {
		err = events.Errorf(events.EMALFORMED, "type filters tokens only")
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	cs, next, err := s.cfg.Site.Components(r.Context(), projectVar(r), q, at)
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, map[string]any{"components": cs, "next": cursorOf(next)})
}

func etag(rev string) string { return `"` + rev + `"` }

// etags parses an If-Match or If-None-Match header: a list of entity tags
// (strong or weak, quoted) or "*".
func etags(h string) []string {
	var out []string
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			out = append(out, "*")
			continue
		}
		t = strings.TrimPrefix(t, "W/")
		if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
			t = t[1 : len(t)-1]
		}
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// ifMatch returns the rev an If-Match header asks for: "" when absent, "*"
// for any current revision. With several tags, the first is used.
func ifMatch(r *http.Request) string {
	if tags := etags(r.Header.Get("If-Match")); len(tags) > 0 {
		return tags[0]
	}
	return ""
}

// writeEntity answers with an entity's representation and its ETag, or 304
// when the client's If-None-Match names its rev (or is "*").
func writeEntity(w http.ResponseWriter, r *http.Request, status int, rev string, v any) {
	w.Header().Set("ETag", etag(rev))
	if status == http.StatusOK && r.Method == http.MethodGet {
		for _, t := range etags(r.Header.Get("If-None-Match")) {
			if t == rev || t == "*" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	JSON(w, status, v)
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Site.Token(r.Context(), projectVar(r), routeVar(r, "path"))
	if err != nil {
		Error(w, r, err)
		return
	}
	writeEntity(w, r, http.StatusOK, t.Rev, t)
}

func (s *Server) getComponent(w http.ResponseWriter, r *http.Request) {
	c, err := s.cfg.Site.Component(r.Context(), projectVar(r), routeVar(r, "name"))
	if err != nil {
		Error(w, r, err)
		return
	}
	writeEntity(w, r, http.StatusOK, c.Rev, c)
}

func entityVar(r *http.Request, kind string) string {
	if kind == events.KindComponent {
		return routeVar(r, "name")
	}
	return routeVar(r, "path")
}

func (s *Server) putEntity(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := s.readJSONBody(w, r)
		if err != nil {
			Error(w, r, err)
			return
		}
		c := projections.Change{Op: projections.OpPut, Kind: kind, Path: entityVar(r, kind), Data: body, IfMatch: ifMatch(r)}
		res, err := s.cfg.Site.ApplyOne(r.Context(), projectVar(r), actor(r), c)
		if err != nil {
			Error(w, r, err)
			return
		}
		status := http.StatusOK
		if res.Created {
			status = http.StatusCreated
			w.Header().Set("Location", r.URL.EscapedPath())
		}
		if res.Token != nil {
			writeEntity(w, r, status, res.Token.Rev, res.Token)
		} else {
			writeEntity(w, r, status, res.Component.Rev, res.Component)
		}
	}
}

func (s *Server) deleteEntity(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := projections.Change{Op: projections.OpDelete, Kind: kind, Path: entityVar(r, kind), IfMatch: ifMatch(r)}
		if _, err := s.cfg.Site.ApplyOne(r.Context(), projectVar(r), actor(r), c); err != nil {
			Error(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) history(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		evs, err := s.cfg.Site.History(r.Context(), projectVar(r), kind, entityVar(r, kind))
		if err != nil {
			Error(w, r, err)
			return
		}
		JSON(w, http.StatusOK, map[string]any{"events": evs})
	}
}

// MaxChanges bounds the changes of one batch.
const MaxChanges = 100_000

func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Changes []projections.Change `json:"changes"`
	}
	if err := s.decodeBody(w, r, &in); err != nil {
		Error(w, r, err)
		return
	}
	if len(in.Changes) > MaxChanges {
		Error(w, r, events.Errorf(events.ETOOLARGE, "%d changes in one batch; the limit is %d", len(in.Changes), MaxChanges))
		return
	}
	res, err := s.cfg.Site.Apply(r.Context(), projectVar(r), actor(r), in.Changes)
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, map[string]any{"results": res})
}

// query parses the query string, refusing a malformed one (url.Query would
// silently drop the parameters it cannot decode).
func query(r *http.Request) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, events.Errorf(events.EMALFORMED, "malformed query string: %v", err)
	}
	return v, nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	v, err := query(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	var after ulid.ULID
	if a := v.Get("after"); a != "" {
		id, err := ulid.ParseStrict(a)
		if err != nil {
			Error(w, r, events.Errorf(events.EMALFORMED, "after must be an event id"))
			return
		}
		after = id
	}
	limit := projections.DefaultLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > projections.MaxLimit {
			Error(w, r, events.Errorf(events.EMALFORMED, "limit must be 1..%d", projections.MaxLimit))
			return
		}
		limit = n
	}
	evs, err := s.cfg.Site.Events(r.Context(), projectVar(r), after, limit)
	if err != nil {
		Error(w, r, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriter(w)
		for _, e := range evs {
			b, _ := json.Marshal(e)
			bw.Write(b)
			bw.WriteByte('\n')
		}
		bw.Flush()
		return
	}
	var next *string
	if len(evs) == limit {
		id := evs[len(evs)-1].ID.String()
		next = &id
	}
	JSON(w, http.StatusOK, map[string]any{"events": evs, "next": next})
}

func (s *Server) listConflicts(w http.ResponseWriter, r *http.Request) {
	cs, err := s.cfg.Site.Conflicts(r.Context(), projectVar(r))
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, map[string]any{"conflicts": cs})
}

func (s *Server) resolveConflict(w http.ResponseWriter, r *http.Request) {
	var in projections.Resolution
	if err := s.decodeBody(w, r, &in); err != nil {
		Error(w, r, err)
		return
	}
	res, err := s.cfg.Site.Resolve(r.Context(), projectVar(r), actor(r), routeVar(r, "id"), in)
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, res)
}

// auditExport streams the project's audit trail (see package audit).
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) {
	v, err := query(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	var f audit.Filter
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if x := v.Get(name); x != "" {
			t, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				Error(w, r, events.Errorf(events.EMALFORMED, "%s must be an RFC 3339 time, such as 2026-11-22T10:00:00Z", name))
				return
			}
			*dst = t
		}
	}
	f.Actor, f.Entity, f.Type = v.Get("actor"), v.Get("entity"), events.Type(v.Get("type"))
	if f.Type != "" && f.Type.Kind() == "" {
		Error(w, r, events.Errorf(events.EMALFORMED, "type %q is not an event type", f.Type))
		return
	}
	format := v.Get("format")
	if format == "" {
		format = audit.NDJSON
	}
	if format != audit.NDJSON && format != audit.CSV {
		Error(w, r, events.Errorf(events.EMALFORMED, "format must be ndjson or csv"))
		return
	}
	if s.cfg.SigningKey == nil {
		Error(w, r, events.Errorf(events.EUNAVAILABLE, "this site has no signing key"))
		return
	}
	project := projectVar(r)
	if _, err := s.cfg.Site.Project(r.Context(), project); err != nil {
		Error(w, r, err)
		return
	}
	ct := "application/x-ndjson"
	if format == audit.CSV {
		ct = "text/csv; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-audit.%s"`, project, format))
	if _, err := audit.Export(r.Context(), s.cfg.Site, project, f, format, s.cfg.SigningKey, w); err != nil {
		// Headers are gone: cut the stream; a verifier finds it truncated.
		logger(r.Context()).Error("audit export failed midway", "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Archives == nil {
		Error(w, r, events.Errorf(events.ENOTIMPLEMENTED, "export is not available on this site"))
		return
	}
	v, err := query(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	q := ExportQuery{Format: v.Get("format"), History: v.Get("history") != "false", Prefix: v.Get("prefix"), Type: v.Get("type")}
	if q.Format == "" {
		q.Format = "dss"
	}
	if q.Format != "dss" && q.Format != "dtcg" {
		Error(w, r, events.Errorf(events.EMALFORMED, "format must be dss or dtcg"))
		return
	}
	if h := v.Get("history"); h != "" && h != "true" && h != "false" {
		Error(w, r, events.Errorf(events.EMALFORMED, "history must be true or false"))
		return
	}
	if q.Type != "" && !dtcg.IsType(q.Type) {
		Error(w, r, events.Errorf(events.EMALFORMED, "type %q is not a DTCG type", q.Type))
		return
	}
	if q.Format == "dss" && s.cfg.SigningKey == nil {
		Error(w, r, events.Errorf(events.EUNAVAILABLE, "this site has no signing key: a .dss archive cannot be signed (a DTCG export needs none)"))
		return
	}
	project := projectVar(r)
	if _, err := s.cfg.Site.Project(r.Context(), project); err != nil {
		Error(w, r, err)
		return
	}
	if q.Format == "dss" {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.dss"`, project))
	} else {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.tokens.json"`, project))
	}
	sw := &startWriter{w: w}
	if err := s.cfg.Archives.Export(r.Context(), project, q, sw); err != nil {
		if !sw.started {
			// Nothing is sent yet: the client gets a problem, not a cut stream.
			w.Header().Del("Content-Disposition")
			Error(w, r, err)
			return
		}
		logger(r.Context()).Error("export failed midway", "err", err)
		panic(http.ErrAbortHandler) // the headers are gone: cut the stream
	}
}

// startWriter tells whether anything was written through it, that is
// whether the status and headers of a streamed answer are already sent.
type startWriter struct {
	w       io.Writer
	started bool
}

func (s *startWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		s.started = true
	}
	return s.w.Write(p)
}

func (s *Server) importProject(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Archives == nil {
		Error(w, r, events.Errorf(events.ENOTIMPLEMENTED, "import is not available on this site"))
		return
	}
	v, err := query(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	req := ImportRequest{Project: projectVar(r), Actor: actor(r), Strategy: v.Get("strategy"), DryRun: v.Get("dry_run") == "true"}
	if req.Strategy == "" {
		req.Strategy = "merge"
	}
	if req.Strategy != "merge" && req.Strategy != "replace" {
		Error(w, r, events.Errorf(events.EMALFORMED, "strategy must be merge or replace"))
		return
	}
	if d := v.Get("dry_run"); d != "" && d != "true" && d != "false" {
		Error(w, r, events.Errorf(events.EMALFORMED, "dry_run must be true or false"))
		return
	}
	if !events.ValidProject(req.Project) {
		Error(w, r, events.Errorf(events.EMALFORMED, "invalid project id %q", req.Project))
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/zip", "application/x-zip-compressed", "application/json", "application/octet-stream":
		req.ContentType = mt
	default:
		Error(w, r, events.Errorf(events.EMEDIATYPE, "send a .dss archive as application/zip or a DTCG document as application/json (got %q)", r.Header.Get("Content-Type")))
		return
	}
	if r.ContentLength > s.cfg.MaxImportBytes {
		Error(w, r, fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, s.cfg.MaxImportBytes))
		return
	}
	req.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes)
	ans, err := s.cfg.Archives.Import(r.Context(), req)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, s.cfg.MaxImportBytes)
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	if ans.Status == http.StatusAccepted {
		if j, ok := ans.Body.(*Job); ok {
			w.Header().Set("Location", "/v1/jobs/"+j.ID)
		}
	}
	JSON(w, ans.Status, ans.Body)
}

func (s *Server) job(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Archives == nil {
		Error(w, r, events.Errorf(events.ENOTFOUND, "no job %q", routeVar(r, "id")))
		return
	}
	j, err := s.cfg.Archives.Job(r.Context(), routeVar(r, "id"))
	if err != nil {
		Error(w, r, err)
		return
	}
	if p := principal(r.Context()); !p.Can(ScopeRead, j.Project) {
		Error(w, r, events.Errorf(events.ENOTFOUND, "no job %q", j.ID))
		return
	}
	JSON(w, http.StatusOK, j)
}

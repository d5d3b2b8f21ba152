package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Scopes a route may require; a key holds one or more (admin > write > read).
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// Principal is who a request acts for.
type Principal interface {
	// Actor is the name recorded on the events the request makes.
	Actor() string
	// Can reports whether the principal may act with scope on project
	// ("" for site-wide operations).
	Can(scope, project string) bool
	// CanAny reports whether the principal holds scope for some project.
	CanAny(scope string) bool
}

// Authenticator turns a bearer token into a principal, or fails with an
// EUNAUTHORIZED error.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// Archives exports and imports whole projects, and runs the jobs long
// imports become (implemented by the wiring of the archive format and the
// job runner).
type Archives interface {
	// Export streams a project as format "dss" (a signed archive) or "dtcg"
	// (one DTCG document of its tokens).
	Export(ctx context.Context, project string, q ExportQuery, w io.Writer) error
	// Import checks an archive or DTCG document and, unless a dry run,
	// applies it: answering 200 with the result when it is done quickly, or
	// 202 with the job that carries it on.
	Import(ctx context.Context, req ImportRequest) (*ImportAnswer, error)
	// Job returns a job.
	Job(ctx context.Context, id string) (*Job, error)
}

// ExportQuery selects what an export holds.
type ExportQuery struct {
	Format  string // dss or dtcg
	History bool
	Prefix  string
	Type    string
}

// ImportRequest is an import as received.
type ImportRequest struct {
	Project, Actor string
	Body           io.Reader
	ContentType    string
	Strategy       string // merge or replace
	DryRun         bool
}

// ImportAnswer is what an import answers: a status (200, 202) and a body.
type ImportAnswer struct {
	Status int
	Body   any
}

// Config configures a Server.
type Config struct {
	Site   *projections.Site
	Auth   Authenticator
	Logger *slog.Logger
	// Registry receives the HTTP metrics; /metrics serves it. Default: a
	// new registry.
	Registry *prometheus.Registry
	// Ready reports whether the site can serve (store open, bus
	// connected); /readyz answers 503 with its error otherwise.
	Ready func(ctx context.Context) error
	// MaxBodyBytes bounds JSON request bodies. Default 8 MiB.
	MaxBodyBytes int64
	// Version is reported by /healthz.
	Version string
	// SigningKey signs archives and audit exports (the site's key).
	SigningKey ed25519.PrivateKey
	// Archives handles export, import and jobs; nil answers 501.
	Archives Archives
	// MaxImportBytes bounds an import's body. Default 1 GiB.
	MaxImportBytes int64
	// Sync reports replication for /v1/sync/status; nil: no peers, and the
	// bus taken as connected.
	Sync Sync
	// Feed is the site's durable commit feed, which live event streams
	// follow; nil answers 501.
	Feed events.Feed
	// Limits bounds request rates per client address, per key and for
	// failed authentication. The zero value limits nothing.
	Limits Limits
	// Backups takes backups (GET /v1/admin/backup); nil: not available.
	Backups Backups
	// Keys manages API keys and reads the security log (/v1/admin/keys,
	// /v1/admin/security-log); nil answers 501.
	Keys KeyAdmin
}

// Server is the HTTP API of one site.
type Server struct {
	cfg     Config
	router  *mux.Router
	metrics *httpMetrics
	limits  *rateLimits
	// closing ends the live event streams (CloseStreams), which would
	// otherwise hold a graceful shutdown until their clients leave.
	closing     context.Context
	closeStream context.CancelFunc
}

// CloseStreams ends every live event stream, now and from now on; give it
// to http.Server.RegisterOnShutdown. A client reconnects elsewhere, or
// later, with Last-Event-ID.
func (s *Server) CloseStreams() { s.closeStream() }

// NewServer returns the API server with every route of CONTRACT.md §2.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = 1 << 30
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) error { return nil }
	}
	s := &Server{cfg: cfg, router: mux.NewRouter().UseEncodedPath(), metrics: newHTTPMetrics(cfg.Registry)}
	s.limits = newRateLimits(cfg.Limits, cfg.Registry)
	s.closing, s.closeStream = context.WithCancel(context.Background())
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Router returns the router, for tests that walk the routes.
func (s *Server) Router() *mux.Router { return s.router }

// route is one endpoint: its method, path template, the scope it needs
// ("" for none) and its handler.
type route struct {
	method, path, scope string
	h                   http.HandlerFunc
}

func (s *Server) routes() {
	s.router.Use(s.recoverer, s.requestContext)
	// Unmatched requests skip the router's middleware: give them theirs.
	s.router.NotFoundHandler = s.recoverer(s.requestContext(s.wrap(route{h: func(w http.ResponseWriter, r *http.Request) {
		Error(w, r, events.Errorf(events.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	}})))
	s.router.MethodNotAllowedHandler = s.recoverer(s.requestContext(s.wrap(route{h: func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if s.router.Match(probe, &match) && match.MatchErr == nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		Error(w, r, events.Errorf(events.EMETHOD, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
	}})))
	for _, rt := range []route{
		{"GET", "/healthz", "", s.healthz},
		{"GET", "/readyz", "", s.readyz},
		{"GET", "/metrics", ScopeRead, promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP},
		{"GET", "/v1/openapi.yaml", ScopeRead, s.openapi},

		{"POST", "/v1/projects", ScopeWrite, s.createProject},
		{"GET", "/v1/projects", ScopeRead, s.listProjects},
		{"GET", "/v1/projects/{p}", ScopeRead, s.getProject},

		{"GET", "/v1/projects/{p}/tokens", ScopeRead, s.listTokens},
		{"GET", "/v1/projects/{p}/tokens/{path}", ScopeRead, s.getToken},
		{"PUT", "/v1/projects/{p}/tokens/{path}", ScopeWrite, s.putEntity("token")},
		{"DELETE", "/v1/projects/{p}/tokens/{path}", ScopeWrite, s.deleteEntity("token")},
		{"GET", "/v1/projects/{p}/tokens/{path}/history", ScopeRead, s.history("token")},

		{"GET", "/v1/projects/{p}/components", ScopeRead, s.listComponents},
		{"GET", "/v1/projects/{p}/components/{name}", ScopeRead, s.getComponent},
		{"PUT", "/v1/projects/{p}/components/{name}", ScopeWrite, s.putEntity("component")},
		{"DELETE", "/v1/projects/{p}/components/{name}", ScopeWrite, s.deleteEntity("component")},
		{"GET", "/v1/projects/{p}/components/{name}/history", ScopeRead, s.history("component")},

		{"POST", "/v1/projects/{p}/changes", ScopeWrite, s.changes},
		{"GET", "/v1/projects/{p}/events", ScopeRead, s.listEvents},
		{"GET", "/v1/projects/{p}/conflicts", ScopeRead, s.listConflicts},
		{"POST", "/v1/projects/{p}/conflicts/{id}/resolve", ScopeWrite, s.resolveConflict},

		{"GET", "/v1/projects/{p}/audit", ScopeRead, s.auditExport},
		{"GET", "/v1/projects/{p}/export", ScopeRead, s.export},
		{"POST", "/v1/projects/{p}/import", ScopeWrite, s.importProject},
		{"GET", "/v1/jobs/{id}", ScopeRead, s.job},
		{"GET", "/v1/sync/status", ScopeRead, s.syncStatus},
		{"GET", "/v1/admin/backup", ScopeAdmin, s.backup},
		{"GET", "/v1/admin/keys", ScopeAdmin, s.listKeys},
		{"POST", "/v1/admin/keys", ScopeAdmin, s.createKey},
		{"POST", "/v1/admin/keys/{id}/rotate", ScopeAdmin, s.rotateKey},
		{"POST", "/v1/admin/keys/{id}/revoke", ScopeAdmin, s.revokeKey},
		{"GET", "/v1/admin/security-log", ScopeAdmin, s.securityLog},
		{"GET", "/v1/projects/{p}/events/stream", ScopeRead, s.eventStream},
	} {
		s.router.Handle(rt.path, s.wrap(rt)).Methods(rt.method).Name(rt.method + " " + rt.path)
	}
}

// wrap adds rate limits, auth, scope checks and metrics to a route's
// handler. The health probes are never limited.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		var client string // the address the limits count the request against
		defer func() {
			s.metrics.observe(rt, rec.status, time.Since(start))
			if rec.limitedBy != "" {
				s.limits.limited.WithLabelValues(rec.limitedBy).Inc()
			}
			l := logger(r.Context())
			level := slog.LevelInfo
			if rt.path == "/healthz" || rt.path == "/readyz" || rt.path == "/metrics" {
				level = slog.LevelDebug
			}
			l.Log(r.Context(), level, "request", "method", r.Method, "route", rt.path, "status", rec.status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "bytes", rec.bytes, "client", client)
		}()
		if rt.path != "/healthz" && rt.path != "/readyz" {
			client = s.limits.clientKey(r)
			if err := s.limits.limitIP(client); err != nil {
				Error(rec, r, err)
				return
			}
		}
		if rt.scope != "" {
			// An address that has used up its failures is refused before
			// its key is looked at: guessing costs the guesser, not us.
			if err := s.limits.checkAuthFailures(client); err != nil {
				Error(rec, r, err)
				return
			}
			p, err := s.authenticate(r)
			if err != nil {
				if events.ErrorCode(err) == events.EUNAUTHORIZED {
					s.limits.authFailure(client)
				}
				Error(rec, r, err)
				return
			}
			if err := s.limits.limitKey(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), p.Actor()); err != nil {
				Error(rec, r, err)
				return
			}
			project := projectVar(r)
			// Creating a project is checked against the body's id by the
			// handler; here, only that the key could create some project.
			createsProject := rt.path == "/v1/projects" && r.Method == "POST"
			if (createsProject && !p.CanAny(rt.scope)) || (!createsProject && !p.Can(rt.scope, project)) {
				Error(rec, r, events.Errorf(events.EFORBIDDEN, "key %q lacks the %s scope%s", p.Actor(), rt.scope, forProject(project)))
				return
			}
			ctx := context.WithValue(r.Context(), principalKey, p)
			ctx = withLogger(ctx, logger(ctx).With("key", p.Actor()))
			r = r.WithContext(ctx)
		}
		rt.h(rec, r)
	})
}

func forProject(p string) string {
	if p == "" {
		return ""
	}
	return " on project " + strconv.Quote(p)
}

func (s *Server) authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, events.Errorf(events.EUNAUTHORIZED, "missing or invalid API key: send Authorization: Bearer <key>")
	}
	if s.cfg.Auth == nil {
		return nil, events.Errorf(events.EUNAUTHORIZED, "missing or invalid API key")
	}
	return s.cfg.Auth.Authenticate(r.Context(), token)
}

type ctxKey int

const (
	principalKey ctxKey = iota
	requestIDKey
	loggerKey
)

func principal(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey).(Principal)
	return p
}

func actor(r *http.Request) string {
	if p := principal(r.Context()); p != nil {
		return p.Actor()
	}
	return "anonymous"
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey, l)
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestContext gives each request an id (the client's X-Request-Id when it
// is sane, else a new one), echoed in the response, and a logger carrying it.
func (s *Server) requestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRE.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		l := s.cfg.Logger.With("request_id", id)
		if p := projectVar(r); p != "" {
			l = l.With("project", p)
		}
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		next.ServeHTTP(w, r.WithContext(withLogger(ctx, l)))
	})
}

// recoverer turns a panic into a logged 500.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger(r.Context()).Error("panic", "value", fmt.Sprint(v), "stack", string(debug.Stack()))
				Error(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int
	wroteHeader bool
	// limitedBy is the reason of the RateLimitError answered, if any.
	limitedBy string
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dss_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dss_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *httpMetrics) observe(rt route, status int, d time.Duration) {
	path := rt.path
	if path == "" {
		path = "unmatched"
	}
	method := rt.method
	if method == "" {
		method = "other"
	}
	m.requests.WithLabelValues(path, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(path, method).Observe(d.Seconds())
}

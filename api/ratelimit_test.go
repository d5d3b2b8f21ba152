package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/projections"
)

// manualClock is a clock the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// limitedServer is the real router with the given limits, keys as
// testAuth has them, and a clock the test moves; requests are sent as if
// from a client address through a trusted proxy.
type limitedServer struct {
	h     http.Handler
	clock *manualClock
}

func newLimitedServer(t testing.TB, lim api.Limits) *limitedServer {
	t.Helper()
	site, err := projections.NewSite(projections.SiteConfig{ID: "test", Storage: projections.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	clock := &manualClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	lim.Now = clock.Now
	lim.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
	return &limitedServer{clock: clock, h: api.NewServer(api.Config{Site: site, Auth: testAuth{},
		Logger: slog.New(slog.DiscardHandler), Limits: lim})}
}

// do sends a request from client with key; it returns the status and the
// Retry-After header.
func (s *limitedServer) do(method, path, client, key string) (int, string) {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("X-Forwarded-For", client)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	if w.Code == http.StatusTooManyRequests && w.Header().Get("Content-Type") != "application/problem+json" {
		panic("429 without problem+json")
	}
	return w.Code, w.Header().Get("Retry-After")
}

// metric reports whether /metrics holds line.
func (s *limitedServer) metric(t testing.TB, line string) bool {
	t.Helper()
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("X-Forwarded-For", "198.51.100.200")
	r.Header.Set("Authorization", "Bearer admin")
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("/metrics: %d", w.Code)
	}
	b, _ := io.ReadAll(w.Body)
	return strings.Contains(string(b), line+"\n")
}

// TestRateLimitAuthFailures: an address spends its failure budget, then is
// refused with 429 before its key is checked (a good key too), with the
// Retry-After its bucket gives; other addresses are not touched, and the
// budget comes back with time.
func TestRateLimitAuthFailures(t *testing.T) {
	s := newLimitedServer(t, api.Limits{AuthFailures: api.Rate{PerSecond: 0.5, Burst: 3}})
	const bad, good = "203.0.113.9", "198.51.100.7"
	for i := range 3 {
		if code, _ := s.do("GET", "/v1/projects", bad, "wrong"); code != 401 {
			t.Fatalf("bad key %d: %d, want 401", i+1, code)
		}
	}
	if code, ra := s.do("GET", "/v1/projects", bad, "wrong"); code != 429 || ra != "2" {
		t.Fatalf("past the failure budget: %d Retry-After %q, want 429, 2", code, ra)
	}
	if code, _ := s.do("GET", "/v1/projects", bad, ""); code != 429 {
		t.Fatalf("no key, past the budget: %d, want 429", code)
	}
	if code, _ := s.do("GET", "/v1/projects", bad, "read"); code != 429 {
		t.Fatalf("a good key from the refused address: %d, want 429 (the key is not even checked)", code)
	}
	if code, _ := s.do("GET", "/v1/projects", good, "read"); code != 200 {
		t.Fatalf("a good key from another address: %d", code)
	}
	if code, _ := s.do("GET", "/v1/projects", "198.51.100.99", "wrong"); code != 401 {
		t.Fatalf("a bad key from another address: %d, want 401", code)
	}
	if code, _ := s.do("GET", "/healthz", bad, ""); code != 200 {
		t.Fatalf("/healthz from the refused address: %d", code)
	}
	s.clock.Add(1500 * time.Millisecond)
	if code, ra := s.do("GET", "/v1/projects", bad, "read"); code != 429 || ra != "1" {
		t.Fatalf("1.5 s later: %d Retry-After %q, want 429, 1", code, ra)
	}
	s.clock.Add(500 * time.Millisecond)
	if code, _ := s.do("GET", "/v1/projects", bad, "read"); code != 200 {
		t.Fatalf("after Retry-After, a good key: %d", code)
	}
	if !s.metric(t, `dss_rate_limited_total{reason="auth_failures"} 4`) || !s.metric(t, `dss_auth_failures_total 4`) {
		t.Fatal("metrics do not count 4 refusals and 4 failures")
	}
}

// TestRateLimitPerKey: one key's flood is refused, another key from the
// same address goes on.
func TestRateLimitPerKey(t *testing.T) {
	s := newLimitedServer(t, api.Limits{PerKey: api.Rate{PerSecond: 1.0 / 60, Burst: 2}})
	for range 2 {
		if code, _ := s.do("GET", "/v1/projects", "198.51.100.7", "read"); code != 200 {
			t.Fatalf("within the burst: %d", code)
		}
	}
	if code, ra := s.do("GET", "/v1/projects", "198.51.100.7", "read"); code != 429 || ra != "60" {
		t.Fatalf("past the burst: %d Retry-After %q, want 429, 60", code, ra)
	}
	if code, _ := s.do("GET", "/v1/projects", "198.51.100.8", "read"); code != 429 {
		t.Fatalf("the same key from elsewhere: %d, want 429", code)
	}
	if code, _ := s.do("GET", "/v1/projects", "198.51.100.7", "write"); code != 200 {
		t.Fatalf("another key: %d", code)
	}
	s.clock.Add(59 * time.Second)
	if code, ra := s.do("GET", "/v1/projects", "198.51.100.7", "read"); code != 429 || ra != "1" {
		t.Fatalf("59 s later: %d Retry-After %q, want 429, 1", code, ra)
	}
	if !s.metric(t, `dss_rate_limited_total{reason="key"} 3`) {
		t.Fatal("metrics do not count 3 refusals by key")
	}
}

// TestRateLimitPerIP: every route but the health probes counts against the
// address, unknown routes and bad keys too.
func TestRateLimitPerIP(t *testing.T) {
	s := newLimitedServer(t, api.Limits{PerIP: api.Rate{PerSecond: 10, Burst: 3}})
	const ip = "203.0.113.20"
	for i, path := range []string{"/v1/projects", "/no/such/route", "/v1/projects"} {
		if code, _ := s.do("GET", path, ip, "wrong"); code == 429 {
			t.Fatalf("request %d: 429 within the burst", i+1)
		}
	}
	if code, ra := s.do("GET", "/v1/projects", ip, "admin"); code != 429 || ra != "1" {
		t.Fatalf("past the burst: %d Retry-After %q, want 429, 1", code, ra)
	}
	for range 50 {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, _ := s.do("GET", path, ip, ""); code != 200 {
				t.Fatalf("%s: %d; the probes are exempt", path, code)
			}
		}
	}
	if code, _ := s.do("GET", "/v1/projects", "203.0.113.21", "admin"); code != 200 {
		t.Fatalf("another address: %d", code)
	}
	s.clock.Add(100 * time.Millisecond)
	if code, _ := s.do("GET", "/v1/projects", ip, "admin"); code != 200 {
		t.Fatalf("after 100 ms: %d", code)
	}
	if !s.metric(t, `dss_rate_limited_total{reason="ip"} 1`) {
		t.Fatal("metrics do not count 1 refusal by address")
	}
}

// TestRateLimitOffByDefault: the zero Limits limit nothing.
func TestRateLimitOffByDefault(t *testing.T) {
	s := newLimitedServer(t, api.Limits{})
	for range 500 {
		if code, _ := s.do("GET", "/v1/projects", "203.0.113.9", "wrong"); code != 401 {
			t.Fatalf("no limits: %d", code)
		}
	}
}

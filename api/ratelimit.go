package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/prometheus/client_golang/prometheus"
)

// Rate is a token bucket: Burst requests at once, refilled at PerSecond.
// The zero Rate limits nothing.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Off reports whether the rate limits nothing.
func (r Rate) Off() bool { return r.PerSecond <= 0 }

// ParseRate reads a rate written N/UNIT[:BURST], where UNIT is s, m or h:
// "100/s:200" is 100 requests a second with bursts of 200, "30/m" is one
// every 2 s with bursts of 1 (the burst defaults to the rate per second,
// at least 1). "off" limits nothing.
func ParseRate(s string) (Rate, error) {
	if s == "off" {
		return Rate{}, nil
	}
	spec, burst, hasBurst := strings.Cut(s, ":")
	num, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return Rate{}, errors.New("must be N/s, N/m or N/h, optionally :BURST (such as 100/s:200), or off")
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !(n > 0 && n <= 1e9) {
		return Rate{}, fmt.Errorf("%q is not a positive number of requests", num)
	}
	var r Rate
	switch unit {
	case "s":
		r.PerSecond = n
	case "m":
		r.PerSecond = n / 60
	case "h":
		r.PerSecond = n / 3600
	default:
		return Rate{}, fmt.Errorf("unit %q must be s, m or h", unit)
	}
	r.Burst = max(1, int(math.Ceil(r.PerSecond)))
	if hasBurst {
		b, err := strconv.Atoi(burst)
		if err != nil || b < 1 || b > 1e9 {
			return Rate{}, fmt.Errorf("burst %q must be a whole number of at least 1", burst)
		}
		r.Burst = b
	}
	return r, nil
}

// Limits bounds request rates. Every request but /healthz and /readyz is
// counted against its client address (PerIP) before anything else; one
// whose key fails authentication is counted against its address again in
// AuthFailures, and an address with no such budget left is refused before
// its key is even looked at; an authenticated request is counted against
// its key (PerKey). A refused request gets 429 and Retry-After.
type Limits struct {
	PerIP, PerKey, AuthFailures Rate
	// TrustedProxies are the addresses whose X-Forwarded-For is believed:
	// a request from one is counted against the last address in that
	// header (right to left) that is not a trusted proxy. Without any the
	// header is ignored, for anyone can write it.
	TrustedProxies []netip.Prefix
	// MaxTracked bounds the clients (addresses or keys) each limiter keeps
	// a bucket for; when every one is in use, new clients share one
	// bucket. Default 100,000.
	MaxTracked int
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// RateLimitError is a request refused by a limit: ERATELIMITED, with how
// long to wait before trying again (Retry-After).
type RateLimitError struct {
	// Reason names the limit for dss_rate_limited_total: ip, key,
	// auth_failures, import_queue.
	Reason string
	After  time.Duration
	Err    *events.Error
}

func (e *RateLimitError) Error() string { return e.Err.Error() }

// Unwrap returns the domain error.
func (e *RateLimitError) Unwrap() error { return e.Err }

// RetryAfter is how long the client should wait.
func (e *RateLimitError) RetryAfter() time.Duration { return e.After }

// RateLimited returns a RateLimitError with a client-safe message.
func RateLimited(reason string, after time.Duration, format string, args ...any) *RateLimitError {
	return &RateLimitError{Reason: reason, After: after, Err: events.Errorf(events.ERATELIMITED, format, args...)}
}

// bucket is one client's token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// refill adds what rate has earned since the last visit, up to the burst.
func (b *bucket) refill(now time.Time, r Rate) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(r.Burst), b.tokens+d.Seconds()*r.PerSecond)
		b.last = now
	}
}

// wait is how long until the bucket holds one token.
func (b *bucket) wait(r Rate) time.Duration {
	return time.Duration((1 - b.tokens) / r.PerSecond * float64(time.Second))
}

// limiter keeps a token bucket per client, in a map bounded by max:
// buckets that have refilled to the full burst are forgotten (a new one
// would be the same), and when the map is full nonetheless, new clients
// share the overflow bucket.
type limiter struct {
	rate       Rate
	max        int
	now        func() time.Time
	mu         sync.Mutex
	m          map[string]*bucket
	overflow   bucket
	swept      time.Time
	sweepEvery time.Duration
}

func newLimiter(r Rate, maxTracked int, now func() time.Time) *limiter {
	return &limiter{rate: r, max: maxTracked, now: now, m: map[string]*bucket{},
		overflow: bucket{tokens: float64(r.Burst), last: now()}, swept: now(), sweepEvery: time.Minute}
}

// get returns the client's bucket, refilled; l.mu is held.
func (l *limiter) get(key string, now time.Time) *bucket {
	b := l.m[key]
	if b == nil {
		// Sweep every minute, or when full, at most once a second: a
		// flood of new clients must not make each request walk the map.
		if since := now.Sub(l.swept); since >= l.sweepEvery || len(l.m) >= l.max && since >= time.Second {
			l.sweep(now)
		}
		if len(l.m) >= l.max {
			b = &l.overflow
		} else {
			b = &bucket{tokens: float64(l.rate.Burst), last: now}
			l.m[key] = b
		}
	}
	b.refill(now, l.rate)
	return b
}

// sweep forgets the buckets that are full again.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.m {
		if b.refill(now, l.rate); b.tokens >= float64(l.rate.Burst) {
			delete(l.m, k)
		}
	}
	l.swept = now
}

// take spends one token of key's bucket, or says how long to wait for one.
func (l *limiter) take(key string) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, b.wait(l.rate)
}

// check reports whether key's bucket holds a token, without spending it.
func (l *limiter) check(key string) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.m[key]; b != nil || len(l.m) >= l.max {
		b = l.get(key, now)
		if b.tokens < 1 {
			return false, b.wait(l.rate)
		}
	}
	return true, 0
}

// charge spends one token of key's bucket even when it holds none (then
// the wait grows, to at most one burst's refill time).
func (l *limiter) charge(key string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, now)
	b.tokens = max(b.tokens-1, 1-float64(l.rate.Burst))
}

// tracked is how many clients the limiter keeps a bucket for.
func (l *limiter) tracked() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// rateLimits is a Server's limiters and their metrics.
type rateLimits struct {
	perIP, perKey, authFailures *limiter
	trusted                     []netip.Prefix
	limited                     *prometheus.CounterVec
	authFailed                  prometheus.Counter
}

// limitReasons are the values of dss_rate_limited_total's reason label.
var limitReasons = []string{"ip", "key", "auth_failures", "import_queue"}

func newRateLimits(cfg Limits, reg *prometheus.Registry) *rateLimits {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = 100_000
	}
	l := &rateLimits{trusted: cfg.TrustedProxies,
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dss_rate_limited_total",
			Help: "Requests refused with 429, by the limit that refused them (ip, key, auth_failures, import_queue)."}, []string{"reason"}),
		authFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "dss_auth_failures_total",
			Help: "Requests refused with 401: no key, or an unknown, expired or revoked one."}),
	}
	for _, r := range limitReasons {
		l.limited.WithLabelValues(r)
	}
	newL := func(r Rate) *limiter {
		if r.Off() {
			return nil
		}
		return newLimiter(r, cfg.MaxTracked, cfg.Now)
	}
	l.perIP, l.perKey, l.authFailures = newL(cfg.PerIP), newL(cfg.PerKey), newL(cfg.AuthFailures)
	reg.MustRegister(l.limited, l.authFailed, trackedCollector{l})
	return l
}

// trackedCollector reports how many clients each limiter keeps a bucket
// for, as dss_rate_limit_tracked{limit}.
type trackedCollector struct{ l *rateLimits }

var trackedDesc = prometheus.NewDesc("dss_rate_limit_tracked",
	"Clients (addresses or keys) each rate limiter keeps a bucket for.", []string{"limit"}, nil)

func (c trackedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- trackedDesc }

func (c trackedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, x := range []struct {
		name string
		l    *limiter
	}{{"ip", c.l.perIP}, {"key", c.l.perKey}, {"auth_failures", c.l.authFailures}} {
		ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(x.l.tracked()), x.name)
	}
}

// limitIP counts a request against its client address.
func (l *rateLimits) limitIP(client string) error {
	if ok, wait := l.perIP.take(client); !ok {
		return RateLimited("ip", wait, "too many requests from %s: retry in %s", client, roundUp(wait))
	}
	return nil
}

// checkAuthFailures refuses an address whose failed authentications have
// used up their budget.
func (l *rateLimits) checkAuthFailures(client string) error {
	if ok, wait := l.authFailures.check(client); !ok {
		return RateLimited("auth_failures", wait, "too many failed authentications from %s: retry in %s", client, roundUp(wait))
	}
	return nil
}

// authFailure records a failed authentication from an address.
func (l *rateLimits) authFailure(client string) {
	l.authFailed.Inc()
	l.authFailures.charge(client)
}

// limitKey counts an authenticated request against its key, known by a
// hash of the token (never the token itself) and named by actor.
func (l *rateLimits) limitKey(token, actor string) error {
	if l.perKey == nil {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	if ok, wait := l.perKey.take(hex.EncodeToString(sum[:16])); !ok {
		return RateLimited("key", wait, "too many requests with key %q: retry in %s", actor, roundUp(wait))
	}
	return nil
}

// roundUp is a wait in whole seconds, at least one, as Retry-After says it.
func roundUp(d time.Duration) time.Duration {
	return time.Duration(retryAfterSeconds(d)) * time.Second
}

func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// clientKey is the address a request is counted against: the peer's
// address, or with trusted proxies, the client they name in
// X-Forwarded-For. IPv6 clients are counted by /64, the block one
// subscriber usually holds, so that rotating addresses in it gains
// nothing.
func (l *rateLimits) clientKey(r *http.Request) string {
	addr := l.clientAddr(r)
	if !addr.IsValid() {
		return "unknown"
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func (l *rateLimits) clientAddr(r *http.Request) netip.Addr {
	addr := parseHop(r.RemoteAddr)
	if !addr.IsValid() || !l.trustedProxy(addr) {
		return addr
	}
	// Right to left: each hop was added by the one after it; the first
	// that is not a trusted proxy is the client. A hop that cannot be read
	// stops the walk at the last trusted one.
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		h := hops[i]
		for h != "" {
			var hop string
			if j := strings.LastIndexByte(h, ','); j >= 0 {
				h, hop = h[:j], h[j+1:]
			} else {
				h, hop = "", h
			}
			a := parseHop(strings.TrimSpace(hop))
			if !a.IsValid() {
				return addr
			}
			addr = a
			if !l.trustedProxy(a) {
				return a
			}
		}
	}
	return addr
}

func (l *rateLimits) trustedProxy(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads an address, with or without a port; the zero Addr when
// it is not one.
func parseHop(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

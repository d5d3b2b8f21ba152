package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/keys"
)

// send makes one request as a client at address from (sent as
// X-Forwarded-For; "" sends none) with key; it returns the status and the
// Retry-After header (0 and "" when the request failed, reported with
// t.Error: send may be called from any goroutine).
func send(t testing.TB, base, method, path, from, key, body string) (int, string) {
	t.Helper()
	code, ra, _ := sendRead(t, base, method, path, from, key, body)
	return code, ra
}

// sendRead is send, and also returns the answer's body.
func sendRead(t testing.TB, base, method, path, from, key, body string) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if from != "" {
		req.Header.Set("X-Forwarded-For", from)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, "", nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), b
}

// metricValue reads one sample of /metrics, such as
// `dss_rate_limited_total{reason="ip"}`.
func metricValue(t testing.TB, base, key, sample string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics (%d)", sample, res.StatusCode)
	return 0
}

// flood sends requests until the first 429 (at most max) and returns how
// many were answered want before it, the 429's Retry-After, and how long
// it took.
func flood(t testing.TB, max int, want int, req func() (int, string)) (n int, retryAfter string, took time.Duration) {
	t.Helper()
	start := time.Now()
	for range max {
		code, ra := req()
		switch code {
		case want:
			n++
		case http.StatusTooManyRequests:
			return n, ra, time.Since(start)
		default:
			t.Fatalf("after %d: status %d, want %d or 429", n, code, want)
		}
	}
	t.Fatalf("%d requests and no 429", max)
	return
}

// TestRateLimitAuthFailureFlood: a real site behind a trusted proxy (the
// test, at 127.0.0.1, sends X-Forwarded-For): a flood of bad keys from one
// client gets 401 for its failure budget, then 429 with Retry-After, its
// good key too (the key is not even checked), and writing X-Forwarded-For
// itself does not get it out; a good key from another client keeps
// getting 200 throughout.
func TestRateLimitAuthFailureFlood(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris", "--trusted-proxies", "127.0.0.1/32", "--rate-limit-auth-failures", "1/s:10")
	key, base := adminKey(t, dir), m.HTTPURL()
	const attacker, user = "203.0.113.9", "198.51.100.7"
	n, ra, took := flood(t, 100, 401, func() (int, string) {
		if code, _ := send(t, base, "GET", "/v1/projects", user, key, ""); code != 200 {
			t.Fatalf("the good client during the flood: %d", code)
		}
		return send(t, base, "GET", "/v1/projects", attacker, "dss_bad_key", "")
	})
	if max := 10 + int(took.Seconds()) + 1; n < 10 || n > max {
		t.Fatalf("%d bad keys answered 401 before the first 429 in %v, want the burst of 10 (at most %d)", n, took, max)
	}
	if s, err := strconv.Atoi(ra); err != nil || s < 1 || s > 10 {
		t.Fatalf("Retry-After %q, want 1 to 10 seconds", ra)
	}
	for _, from := range []string{attacker, user + ", " + attacker} {
		if code, ra := send(t, base, "GET", "/v1/projects", from, key, ""); code != 429 || ra == "" {
			t.Fatalf("a good key from the flooding client (X-Forwarded-For %q): %d Retry-After %q, want 429", from, code, ra)
		}
	}
	for range 20 {
		if code, _ := send(t, base, "GET", "/v1/projects", user, key, ""); code != 200 {
			t.Fatalf("the good client after the flood: %d", code)
		}
	}
	if code, _ := send(t, base, "GET", "/healthz", attacker, "", ""); code != 200 {
		t.Fatalf("/healthz from the flooding client: %d", code)
	}
	if got := metricValue(t, base, key, `dss_rate_limited_total{reason="auth_failures"}`); got != 3 {
		t.Fatalf("dss_rate_limited_total{reason=auth_failures} = %v, want 3", got)
	}
	if got := metricValue(t, base, key, "dss_auth_failures_total"); got != float64(n) {
		t.Fatalf("dss_auth_failures_total = %v, want %d", got, n)
	}
}

// TestRateLimitIgnoresForwardedForByDefault: without --trusted-proxies,
// X-Forwarded-For is anyone's to write: a flood of bad keys that names a
// new address in it each time is still one client, and a good key
// claiming to be yet another address from the same peer is refused.
func TestRateLimitIgnoresForwardedForByDefault(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris")
	key, base := adminKey(t, dir), m.HTTPURL()
	i := 0
	n, _, took := flood(t, 100, 401, func() (int, string) {
		i++
		return send(t, base, "GET", "/v1/projects", fmt.Sprintf("203.0.113.%d", i), "dss_bad_key", "")
	})
	if n < 10 || n > 10+int(took.Seconds())+1 {
		t.Fatalf("%d bad keys with changing X-Forwarded-For answered 401 before the first 429, want the default burst of 10", n)
	}
	if code, _ := send(t, base, "GET", "/v1/projects", "198.51.100.7", key, ""); code != 429 {
		t.Fatalf("a good key from the same peer, claiming another address: %d, want 429", code)
	}
}

// TestRateLimitPerKeyFlood: one key's flood gets 429 with Retry-After;
// another key, from the same address, keeps working.
func TestRateLimitPerKeyFlood(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris", "--rate-limit-key", "1/s:10")
	admin, base := adminKey(t, dir), m.HTTPURL()
	_, ci, err := m.Keys.Create(context.Background(), "ci", []string{keys.ScopeRead}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, ra, took := flood(t, 100, 200, func() (int, string) {
		return send(t, base, "GET", "/v1/projects", "", ci, "")
	})
	if n < 10 || n > 10+int(took.Seconds())+1 {
		t.Fatalf("%d requests with one key before the first 429 in %v, want the burst of 10", n, took)
	}
	if ra != "1" {
		t.Fatalf("Retry-After %q, want 1 (one a second)", ra)
	}
	for range 5 {
		if code, _ := send(t, base, "GET", "/v1/projects", "", admin, ""); code != 200 {
			t.Fatalf("another key: %d", code)
		}
	}
	if got := metricValue(t, base, admin, `dss_rate_limited_total{reason="key"}`); got != 1 {
		t.Fatalf("dss_rate_limited_total{reason=key} = %v, want 1", got)
	}
}

// TestBodyLimit: a JSON body over --max-body is 413, and changes nothing.
func TestBodyLimit(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris", "--max-body", "1024")
	key, base := adminKey(t, dir), m.HTTPURL()
	if code := call(t, base, key, "POST", "/v1/projects", `{"id":"design"}`, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	big := `{"$type":"number","$value":1,"$description":"` + strings.Repeat("x", 2000) + `"}`
	if code, _ := send(t, base, "PUT", "/v1/projects/design/tokens/a", "", key, big); code != 413 {
		t.Fatalf("a 2 KB body over a 1 KB limit: %d, want 413", code)
	}
	if code, _ := send(t, base, "GET", "/v1/projects/design/tokens/a", "", key, ""); code != 404 {
		t.Fatalf("the refused token exists: %d", code)
	}
}

// closedWithin reads conn until the server closes it and returns how long
// that took; it fails if the server has not closed it within d.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open after %v", d)
	}
	return time.Since(start)
}

// trickle writes s to conn one byte every interval until a write fails
// or stop is closed.
func trickle(conn net.Conn, s string, interval time.Duration, stop <-chan struct{}) {
	for i := 0; i < len(s); i++ {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := conn.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// TestTimeoutsCutSlowClients: a client that sends its headers slowly is
// cut after --read-header-timeout, one that sends its body slowly after
// --read-timeout, and an idle kept-alive connection after --idle-timeout.
func TestTimeoutsCutSlowClients(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris", "--read-header-timeout", "300ms", "--read-timeout", "600ms", "--idle-timeout", "400ms")
	key, addr := adminKey(t, dir), strings.TrimPrefix(m.HTTPURL(), "http://")
	if code := call(t, m.HTTPURL(), key, "POST", "/v1/projects", `{"id":"design"}`, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	const limit = 5 * time.Second // what the client would take: far longer

	t.Run("headers", func(t *testing.T) {
		conn, stop := dial(), make(chan struct{})
		defer close(stop)
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		go trickle(conn, strings.Repeat("X-Slow: 1\r\n", 100), 20*time.Millisecond, stop)
		d := closedWithin(t, conn, limit)
		if d < 200*time.Millisecond {
			t.Fatalf("cut after %v, before the header timeout", d)
		}
		t.Logf("cut after %v", d)
	})
	t.Run("body", func(t *testing.T) {
		conn, stop := dial(), make(chan struct{})
		defer close(stop)
		body := `{"$type":"number","$value":1,"$description":"` + strings.Repeat("x", 500) + `"}`
		fmt.Fprintf(conn, "PUT /v1/projects/design/tokens/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", key, len(body))
		go trickle(conn, body, 20*time.Millisecond, stop)
		d := closedWithin(t, conn, limit)
		if d < 400*time.Millisecond {
			t.Fatalf("cut after %v, before the read timeout", d)
		}
		t.Logf("cut after %v", d)
		if code := call(t, m.HTTPURL(), key, "GET", "/v1/projects/design/tokens/slow", "", nil); code != 404 {
			t.Fatalf("the cut request wrote a token: %d", code)
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn := dial()
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", res, err)
		}
		io.Copy(io.Discard, res.Body)
		d := closedWithin(t, conn, limit)
		if d < 300*time.Millisecond {
			t.Fatalf("idle connection cut after %v, before the idle timeout", d)
		}
		t.Logf("cut after %v", d)
	})
}

// TestStreamOutlivesTimeouts: a live event stream on a site with a 1 s
// write timeout (and read timeout) keeps delivering for longer than that.
func TestStreamOutlivesTimeouts(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris", "--write-timeout", "1s", "--read-timeout", "1s", "--read-header-timeout", "1s")
	key := adminKey(t, dir)
	if code := call(t, m.HTTPURL(), key, "POST", "/v1/projects", `{"id":"design"}`, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	stream := openStream(t, t.Context(), m.HTTPURL(), key, "design", "")
	start := time.Now()
	for i := 0; time.Since(start) < 2500*time.Millisecond; i++ {
		path := fmt.Sprintf("t.n%d", i)
		if code := call(t, m.HTTPURL(), key, "PUT", "/v1/projects/design/tokens/"+path, `{"$type":"number","$value":1}`, nil); code != 201 {
			t.Fatalf("put: %d", code)
		}
		if got := next(t, stream, 1, 5*time.Second); got[0].Data.Path != path {
			t.Fatalf("after %v: got %+v, want %s", time.Since(start), got[0], path)
		}
		time.Sleep(250 * time.Millisecond) // paces the writes; nothing waits on it
	}
}

// TestImportQueueBound: imports run one at a time; with --import-queue 2
// and the runner held, a burst of 6 concurrent imports gets two accepted
// (202, queued) and four refused with 429 and Retry-After; once the
// runner has finished the two, an import is accepted again.
func TestImportQueueBound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg, err := loadConfig([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1",
		"--site", "paris", "--import-queue", "2"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: slog.New(slog.DiscardHandler), holdJobs: true}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	m.archives.syncRecords = 0 // every import becomes a job
	key, base := adminKey(t, dir), m.HTTPURL()
	const doc = `{"color":{"brand":{"$type":"color","$value":"#123456"}}}`

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var jobs, retry []string
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, ra, body := sendRead(t, base, "POST", "/v1/projects/design/import", "", key, doc)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			switch code {
			case 202:
				var j api.Job
				json.Unmarshal(body, &j)
				jobs = append(jobs, j.ID)
			case 429:
				retry = append(retry, ra)
			}
		}()
	}
	wg.Wait()
	if codes[202] != 2 || codes[429] != 4 {
		t.Fatalf("6 imports with a queue of 2: %v, want 2 accepted and 4 refused", codes)
	}
	for _, ra := range retry {
		if ra != "10" {
			t.Fatalf("Retry-After %q, want 10", ra)
		}
	}
	if got := metricValue(t, base, key, `dss_rate_limited_total{reason="import_queue"}`); got != 4 {
		t.Fatalf("dss_rate_limited_total{reason=import_queue} = %v, want 4", got)
	}
	if code, _ := send(t, base, "POST", "/v1/projects/design/import?dry_run=true", "", key, doc); code != 429 {
		t.Fatalf("a dry run with the queue full: %d, want 429", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); m.Jobs.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	for _, id := range jobs {
		waitFor(t, 30*time.Second, "job "+id+" to succeed", func() (bool, string) {
			var j api.Job
			call(t, base, key, "GET", "/v1/jobs/"+id, "", &j)
			return j.State == "succeeded", j.State
		})
	}
	if code, _ := send(t, base, "POST", "/v1/projects/design/import", "", key, doc); code != 202 {
		t.Fatalf("an import once the queue drained: %d, want 202", code)
	}
}

// TestConfigLimits: the limit settings' defaults (which the sample config
// shows), and each form (flag, environment, file) read.
func TestConfigLimits(t *testing.T) {
	c, err := loadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RateIP != (api.Rate{PerSecond: 100, Burst: 200}) || c.RateKey != (api.Rate{PerSecond: 50, Burst: 100}) ||
		c.RateAuth != (api.Rate{PerSecond: 1, Burst: 10}) || c.TrustedProxies != nil || c.ImportQueue != 4 {
		t.Fatalf("limit defaults: %+v", c)
	}
	if c.ReadHeaderTimeout != 10*time.Second || c.ReadTimeout != 2*time.Minute || c.WriteTimeout != 10*time.Minute || c.IdleTimeout != 2*time.Minute {
		t.Fatalf("timeout defaults: %v %v %v %v", c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout)
	}
	sample, err := loadConfig([]string{"--config", "../../deploy/dss-sync.yaml"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if sample.RateIP != c.RateIP || sample.RateKey != c.RateKey || sample.RateAuth != c.RateAuth || sample.TrustedProxies != nil ||
		sample.ReadHeaderTimeout != c.ReadHeaderTimeout || sample.ReadTimeout != c.ReadTimeout || sample.WriteTimeout != c.WriteTimeout ||
		sample.IdleTimeout != c.IdleTimeout || sample.ImportQueue != c.ImportQueue {
		t.Fatalf("deploy/dss-sync.yaml does not show the limits' defaults: %+v", sample)
	}
	file := filepath.Join(t.TempDir(), "dss-sync.yaml")
	os.WriteFile(file, []byte("rate-limit-ip: 10/m:5\nrate-limit-key: 5/s\ntrusted-proxies: [10.0.0.0/8, \"::1\"]\nwrite-timeout: 30m\nimport-queue: 9\n"), 0o600)
	c, err = loadConfig([]string{"--config", file, "--rate-limit-key", "off", "--idle-timeout", "45s"},
		env(map[string]string{"DSS_SYNC_RATE_LIMIT_AUTH_FAILURES": "6/m:3", "DSS_SYNC_READ_TIMEOUT": "5m"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if c.RateIP != (api.Rate{PerSecond: 10.0 / 60, Burst: 5}) || !c.RateKey.Off() || c.RateAuth != (api.Rate{PerSecond: 0.1, Burst: 3}) ||
		fmt.Sprint(c.TrustedProxies) != fmt.Sprint(want) || c.WriteTimeout != 30*time.Minute || c.ReadTimeout != 5*time.Minute ||
		c.IdleTimeout != 45*time.Second || c.ImportQueue != 9 {
		t.Fatalf("read as %+v", c)
	}
	c, err = loadConfig([]string{"--config", file}, env(map[string]string{"DSS_SYNC_TRUSTED_PROXIES": "192.168.0.0/16,172.16.0.0/12 127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.TrustedProxies); got != "[192.168.0.0/16 172.16.0.0/12 127.0.0.1/32]" {
		t.Fatalf("trusted proxies from the environment: %s", got)
	}
	c, err = loadConfig([]string{"--trusted-proxies", "10.1.2.3/8", "--trusted-proxies", "2001:db8::/32"}, env(nil))
	if err != nil || fmt.Sprint(c.TrustedProxies) != "[10.0.0.0/8 2001:db8::/32]" {
		t.Fatalf("trusted proxies from flags: %v %v", c, err)
	}
}

package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// testClock is a clock tests move by hand.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) add(d time.Duration)     { c.t = c.t.Add(d) }
func newTestClock() *testClock               { return &testClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func rate(perSecond float64, burst int) Rate { return Rate{PerSecond: perSecond, Burst: burst} }

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
	}{
		{"100/s:200", rate(100, 200)},
		{"100/s", rate(100, 100)},
		{"1/s:10", rate(1, 10)},
		{"30/m", rate(0.5, 1)},
		{"60/m:5", rate(1, 5)},
		{"3600/h:2", rate(1, 2)},
		{"0.5/s:3", rate(0.5, 3)},
		{"off", Rate{}},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "100", "fast", "0/s", "-1/s", "1/d", "1/s:0", "1/s:x", "NaN/s", "Inf/s", "1/s:2:3", "off:1"} {
		if r, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", bad, r)
		}
	}
}

// TestLimiterMath: a bucket of 4 refilled at 2/s lets 4 through at once,
// then one every 500 ms, and says exactly how long to wait.
func TestLimiterMath(t *testing.T) {
	c := newTestClock()
	l := newLimiter(rate(2, 4), 100, c.now)
	for i := range 4 {
		if ok, _ := l.take("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if ok, wait := l.take("a"); ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: ok=%v wait=%v, want refused, 500ms", ok, wait)
	}
	c.add(300 * time.Millisecond)
	if ok, wait := l.take("a"); ok || wait != 200*time.Millisecond {
		t.Fatalf("300 ms later: ok=%v wait=%v, want refused, 200ms", ok, wait)
	}
	c.add(200 * time.Millisecond)
	if ok, _ := l.take("a"); !ok {
		t.Fatal("500 ms later: refused")
	}
	if ok, _ := l.take("b"); !ok {
		t.Fatal("another client refused")
	}
	c.add(time.Hour) // refills to the burst, no more
	n := 0
	for ok := true; ok; n++ {
		ok, _ = l.take("a")
	}
	if n-1 != 4 {
		t.Fatalf("after an hour, %d requests at once, want the burst of 4", n-1)
	}
}

// TestLimiterCheckAndCharge: check spends nothing; charge spends even
// past zero, the wait growing to at most one burst's refill.
func TestLimiterCheckAndCharge(t *testing.T) {
	c := newTestClock()
	l := newLimiter(rate(1, 3), 100, c.now)
	for range 10 {
		if ok, _ := l.check("ip"); !ok {
			t.Fatal("check spent tokens")
		}
	}
	if l.tracked() != 0 {
		t.Fatalf("check of an unknown client kept a bucket: %d", l.tracked())
	}
	for range 3 {
		l.charge("ip")
	}
	if ok, wait := l.check("ip"); ok || wait != time.Second {
		t.Fatalf("after 3 failures: ok=%v wait=%v, want refused, 1s", ok, wait)
	}
	for range 100 {
		l.charge("ip")
	}
	if ok, wait := l.check("ip"); ok || wait != 3*time.Second {
		t.Fatalf("after 103 failures: ok=%v wait=%v, want refused, 3s (one burst's refill)", ok, wait)
	}
	c.add(3 * time.Second)
	if ok, _ := l.check("ip"); !ok {
		t.Fatal("still refused after the wait it gave")
	}
}

// TestLimiterForgetsIdleClients: memory is bounded: clients whose bucket
// is full again are forgotten at the next sweep, and when the map is full
// new clients share one bucket instead of growing it.
func TestLimiterForgetsIdleClients(t *testing.T) {
	c := newTestClock()
	l := newLimiter(rate(10, 20), 1000, c.now)
	for i := range 500 {
		l.take(fmt.Sprint("idle", i))
	}
	c.add(30 * time.Second)
	for range 20 {
		l.take("busy") // spent: not full at the sweep
	}
	if got := l.tracked(); got != 501 {
		t.Fatalf("tracked %d, want 501", got)
	}
	c.add(l.sweepEvery)
	for range 20 {
		l.take("busy") // refilled by the minute, spent again
	}
	l.take("new") // a new client triggers the sweep
	if got := l.tracked(); got != 2 {
		t.Fatalf("after the sweep, tracked %d, want 2 (busy and new)", got)
	}

	full := newLimiter(rate(1, 2), 3, c.now)
	for _, k := range []string{"a", "b", "c"} {
		full.take(k)
	}
	// d and e share the overflow bucket of 2.
	if ok, _ := full.take("d"); !ok {
		t.Fatal("overflow: first refused")
	}
	if ok, _ := full.take("e"); !ok {
		t.Fatal("overflow: second refused")
	}
	if ok, _ := full.take("f"); ok {
		t.Fatal("overflow bucket not shared")
	}
	if ok, _ := full.take("a"); !ok {
		t.Fatal("a tracked client suffered from the overflow")
	}
	if got := full.tracked(); got != 3 {
		t.Fatalf("tracked %d, want the maximum 3", got)
	}
	c.add(5 * time.Second) // all full again: the next new client sweeps
	full.take("g")
	if got := full.tracked(); got != 1 {
		t.Fatalf("after refilling, tracked %d, want 1", got)
	}
}

// TestClientKey: X-Forwarded-For is read only from trusted proxies, right
// to left, and a client cannot pass for another by writing the header.
func TestClientKey(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"127.0.0.1:5000", nil, nil, "127.0.0.1"},
		{"127.0.0.1:5000", []string{"203.0.113.9"}, nil, "127.0.0.1"},                     // not trusted: ignored
		{"198.51.100.1:5000", []string{"203.0.113.9"}, local, "198.51.100.1"},             // from an untrusted peer
		{"127.0.0.1:5000", []string{"203.0.113.9"}, local, "203.0.113.9"},                 // through the proxy
		{"127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9"}, local, "203.0.113.9"},   // the client's own entry is left of the proxy's
		{"127.0.0.1:5000", []string{"203.0.113.9, 10.1.2.3"}, local, "203.0.113.9"},       // two proxies
		{"127.0.0.1:5000", []string{"198.51.100.7", "203.0.113.9"}, local, "203.0.113.9"}, // two header lines
		{"127.0.0.1:5000", []string{"garbage, 203.0.113.9"}, local, "203.0.113.9"},        // never read that far
		{"127.0.0.1:5000", []string{"203.0.113.9, garbage"}, local, "127.0.0.1"},          // an unreadable hop stops the walk
		{"127.0.0.1:5000", []string{"10.0.0.1, 10.0.0.2"}, local, "10.0.0.1"},             // all proxies: the farthest
		{"127.0.0.1:5000", []string{"203.0.113.9:4711"}, local, "203.0.113.9"},            // with a port
		{"127.0.0.1:5000", []string{"[2001:db8:1:2::9]:443"}, local, "2001:db8:1:2::/64"}, // IPv6, with a port
		{"[2001:db8:1:2:aaaa::1]:5000", nil, nil, "2001:db8:1:2::/64"},                    // IPv6 by /64
		{"[2001:db8:1:2:bbbb::2]:5000", nil, nil, "2001:db8:1:2::/64"},                    // the same /64
		{"[::ffff:198.51.100.4]:5000", nil, nil, "198.51.100.4"},                          // IPv4-mapped
		{"[::ffff:127.0.0.1]:5000", []string{"203.0.113.9"}, local, "203.0.113.9"},        // a mapped proxy address
		{"@", nil, nil, "unknown"}, // not an address
		{"127.0.0.1:5000", []string{"203.0.113.9, 127.0.0.1"}, local[:1], "203.0.113.9"},   // proxy on the same host
		{"127.0.0.1:5000", []string{"fe80::1%eth0, 127.0.0.1"}, local[:1], "fe80::/64"},    // a zone is dropped
		{"127.0.0.1:5000", []string{" 203.0.113.9 ,127.0.0.1 "}, local[:1], "203.0.113.9"}, // spaces
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		l := &rateLimits{trusted: tc.trusted}
		if got := l.clientKey(r); got != tc.want {
			t.Errorf("%s %q trusted %v: %q, want %q", tc.remote, tc.xff, tc.trusted, got, tc.want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + time.Millisecond, 2}, {59500 * time.Millisecond, 60}} {
		if got := retryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

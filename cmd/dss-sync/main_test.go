package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/projections"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// MustRunMain starts a site in-process on random ports with its data in
// dir, closed at cleanup (wtf's MustRunMain); flags are added to (and may
// override) the defaults.
func MustRunMain(t testing.TB, dir, site string, flags ...string) *Main {
	t.Helper()
	var args []string
	// Tests poll sites faster than any client should: the request rate
	// limits are off unless a test sets them (limits_test.go does).
	for _, d := range [][2]string{{"--data-dir", dir}, {"--http-addr", "127.0.0.1:0"}, {"--nats-listen", "127.0.0.1:-1"}, {"--site", site},
		{"--rate-limit-ip", "off"}, {"--rate-limit-key", "off"}} {
		if !slices.Contains(flags, d[0]) {
			args = append(args, d[0], d[1])
		}
	}
	cfg, err := loadConfig(append(args, flags...), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// call sends a JSON request to the site with the admin key and decodes the
// reply into out (when not nil), returning the status.
func call(t testing.TB, base, key, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, b, err)
		}
	}
	return res.StatusCode
}

func adminKey(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestMainServesAndRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := MustRunMain(t, dir, "paris")
	key := adminKey(t, dir)
	for _, f := range []string{"admin.key", "site-id"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v, want 0700", st.Mode().Perm())
	}
	base := m.HTTPURL()
	if got := call(t, base, key, "POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	if got := call(t, base, key, "PUT", "/v1/projects/design/tokens/color.brand", `{"$type":"color","$value":"#ff0000"}`, nil); got != 201 {
		t.Fatalf("put token: %d", got)
	}
	// The outbox publishes both events to the site's stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Outbox.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	js, _ := natsjs.New(m.Conn)
	st, err := js.Stream(ctx, jetstream.StreamName("paris"))
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2", info.State.Msgs)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Restart on the same data dir: same site, same data, same key.
	m = MustRunMain(t, dir, "paris")
	var tok struct {
		Value string `json:"$value"`
	}
	if got := call(t, m.HTTPURL(), key, "GET", "/v1/projects/design/tokens/color.brand", "", &tok); got != 200 || tok.Value != "#ff0000" {
		t.Fatalf("after restart: %d %+v", got, tok)
	}
	m.Close(context.Background())

	// A data dir belongs to one site.
	cfg, _ := loadConfig([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--site", "lyon"}, env(nil))
	other := &Main{Config: *cfg, Logger: slog.New(slog.DiscardHandler)}
	if err := other.Open(context.Background()); err == nil || !strings.Contains(err.Error(), `belongs to site "paris"`) {
		t.Fatalf("opening paris's data dir as lyon: %v", err)
	}
}

// TestMainAppliesItsInbox publishes a simulated site's events to a running
// site's inbox: the applier folds them, and /metrics counts them.
func TestMainAppliesItsInbox(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	m := MustRunMain(t, dir, "paris")
	key := adminKey(t, dir)

	sim, _ := projections.NewSite(projections.SiteConfig{ID: "lyon", Storage: projections.NewMemory()})
	sim.CreateProject(ctx, "shared", "Shared", "bob")
	sim.ApplyOne(ctx, "shared", "bob", projections.Change{Path: "color.brand", Data: json.RawMessage(`{"$type":"color","$value":"#00ff00"}`)})
	var buf strings.Builder
	sim.Storage().View(ctx, "shared", func(r projections.Reader) error {
		return r.ScanEvents(events.Position{}, func(e *events.Event) error {
			b, _ := json.Marshal(e)
			buf.Write(b)
			buf.WriteByte('\n')
			return nil
		})
	})
	js, _ := natsjs.New(m.Conn)
	if _, err := js.Publish(ctx, jetstream.InboxSubject("paris", "shared"), []byte(buf.String())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var tok struct {
			Value string `json:"$value"`
		}
		if call(t, m.HTTPURL(), key, "GET", "/v1/projects/shared/tokens/color.brand", "", &tok) == 200 && tok.Value == "#00ff00" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the inbox's events were not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", m.HTTPURL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `dss_events_received_total{result="applied",source="inbox"} 2`) {
		t.Fatalf("metrics lack the applied events:\n%s", body)
	}
}

func TestAuditCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := MustRunMain(t, dir, "paris")
	key := adminKey(t, dir)
	call(t, m.HTTPURL(), key, "POST", "/v1/projects", `{"id":"design"}`, nil)
	for i := 0; i < 3; i++ {
		call(t, m.HTTPURL(), key, "PUT", fmt.Sprintf("/v1/projects/design/tokens/t.n%d", i), `{"$type":"number","$value":1}`, nil)
	}
	out := filepath.Join(t.TempDir(), "trail.ndjson")
	var so, se strings.Builder
	if code := run(context.Background(), []string{"audit", "export", "design", "-o", out, "--server", m.HTTPURL(), "--data-dir", dir}, &so, &se, env(nil)); code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, se.String())
	}
	if code := run(context.Background(), []string{"audit", "verify", out}, &so, &se, env(nil)); code != 0 {
		t.Fatalf("audit verify: exit %d: %s", code, se.String())
	}
	b, _ := os.ReadFile(out)
	os.WriteFile(out, []byte(strings.Replace(string(b), `"$value":1`, `"$value":2`, 1)), 0o600)
	se.Reset()
	if code := run(context.Background(), []string{"audit", "verify", out}, &so, &se, env(nil)); code != 1 || !strings.Contains(se.String(), "line 2") {
		t.Fatalf("tampered trail: exit %d, %q", code, se.String())
	}
	if code := run(context.Background(), []string{"audit", "export", "design", "-o", out, "--server", m.HTTPURL(), "--token", "dss_wrong"}, &so, &se, env(nil)); code != 1 {
		t.Fatalf("a wrong key: exit %d", code)
	}
}

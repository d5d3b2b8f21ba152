package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/keys"
	"github.com/dss-sync/dss-sync/internal/pebble"
)

// keyClock is the key store's clock in these tests: real time plus an
// offset the test moves forward.
type keyClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *keyClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *keyClock) Add(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// lockedBuffer is a log sink several goroutines write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runKeySite starts a site as MustRunMain does, with the key store on clk
// and, when logs is not nil, a JSON logger at debug level writing to it.
func runKeySite(t testing.TB, dir string, clk *keyClock, logs io.Writer) *Main {
	t.Helper()
	cfg, err := loadConfig([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--site", "paris"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if logs != nil {
		logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m := &Main{Config: *cfg, Logger: logger}
	if clk != nil {
		m.keysNow = clk.Now
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// runCLI runs a dss-sync command against the site and returns its exit
// code, stdout and stderr.
func runCLI(m *Main, args ...string) (int, string, string) {
	var so, se strings.Builder
	args = append(args, "--server", m.HTTPURL(), "--data-dir", m.Config.DataDir)
	code := run(context.Background(), args, &so, &se, env(nil))
	return code, so.String(), se.String()
}

// createKey makes a key with `dss-sync keys create` and returns its token.
func createKey(t testing.TB, m *Main, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(m, append([]string{"keys", "create"}, args...)...)
	if code != 0 {
		t.Fatalf("keys create %v: exit %d: %s", args, code, errOut)
	}
	token := strings.TrimSpace(out)
	if _, _, ok := keys.ParseToken(token); !ok || strings.Count(out, "\n") != 1 {
		t.Fatalf("keys create printed %q, want the token alone", out)
	}
	return token
}

func keyID(t testing.TB, token string) string {
	t.Helper()
	id, _, ok := keys.ParseToken(token)
	if !ok {
		t.Fatalf("not a token: %q", token)
	}
	return id
}

// status sends a request with key and returns the status; a 4xx must be
// a problem document with that status.
func status(t testing.TB, m *Main, key, method, path, body string) int {
	t.Helper()
	var p api.Problem
	got := call(t, m.HTTPURL(), key, method, path, body, &p)
	if got >= 400 && p.Status != got {
		t.Fatalf("%s %s: %d without a problem document (%+v)", method, path, got, p)
	}
	return got
}

func wantStatus(t testing.TB, m *Main, what string, want int, key, method, path, body string) {
	t.Helper()
	if got := status(t, m, key, method, path, body); got != want {
		t.Errorf("%s: %s %s = %d, want %d", what, method, path, got, want)
	}
}

// TestKeyScopes401vs403 checks each scope, a key limited to a project, and
// each way to be refused, through the real site: 401 when the key does not
// identify anyone, 403 when it does but may not.
func TestKeyScopes401vs403(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := runKeySite(t, dir, nil, nil)
	admin := adminKey(t, dir)
	for _, p := range []string{"a", "b"} {
		wantStatus(t, m, "admin creates a project", 201, admin, "POST", "/v1/projects", `{"id":"`+p+`"}`)
	}
	reader := createKey(t, m, "--name", "reader", "--scope", "read")
	writer := createKey(t, m, "--name", "writer", "--scope", "write")
	onlyA := createKey(t, m, "--name", "only-a", "--scope", "write", "--project", "a")
	admin2 := createKey(t, m, "--name", "second-admin", "--scope", "admin")
	adminA := createKey(t, m, "--name", "admin-a", "--scope", "admin", "--project", "a")

	tok := `{"$type":"number","$value":1}`
	wrong := reader[:len(reader)-43] + strings.Repeat("x", 43)
	unknown := "dss_aaaaaaaaaaaaaaaa_" + reader[len(reader)-43:]
	for _, tc := range []struct {
		what              string
		key, method, path string
		body              string
		want              int
	}{
		{"no key", "", "GET", "/v1/projects/a/tokens", "", 401},
		{"a malformed key", "Basic dXNlcg==", "GET", "/v1/projects/a/tokens", "", 401},
		{"a wrong secret", wrong, "GET", "/v1/projects/a/tokens", "", 401},
		{"an unknown id", unknown, "GET", "/v1/projects/a/tokens", "", 401},

		{"read may read", reader, "GET", "/v1/projects/a/tokens", "", 200},
		{"read may not write", reader, "PUT", "/v1/projects/a/tokens/n.one", tok, 403},
		{"read may not administer", reader, "GET", "/v1/admin/keys", "", 403},

		{"write may write", writer, "PUT", "/v1/projects/a/tokens/n.one", tok, 201},
		{"write may read", writer, "GET", "/v1/projects/b/tokens", "", 200},
		{"write may not list keys", writer, "GET", "/v1/admin/keys", "", 403},
		{"write may not create keys", writer, "POST", "/v1/admin/keys", `{"name":"x","scopes":["admin"]}`, 403},
		{"write may not read the security log", writer, "GET", "/v1/admin/security-log", "", 403},

		{"admin may write", admin2, "PUT", "/v1/projects/b/tokens/n.two", tok, 201},
		{"admin may list keys", admin2, "GET", "/v1/admin/keys", "", 200},
		{"admin may read the security log", admin2, "GET", "/v1/admin/security-log", "", 200},

		{"a key for a writes a", onlyA, "PUT", "/v1/projects/a/tokens/n.three", tok, 201},
		{"a key for a may not read b", onlyA, "GET", "/v1/projects/b/tokens", "", 403},
		{"a key for a may not write b", onlyA, "PUT", "/v1/projects/b/tokens/n.four", tok, 403},
		{"an admin key for a may not administer keys", adminA, "GET", "/v1/admin/keys", "", 403},
	} {
		wantStatus(t, m, tc.what, tc.want, tc.key, tc.method, tc.path, tc.body)
	}
}

// TestKeyStatesThroughTheSite drives keys through each state on a real
// site, the key store's clock moved forward: valid, expired, rotated within
// and after the overlap, revoked (refused by the very next request).
func TestKeyStatesThroughTheSite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clk := &keyClock{}
	m := runKeySite(t, dir, clk, nil)
	admin := adminKey(t, dir)
	wantStatus(t, m, "create project", 201, admin, "POST", "/v1/projects", `{"id":"web"}`)
	get := "/v1/projects/web/tokens"

	short := createKey(t, m, "--name", "short", "--scope", "read", "--ttl", "1h")
	long := createKey(t, m, "--name", "long", "--scope", "read")
	wantStatus(t, m, "valid", 200, short, "GET", get, "")
	clk.Add(time.Hour)
	wantStatus(t, m, "expired", 401, short, "GET", get, "")
	var p api.Problem
	call(t, m.HTTPURL(), short, "GET", get, "", &p)
	if !strings.Contains(p.Detail, "expired") {
		t.Errorf("an expired key's problem: %q", p.Detail)
	}
	wantStatus(t, m, "a 90-day key an hour on", 200, long, "GET", get, "")

	code, out, errOut := runCLI(m, "keys", "rotate", keyID(t, long), "--overlap", "48h")
	if code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errOut)
	}
	next := strings.TrimSpace(out)
	if !strings.Contains(errOut, "the old key works until") {
		t.Errorf("rotate said %q", errOut)
	}
	wantStatus(t, m, "old key within the overlap", 200, long, "GET", get, "")
	wantStatus(t, m, "new key within the overlap", 200, next, "GET", get, "")
	clk.Add(47 * time.Hour)
	wantStatus(t, m, "old key at the end of the overlap", 200, long, "GET", get, "")
	clk.Add(time.Hour)
	wantStatus(t, m, "old key after the overlap", 401, long, "GET", get, "")
	wantStatus(t, m, "new key after the overlap", 200, next, "GET", get, "")

	// Revoked: the request right after the revoke is refused, and a live
	// stream opened with the key ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := openStream(t, ctx, m.HTTPURL(), next, "web", "")
	wantStatus(t, m, "create admin's token", 201, admin, "PUT", "/v1/projects/web/tokens/n.one", `{"$type":"number","$value":1}`)
	select {
	case ev := <-stream:
		if ev.Event != "token.set" {
			t.Fatalf("stream sent %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("the stream sent nothing")
	}
	var revoked api.APIKey
	if got := call(t, m.HTTPURL(), admin, "POST", "/v1/admin/keys/"+keyID(t, next)+"/revoke", "", &revoked); got != 200 || revoked.State != keys.StateRevoked {
		t.Fatalf("revoke: %d %+v", got, revoked)
	}
	wantStatus(t, m, "right after the revoke", 401, next, "GET", get, "")
	for range stream {
	}
	if ctx.Err() != nil {
		t.Fatal("the revoked key's stream did not end")
	}
	var list struct{ Keys []api.APIKey }
	call(t, m.HTTPURL(), admin, "GET", "/v1/admin/keys", "", &list)
	states := map[string]string{}
	for _, k := range list.Keys {
		states[k.ID] = k.State
	}
	for id, want := range map[string]string{keyID(t, short): "expired", keyID(t, long): "expired", keyID(t, next): "revoked", keyID(t, admin): "active"} {
		if states[id] != want {
			t.Errorf("key %s is %q, want %q", id, states[id], want)
		}
	}
}

// TestKeyActorAndUsage checks that events written with a key carry its name,
// and that its last-used time and use count move, and survive a restart.
func TestKeyActorAndUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := runKeySite(t, dir, nil, nil)
	admin := adminKey(t, dir)
	wantStatus(t, m, "create project", 201, admin, "POST", "/v1/projects", `{"id":"web"}`)
	ci := createKey(t, m, "--name", "ci-web", "--scope", "write", "--project", "web")
	usage := func() api.APIKey {
		t.Helper()
		var list struct{ Keys []api.APIKey }
		call(t, m.HTTPURL(), admin, "GET", "/v1/admin/keys", "", &list)
		for _, k := range list.Keys {
			if k.ID == keyID(t, ci) {
				return k
			}
		}
		t.Fatal("the key is not listed")
		return api.APIKey{}
	}
	if u := usage(); u.UseCount != 0 || u.LastUsedAt != nil {
		t.Fatalf("a new key: %d uses, last %v", u.UseCount, u.LastUsedAt)
	}
	before := time.Now().Add(-time.Second)
	for i := range 3 {
		wantStatus(t, m, "write", 201, ci, "PUT", fmt.Sprintf("/v1/projects/web/tokens/n.t%d", i), `{"$type":"number","$value":1}`)
	}
	u := usage()
	if u.UseCount != 3 || u.LastUsedAt == nil || u.LastUsedAt.Before(before) {
		t.Fatalf("after 3 requests: %d uses, last %v", u.UseCount, u.LastUsedAt)
	}
	var ev struct {
		Events []struct{ Actor, Type string }
	}
	call(t, m.HTTPURL(), admin, "GET", "/v1/projects/web/events", "", &ev)
	if n := len(ev.Events); n != 4 || ev.Events[0].Actor != "admin" {
		t.Fatalf("events %+v", ev.Events)
	}
	for _, e := range ev.Events[1:] {
		if e.Actor != "ci-web" {
			t.Errorf("an event written with key ci-web has actor %q", e.Actor)
		}
	}
	var token struct{ UpdatedBy string }
	call(t, m.HTTPURL(), ci, "GET", "/v1/projects/web/tokens/n.t0", "", &token)
	if token.UpdatedBy != "ci-web" {
		t.Errorf("updatedBy %q", token.UpdatedBy)
	}
	// Rotation keeps the name, so the actor.
	_, out, _ := runCLI(m, "keys", "rotate", keyID(t, ci))
	wantStatus(t, m, "write with the successor", 201, strings.TrimSpace(out), "PUT", "/v1/projects/web/tokens/n.t9", `{"$type":"number","$value":1}`)
	call(t, m.HTTPURL(), admin, "GET", "/v1/projects/web/events", "", &ev)
	if last := ev.Events[len(ev.Events)-1]; last.Actor != "ci-web" {
		t.Errorf("the successor's event has actor %q", last.Actor)
	}

	// The counters are flushed at shutdown and read back at start.
	m.Close(context.Background())
	m = runKeySite(t, dir, nil, nil)
	if got := usage(); got.UseCount != 4 || got.LastUsedAt == nil || got.LastUsedAt.Before(*u.LastUsedAt) {
		t.Fatalf("after a restart: %d uses (want 4: 3 writes and a read), last %v", got.UseCount, got.LastUsedAt)
	}
}

// TestKeySecurityLogThroughTheSite checks that every key operation and
// auth failure is in the security log with its actor, that `keys log
// --verify` checks the chain, and that it catches a record edited in the
// store.
func TestKeySecurityLogThroughTheSite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := runKeySite(t, dir, nil, nil)
	admin := adminKey(t, dir)
	ops := createKey(t, m, "--name", "ops", "--scope", "admin")
	ci := createKey(t, m, "--name", "ci", "--scope", "read", "--token", ops)
	if code, _, errOut := runCLI(m, "keys", "rotate", keyID(t, ci), "--token", ops); code != 0 {
		t.Fatal(errOut)
	}
	if code, out, errOut := runCLI(m, "keys", "revoke", keyID(t, ci), "--token", ops); code != 0 || !strings.Contains(out, "revoked key "+keyID(t, ci)) {
		t.Fatalf("revoke: exit %d %q %s", code, out, errOut)
	}
	wantStatus(t, m, "the revoked key", 401, ci, "GET", "/v1/projects", "")
	wantStatus(t, m, "a wrong secret", 401, ci[:len(ci)-43]+strings.Repeat("Q", 43), "GET", "/v1/projects", "")
	wantStatus(t, m, "garbage", 401, "nope", "GET", "/v1/projects", "")

	code, out, errOut := runCLI(m, "keys", "log", "--verify")
	if code != 0 || !strings.Contains(errOut, "hash chain intact") {
		t.Fatalf("keys log --verify: exit %d: %s", code, errOut)
	}
	var recs []api.SecurityRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r api.SecurityRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, r)
	}
	type want struct{ kind, actor, keyName, reason string }
	wants := []want{
		{keys.KindCreate, keys.SiteActor, "admin", ""},
		{keys.KindCreate, "admin", "ops", ""},
		{keys.KindCreate, "ops", "ci", ""},
		{keys.KindRotate, "ops", "ci", ""},
		{keys.KindRevoke, "ops", "ci", ""},
		{keys.KindAuthFailure, "", "ci", "key revoked"},
		{keys.KindAuthFailure, "", "ci", "wrong secret"},
		{keys.KindAuthFailure, "", "", "malformed key"},
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d:\n%s", len(recs), len(wants), out)
	}
	for i, w := range wants {
		r := recs[i]
		if r.Kind != w.kind || r.Actor != w.actor || r.KeyName != w.keyName || (w.reason != "" && r.Reason != w.reason) {
			t.Errorf("record %d: %+v, want %+v", i+1, r, w)
		}
		if i > 0 && r.Remote != "127.0.0.1" {
			t.Errorf("record %d: remote %q", i+1, r.Remote)
		}
	}
	// Pages.
	var page api.SecurityLogPage
	call(t, m.HTTPURL(), admin, "GET", "/v1/admin/security-log?after=2&limit=3", "", &page)
	if len(page.Records) != 3 || page.Records[0].Seq != 3 || page.Next == nil || *page.Next != 5 {
		t.Fatalf("page: %+v", page)
	}

	// Edit record 4 in the stopped site's store: the chain shows it.
	m.Close(context.Background())
	st, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b := st.Bucket("keys")
	v, ok, err := b.Get("~log/0000000000000004")
	if err != nil || !ok {
		t.Fatalf("record 4: %v %v", ok, err)
	}
	b.Set("~log/0000000000000004", bytes.Replace(v, []byte(`"actor":"ops"`), []byte(`"actor":"admin"`), 1))
	ks := keys.NewStore(b, nil, nil)
	if _, err := ks.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "record 4") {
		t.Fatalf("Verify after tampering: %v", err)
	}
	st.Close()
	m = runKeySite(t, dir, nil, nil)
	code, _, errOut = runCLI(m, "keys", "log", "--verify")
	if code != 1 || !strings.Contains(errOut, "record 4") {
		t.Fatalf("keys log --verify of a tampered log: exit %d: %s", code, errOut)
	}
}

// TestKeyNoSecretLeaks runs a site with a JSON logger at debug level,
// creates, rotates, uses and revokes keys and fails authentication with a
// real-looking wrong secret, then looks for every secret in the log output,
// in every key and value of the Pebble store, and in every file of the
// data dir but admin.key: none may be there.
func TestKeyNoSecretLeaks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var logs lockedBuffer
	m := runKeySite(t, dir, nil, &logs)
	admin := adminKey(t, dir)
	secrets := map[string]string{}
	add := func(what, token string) {
		secrets[what] = token
		if _, sec, ok := keys.ParseToken(token); ok {
			secrets[what+" (secret part)"] = sec
		}
	}
	wantStatus(t, m, "create project", 201, admin, "POST", "/v1/projects", `{"id":"web"}`)
	ci := createKey(t, m, "--name", "ci", "--scope", "write")
	add("created key", ci)
	var kt api.KeyToken
	if got := call(t, m.HTTPURL(), admin, "POST", "/v1/admin/keys", `{"name":"api-made","scopes":["read"],"ttl":"24h"}`, &kt); got != 201 {
		t.Fatalf("create over the API: %d", got)
	}
	add("key created over the API", kt.Token)
	_, out, _ := runCLI(m, "keys", "rotate", keyID(t, ci))
	next := strings.TrimSpace(out)
	add("rotated key", next)
	wantStatus(t, m, "use the old key", 201, ci, "PUT", "/v1/projects/web/tokens/n.x", `{"$type":"number","$value":2}`)
	wantStatus(t, m, "use the new key", 201, next, "PUT", "/v1/projects/web/tokens/n.y", `{"$type":"number","$value":2}`)
	wantStatus(t, m, "use the API-made key", 200, kt.Token, "GET", "/v1/projects/web/tokens/n.y", "")
	wrong := "dss_" + keyID(t, ci) + "_" + "Vq3" + strings.Repeat("x7Kp", 10)
	add("wrong secret", wrong)
	wantStatus(t, m, "a real-looking wrong secret", 401, wrong, "GET", "/v1/projects", "")
	truncated := next[:len(next)-1]
	add("truncated key", truncated)
	add("truncated key's secret part", truncated[len("dss_")+16+1:])
	wantStatus(t, m, "a truncated key", 401, truncated, "GET", "/v1/projects", "")
	runCLI(m, "keys", "revoke", keyID(t, kt.Token))
	wantStatus(t, m, "a revoked key", 401, kt.Token, "GET", "/v1/projects", "")
	runCLI(m, "keys", "list")
	runCLI(m, "keys", "log")
	add("admin key", admin) // it is in admin.key, by design, and nowhere else
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(logs.String(), `"msg":"request"`) || !strings.Contains(logs.String(), `"key":"ci"`) {
		t.Fatalf("the logger saw no requests:\n%.2000s", logs.String())
	}
	look := func(where, text string) {
		t.Helper()
		for what, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("the %s is in %s", what, where)
			}
		}
	}
	look("the log", logs.String())

	st, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	it, err := st.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		look(fmt.Sprintf("Pebble key %q", it.Key()), string(it.Key()))
		look(fmt.Sprintf("the value of Pebble key %q", it.Key()), string(v))
		n++
	}
	it.Close()
	if n == 0 {
		t.Fatal("the store is empty")
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "admin.key" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		look(path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKeysCLI checks the keys commands' output and exit codes: 0 done, 1
// refused by the site, 2 bad usage; and that rotating the key in
// <data-dir>/admin.key moves the file to the new key.
func TestKeysCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := runKeySite(t, dir, nil, nil)
	admin := adminKey(t, dir)
	createKey(t, m, "--name", "designer", "--scope", "read,write", "--project", "web", "--project", "app", "--ttl", "720h")
	code, out, _ := runCLI(m, "keys", "list")
	if code != 0 {
		t.Fatalf("keys list: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("keys list:\n%s", out)
	}
	if f := strings.Fields(lines[2]); f[1] != "designer" || f[2] != "read,write" || f[3] != "web,app" || f[4] != "active" || f[6] != "never" || f[7] != "0" {
		t.Fatalf("the designer's row: %q", lines[2])
	}
	code, out, _ = runCLI(m, "keys", "list", "--json")
	var list struct{ Keys []api.APIKey }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Keys) != 2 {
		t.Fatalf("keys list --json: exit %d %s", code, out)
	}
	if strings.Contains(out, "hash") {
		t.Fatalf("keys list shows a hash:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"keys"}, 2, "usage: dss-sync keys"},
		{[]string{"keys", "mint"}, 2, "unknown keys command"},
		{[]string{"keys", "create", "--scope", "read"}, 2, "--name"},
		{[]string{"keys", "create", "--name", "x"}, 2, "--scope"},
		{[]string{"keys", "create", "--name", "x", "--scope", "read", "--ttl", "soon"}, 2, "invalid value"},
		{[]string{"keys", "create", "--name", "x", "--scope", "root"}, 1, "unknown scope"},
		{[]string{"keys", "create", "--name", "designer", "--scope", "read"}, 1, "already named"},
		{[]string{"keys", "rotate"}, 2, "one key id"},
		{[]string{"keys", "rotate", "not-an-id"}, 2, "not a key id"},
		{[]string{"keys", "rotate", "aaaaaaaaaaaaaaaa"}, 1, "no API key"},
		{[]string{"keys", "revoke", "aaaaaaaaaaaaaaaa"}, 1, "no API key"},
		{[]string{"keys", "revoke", "a", "b"}, 2, "one key id"},
		{[]string{"keys", "log", "--after", "3", "--verify"}, 2, "--after"},
		{[]string{"keys", "list", "--token", "dss_wrong"}, 1, "Unauthorized (401)"},
	} {
		code, out, errOut := runCLI(m, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.msg)
		}
		if out != "" {
			t.Errorf("%v: printed %q on stdout", tc.args, out)
		}
	}

	// Rotating the admin key with the default token updates admin.key.
	code, out, errOut := runCLI(m, "keys", "rotate", keyID(t, admin), "--overlap", "1h")
	if code != 0 || !strings.Contains(errOut, "admin.key now holds the new key") {
		t.Fatalf("rotate the admin key: exit %d: %s", code, errOut)
	}
	if got := adminKey(t, dir); got != strings.TrimSpace(out) || got == admin {
		t.Fatalf("admin.key holds %q after the rotation to %q", got, strings.TrimSpace(out))
	}
	if code, _, errOut := runCLI(m, "keys", "list"); code != 0 {
		t.Fatalf("keys list with the new admin key: %s", errOut)
	}
}

// TestKeyAdminRecovery checks that a site whose admin keys all stopped
// working makes a new one at start, in admin.key.
func TestKeyAdminRecovery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m := runKeySite(t, dir, nil, nil)
	old := adminKey(t, dir)
	if code, _, errOut := runCLI(m, "keys", "revoke", keyID(t, old)); code != 0 {
		t.Fatal(errOut)
	}
	wantStatus(t, m, "the revoked admin key", 401, old, "GET", "/v1/admin/keys", "")
	m.Close(context.Background())
	m = runKeySite(t, dir, nil, nil)
	fresh := adminKey(t, dir)
	if fresh == old {
		t.Fatal("admin.key still holds the revoked key")
	}
	wantStatus(t, m, "the new admin key", 200, fresh, "GET", "/v1/admin/keys", "")
	m.Close(context.Background())
	m = runKeySite(t, dir, nil, nil)
	if adminKey(t, dir) != fresh {
		t.Fatal("a restart replaced a working admin key")
	}
}

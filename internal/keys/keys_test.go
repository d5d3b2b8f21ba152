package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/keys"
)

// memBucket is a Bucket in memory, scanned in key order like Pebble's.
type memBucket struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail error // when set, writes fail with it
}

func newBucket() *memBucket { return &memBucket{m: map[string][]byte{}} }

func (b *memBucket) Get(k string) ([]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return slices.Clone(v), ok, nil
}

func (b *memBucket) Set(k string, v []byte) error {
	return b.SetMany(map[string][]byte{k: v})
}

func (b *memBucket) SetMany(kv map[string][]byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	for k, v := range kv {
		b.m[k] = slices.Clone(v)
	}
	return nil
}

func (b *memBucket) Scan(prefix string, fn func(string, []byte) error) error {
	b.mu.Lock()
	var ks []string
	for k := range b.m {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	b.mu.Unlock()
	slices.Sort(ks)
	for _, k := range ks {
		v, ok, _ := b.Get(k)
		if !ok {
			continue
		}
		if err := fn(k, v); err != nil {
			if errors.Is(err, events.StopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t testing.TB, b keys.Bucket, c *clock, o keys.Options) *keys.Store {
	t.Helper()
	o.Now = c.Now
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewSource(1))
	}
	s, err := keys.Open(b, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t testing.TB, s *keys.Store, ctx context.Context, name string, scopes, projects []string, ttl time.Duration) (*keys.Key, string) {
	t.Helper()
	k, tok, err := s.Create(ctx, name, scopes, projects, ttl)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return k, tok
}

// authOK fails the test unless token authenticates.
func authOK(t testing.TB, s *keys.Store, token, what string) *keys.Principal {
	t.Helper()
	p, err := s.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("%s: %v, want accepted", what, err)
	}
	return p
}

// auth401 fails the test unless token is refused as unauthorized.
func auth401(t testing.TB, s *keys.Store, token, what string) error {
	t.Helper()
	_, err := s.Authenticate(context.Background(), token)
	if got := events.ErrorCode(err); got != events.EUNAUTHORIZED {
		t.Fatalf("%s: code %q (%v), want %q", what, got, err, events.EUNAUTHORIZED)
	}
	return err
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	bucket := newBucket()
	s := openStore(t, bucket, c, keys.Options{})
	k, token := mustCreate(t, s, ctx, "ci-pipeline", []string{keys.ScopeWrite}, []string{"design"}, time.Hour)
	if !strings.HasPrefix(token, "dss_"+k.ID+"_") || len(token) != 4+16+1+43 {
		t.Fatalf("token shape %q", token)
	}
	for _, v := range bucket.m {
		if strings.Contains(string(v), token[len(token)-43:]) {
			t.Fatal("the secret is stored in clear")
		}
	}
	p := authOK(t, s, token, "a new key")
	if p.Actor() != "ci-pipeline" || p.KeyID != k.ID {
		t.Fatalf("principal %+v", p)
	}
	for name, bad := range map[string]string{
		"empty":        "",
		"garbage":      "hello",
		"wrong secret": token[:len(token)-1] + "A",
		"unknown id":   "dss_aaaaaaaaaaaaaaaa_" + token[len(token)-43:],
	} {
		auth401(t, s, bad, name)
	}
	c.Add(2 * time.Hour)
	auth401(t, s, token, "an expired key")
	for _, tc := range []struct {
		name   string
		scopes []string
		proj   []string
		ttl    time.Duration
		code   string
	}{
		{"bad name!", []string{"read"}, nil, 0, events.EINVALID},
		{"x", []string{"root"}, nil, 0, events.EINVALID},
		{"x", nil, nil, 0, events.EINVALID},
		{"x", []string{"read"}, []string{"Bad Project"}, 0, events.EINVALID},
		{"x", []string{"read"}, nil, -time.Hour, events.EINVALID},
		{"x", []string{"read"}, nil, keys.MaxTTL + time.Hour, events.EINVALID},
		{"(site)", []string{"read"}, nil, 0, events.EINVALID},
	} {
		if _, _, err := s.Create(ctx, tc.name, tc.scopes, tc.proj, tc.ttl); events.ErrorCode(err) != tc.code {
			t.Errorf("create %q %v %v %s: %v, want %s", tc.name, tc.scopes, tc.proj, tc.ttl, err, tc.code)
		}
	}
	// A second store over the same bucket sees the key (records are loaded),
	// without its secret.
	s2 := openStore(t, bucket, c, keys.Options{})
	list, _ := s2.List(ctx)
	if len(list) != 1 || list[0].Name != "ci-pipeline" || list[0].Hash == "" || list[0].UseCount != 0 {
		t.Fatalf("list %+v", list)
	}
}

func TestKeyDefaultExpiry(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openStore(t, newBucket(), c, keys.Options{})
	k, token := mustCreate(t, s, ctx, "default", []string{keys.ScopeRead}, nil, 0)
	if got, want := k.ExpiresAt, c.Now().Add(90*24*time.Hour); !got.Equal(want) {
		t.Fatalf("expiresAt %s, want %s (90 days)", got, want)
	}
	c.Add(90*24*time.Hour - time.Nanosecond)
	authOK(t, s, token, "a day-89 key")
	c.Add(time.Nanosecond)
	err := auth401(t, s, token, "a 90-day-old key")
	if !strings.Contains(events.ErrorMessage(err), "expired") {
		t.Fatalf("the holder of the right secret is told why: %q", events.ErrorMessage(err))
	}
	if st := mustGet(t, s, k.ID).State(c.Now()); st != keys.StateExpired {
		t.Fatalf("state %s", st)
	}
}

func mustGet(t testing.TB, s *keys.Store, id string) *keys.Key {
	t.Helper()
	k, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyScopes checks what each scope, and a key limited to a project,
// may do.
func TestKeyScopes(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openStore(t, newBucket(), c, keys.Options{})
	principal := func(name string, scopes, projects []string) *keys.Principal {
		_, tok := mustCreate(t, s, ctx, name, scopes, projects, 0)
		return authOK(t, s, tok, name)
	}
	read := principal("reader", []string{keys.ScopeRead}, nil)
	write := principal("writer", []string{keys.ScopeWrite}, nil)
	admin := principal("admin", []string{keys.ScopeAdmin}, nil)
	onlyA := principal("only-a", []string{keys.ScopeWrite}, []string{"a"})
	adminA := principal("admin-a", []string{keys.ScopeAdmin}, []string{"a"})
	for _, tc := range []struct {
		p              *keys.Principal
		scope, project string
		want           bool
	}{
		{read, keys.ScopeRead, "a", true},
		{read, keys.ScopeWrite, "a", false},
		{read, keys.ScopeAdmin, "", false},
		{write, keys.ScopeRead, "a", true},
		{write, keys.ScopeWrite, "a", true},
		{write, keys.ScopeWrite, "", true},
		{write, keys.ScopeAdmin, "", false},
		{admin, keys.ScopeAdmin, "", true},
		{admin, keys.ScopeWrite, "b", true},
		{onlyA, keys.ScopeWrite, "a", true},
		{onlyA, keys.ScopeRead, "b", false},
		{onlyA, keys.ScopeWrite, "b", false},
		{onlyA, keys.ScopeRead, "", true},
		{onlyA, keys.ScopeWrite, "", false},
		{adminA, keys.ScopeAdmin, "a", true},
		{adminA, keys.ScopeAdmin, "", false}, // site-wide administration needs an unlimited key
	} {
		if got := tc.p.Can(tc.scope, tc.project); got != tc.want {
			t.Errorf("%s.Can(%s, %q) = %v, want %v", tc.p.Name, tc.scope, tc.project, got, tc.want)
		}
	}
	if !onlyA.CanAny(keys.ScopeWrite) || onlyA.CanAny(keys.ScopeAdmin) {
		t.Error("CanAny")
	}
}

// TestKeyStates drives one key through each state: valid, expired,
// rotated within and after the overlap, revoked.
func TestKeyStates(t *testing.T) {
	ctx := keys.WithActor(context.Background(), "root")
	c := newClock()
	s := openStore(t, newBucket(), c, keys.Options{})
	mustCreate(t, s, ctx, "root", []string{keys.ScopeAdmin}, nil, 0)

	t.Run("valid", func(t *testing.T) {
		k, tok := mustCreate(t, s, ctx, "valid", []string{keys.ScopeRead}, nil, time.Hour)
		authOK(t, s, tok, "valid key")
		if st := mustGet(t, s, k.ID).State(c.Now()); st != keys.StateActive {
			t.Fatalf("state %s", st)
		}
	})
	t.Run("expired", func(t *testing.T) {
		k, tok := mustCreate(t, s, ctx, "expiring", []string{keys.ScopeRead}, nil, time.Minute)
		c.Add(time.Minute)
		auth401(t, s, tok, "expired key")
		if st := mustGet(t, s, k.ID).State(c.Now()); st != keys.StateExpired {
			t.Fatalf("state %s", st)
		}
		if _, _, _, err := s.Rotate(ctx, k.ID, 0); events.ErrorCode(err) != events.ECONFLICT {
			t.Fatalf("rotating an expired key: %v", err)
		}
	})
	t.Run("rotated", func(t *testing.T) {
		k, oldTok := mustCreate(t, s, ctx, "rotating", []string{keys.ScopeWrite}, []string{"a", "b"}, 30*24*time.Hour)
		c.Add(24 * time.Hour)
		old, next, newTok, err := s.Rotate(ctx, k.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if next.Name != k.Name || !slices.Equal(next.Scopes, k.Scopes) || !slices.Equal(next.Projects, k.Projects) {
			t.Fatalf("successor %+v of %+v", next, k)
		}
		if got, want := next.ExpiresAt.Sub(next.CreatedAt), 30*24*time.Hour; got != want {
			t.Fatalf("successor lives %s, want %s (the same lifetime)", got, want)
		}
		if old.RotatedTo != next.ID || next.RotatedFrom != old.ID {
			t.Fatalf("links: %s -> %s, %s <- %s", old.ID, old.RotatedTo, next.ID, next.RotatedFrom)
		}
		if got, want := old.ExpiresAt, c.Now().Add(keys.DefaultOverlap); !got.Equal(want) {
			t.Fatalf("old key expires %s, want %s (7 days of overlap)", got, want)
		}
		if st := old.State(c.Now()); st != keys.StateRotated {
			t.Fatalf("old key's state %s", st)
		}
		c.Add(keys.DefaultOverlap - time.Second)
		if p := authOK(t, s, oldTok, "old key within the overlap"); p.Actor() != "rotating" {
			t.Fatalf("actor %q", p.Actor())
		}
		if p := authOK(t, s, newTok, "new key within the overlap"); p.Actor() != "rotating" {
			t.Fatalf("actor %q", p.Actor())
		}
		c.Add(time.Second)
		auth401(t, s, oldTok, "old key after the overlap")
		authOK(t, s, newTok, "new key after the overlap")
		if _, _, _, err := s.Rotate(ctx, k.ID, 0); events.ErrorCode(err) != events.ECONFLICT {
			t.Fatalf("rotating a rotated key: %v", err)
		}
	})
	t.Run("rotated, overlap beyond expiry", func(t *testing.T) {
		k, _ := mustCreate(t, s, ctx, "short", []string{keys.ScopeRead}, nil, time.Hour)
		old, _, _, err := s.Rotate(ctx, k.ID, 48*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !old.ExpiresAt.Equal(k.ExpiresAt) {
			t.Fatalf("rotation moved the expiry from %s to %s; it may only bring it closer", k.ExpiresAt, old.ExpiresAt)
		}
	})
	t.Run("rotated, explicit overlap", func(t *testing.T) {
		k, _ := mustCreate(t, s, ctx, "explicit", []string{keys.ScopeRead}, nil, 0)
		old, _, _, err := s.Rotate(ctx, k.ID, time.Hour)
		if err != nil || !old.ExpiresAt.Equal(c.Now().Add(time.Hour)) {
			t.Fatalf("rotate: %v, expires %s", err, old.ExpiresAt)
		}
		if _, _, _, err := s.Rotate(ctx, "aaaaaaaaaaaaaaaa", 0); events.ErrorCode(err) != events.ENOTFOUND {
			t.Fatalf("rotating an unknown key: %v", err)
		}
		if _, _, _, err := s.Rotate(ctx, k.ID, -time.Hour); events.ErrorCode(err) != events.EINVALID {
			t.Fatalf("a negative overlap: %v", err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		k, tok := mustCreate(t, s, ctx, "revoking", []string{keys.ScopeRead}, nil, 0)
		p := authOK(t, s, tok, "before the revoke")
		select {
		case <-p.Done():
			t.Fatal("Done closed before the revoke")
		default:
		}
		r, err := s.Revoke(ctx, k.ID)
		if err != nil || r.RevokedAt.IsZero() || r.RevokedBy != "root" {
			t.Fatalf("revoke: %v %+v", err, r)
		}
		err = auth401(t, s, tok, "right after the revoke")
		if !strings.Contains(events.ErrorMessage(err), "revoked") {
			t.Fatalf("message %q", events.ErrorMessage(err))
		}
		select {
		case <-p.Done():
		case <-time.After(time.Second):
			t.Fatal("a principal of a revoked key is not Done")
		}
		if st := mustGet(t, s, k.ID).State(c.Now()); st != keys.StateRevoked {
			t.Fatalf("state %s", st)
		}
		if _, err := s.Revoke(ctx, "aaaaaaaaaaaaaaaa"); events.ErrorCode(err) != events.ENOTFOUND {
			t.Fatalf("revoking an unknown key: %v", err)
		}
		if _, _, _, err := s.Rotate(ctx, k.ID, 0); events.ErrorCode(err) != events.ECONFLICT {
			t.Fatalf("rotating a revoked key: %v", err)
		}
		// The name is free again.
		mustCreate(t, s, ctx, "revoking", []string{keys.ScopeRead}, nil, 0)
	})
	t.Run("revoked within the overlap", func(t *testing.T) {
		k, oldTok := mustCreate(t, s, ctx, "leaked", []string{keys.ScopeRead}, nil, 0)
		_, _, newTok, err := s.Rotate(ctx, k.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		auth401(t, s, oldTok, "revoked old key within the overlap")
		authOK(t, s, newTok, "its successor")
	})
	t.Run("names are unique among live keys", func(t *testing.T) {
		if _, _, err := s.Create(ctx, "root", []string{keys.ScopeRead}, nil, 0); events.ErrorCode(err) != events.ECONFLICT {
			t.Fatalf("a second live key named root: %v", err)
		}
		mustCreate(t, s, ctx, "expiring", []string{keys.ScopeRead}, nil, 0) // the first one expired
	})
}

// TestKeyRevokeIsImmediate revokes a key while other goroutines
// authenticate with it: no authentication that starts after Revoke returns
// succeeds.
func TestKeyRevokeIsImmediate(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, newBucket(), newClock(), keys.Options{})
	k, tok := mustCreate(t, s, ctx, "busy", []string{keys.ScopeRead}, nil, 0)
	var revoked atomic.Bool
	var late atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := revoked.Load()
				if _, err := s.Authenticate(ctx, tok); err == nil && after {
					late.Add(1)
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := s.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := late.Load(); n != 0 {
		t.Fatalf("%d authentications that began after the revoke succeeded", n)
	}
}

func TestKeyUsage(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	bucket := newBucket()
	s := openStore(t, bucket, c, keys.Options{})
	k, tok := mustCreate(t, s, ctx, "counted", []string{keys.ScopeRead}, nil, 0)
	if got := mustGet(t, s, k.ID); got.UseCount != 0 || !got.LastUsedAt.IsZero() {
		t.Fatalf("unused key: %d uses, last %s", got.UseCount, got.LastUsedAt)
	}
	for range 3 {
		c.Add(time.Minute)
		authOK(t, s, tok, "use")
	}
	auth401(t, s, tok[:len(tok)-2]+"xx", "a wrong secret is no use")
	got := mustGet(t, s, k.ID)
	if got.UseCount != 3 || !got.LastUsedAt.Equal(c.Now()) {
		t.Fatalf("after 3 uses: %d uses, last %s, want 3, %s", got.UseCount, got.LastUsedAt, c.Now())
	}
	// Counters reach the bucket when flushed, not on every request.
	if v, ok, _ := bucket.Get("~use/" + k.ID); ok {
		t.Fatalf("usage written before a flush: %s", v)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	again := openStore(t, bucket, c, keys.Options{})
	if got := mustGet(t, again, k.ID); got.UseCount != 3 || !got.LastUsedAt.Equal(c.Now()) {
		t.Fatalf("after a flush and reload: %d uses, last %s", got.UseCount, got.LastUsedAt)
	}
	// Close flushes too; a failed flush keeps the counters for the next one.
	authOK(t, again, tok, "use")
	bucket.fail = errors.New("disk full")
	if err := again.Flush(); err == nil {
		t.Fatal("a failed write was not reported")
	}
	bucket.fail = nil
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	third := openStore(t, bucket, c, keys.Options{})
	if got := mustGet(t, third, k.ID); got.UseCount != 4 {
		t.Fatalf("after close: %d uses, want 4", got.UseCount)
	}
}

// TestKeyRunFlushes checks that Run writes the counters periodically and
// once more when stopped.
func TestKeyRunFlushes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	bucket := newBucket()
	c := newClock()
	s := openStore(t, bucket, c, keys.Options{FlushEvery: 10 * time.Millisecond})
	k, tok := mustCreate(t, s, ctx, "run", []string{keys.ScopeRead}, nil, 0)
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	authOK(t, s, tok, "use")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := bucket.Get("~use/" + k.ID); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not flush the counters")
		}
		time.Sleep(5 * time.Millisecond)
	}
	authOK(t, s, tok, "use")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, openStore(t, bucket, c, keys.Options{}), k.ID); got.UseCount != 2 {
		t.Fatalf("after Run stopped: %d uses, want 2", got.UseCount)
	}
}

func records(t testing.TB, s *keys.Store) []keys.Record {
	t.Helper()
	recs, err := s.Records(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestSecurityLog(t *testing.T) {
	c := newClock()
	bucket := newBucket()
	s := openStore(t, bucket, c, keys.Options{})
	ctx := keys.WithRemoteAddr(keys.WithActor(context.Background(), "root"), "192.0.2.7:51234")
	root, _ := mustCreate(t, s, context.Background(), "root", []string{keys.ScopeAdmin}, nil, 0)
	k, tok := mustCreate(t, s, ctx, "ci", []string{keys.ScopeWrite}, []string{"web"}, 0)
	_, next, _, err := s.Rotate(ctx, k.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, next.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, next.ID); err != nil { // again: nothing new
		t.Fatal(err)
	}
	failCtx := keys.WithRemoteAddr(context.Background(), "[2001:db8::1]:443")
	s.Authenticate(failCtx, "not a key at all")
	s.Authenticate(failCtx, tok[:len(tok)-3]+"abc")
	s.Authenticate(failCtx, "dss_aaaaaaaaaaaaaaaa_"+tok[len(tok)-43:])
	c.Add(2 * time.Hour)
	s.Authenticate(failCtx, tok)

	want := []keys.Record{
		{Kind: keys.KindCreate, Actor: keys.SiteActor, KeyID: root.ID, KeyName: "root"},
		{Kind: keys.KindCreate, Actor: "root", KeyID: k.ID, KeyName: "ci", Remote: "192.0.2.7"},
		{Kind: keys.KindRotate, Actor: "root", KeyID: k.ID, KeyName: "ci", NewKeyID: next.ID, Remote: "192.0.2.7"},
		{Kind: keys.KindRevoke, Actor: "root", KeyID: next.ID, KeyName: "ci", Remote: "192.0.2.7"},
		{Kind: keys.KindAuthFailure, Remote: "2001:db8::1", Reason: "malformed key", Count: 1},
		{Kind: keys.KindAuthFailure, KeyID: k.ID, KeyName: "ci", Remote: "2001:db8::1", Reason: "wrong secret", Count: 1},
		{Kind: keys.KindAuthFailure, KeyID: "aaaaaaaaaaaaaaaa", Remote: "2001:db8::1", Reason: "unknown key", Count: 1},
		{Kind: keys.KindAuthFailure, KeyID: k.ID, KeyName: "ci", Remote: "2001:db8::1", Reason: "key expired", Count: 1},
	}
	got := records(t, s)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(got), len(want), got)
	}
	prev := ""
	for i, r := range got {
		w := want[i]
		if r.Seq != uint64(i+1) || r.Kind != w.Kind || r.Actor != w.Actor || r.KeyID != w.KeyID || r.KeyName != w.KeyName ||
			r.NewKeyID != w.NewKeyID || r.Remote != w.Remote || r.Count != w.Count || (w.Reason != "" && r.Reason != w.Reason) {
			t.Errorf("record %d: %+v\nwant %+v", i+1, r, w)
		}
		if r.PrevHash != prev || r.Hash != r.ComputeHash() || r.Time.IsZero() {
			t.Errorf("record %d: chain %q -> %q (computed %q)", i+1, r.PrevHash, r.Hash, r.ComputeHash())
		}
		prev = r.Hash
	}
	if n, err := s.Verify(context.Background()); err != nil || n != uint64(len(want)) {
		t.Fatalf("verify: %d, %v", n, err)
	}
	page, err := s.Records(context.Background(), 3, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 4 || page[1].Seq != 5 {
		t.Fatalf("page after 3: %+v %v", page, err)
	}

	// Every field is covered by the hash.
	base := got[2]
	for name, edit := range map[string]func(*keys.Record){
		"seq": func(r *keys.Record) { r.Seq++ }, "time": func(r *keys.Record) { r.Time = r.Time.Add(time.Nanosecond) },
		"kind": func(r *keys.Record) { r.Kind = keys.KindRevoke }, "actor": func(r *keys.Record) { r.Actor = "mallory" },
		"keyId": func(r *keys.Record) { r.KeyID = "bbbbbbbbbbbbbbbb" }, "keyName": func(r *keys.Record) { r.KeyName = "x" },
		"newKeyId": func(r *keys.Record) { r.NewKeyID = "" }, "remote": func(r *keys.Record) { r.Remote = "10.0.0.1" },
		"reason": func(r *keys.Record) { r.Reason += "!" }, "count": func(r *keys.Record) { r.Count = 7 },
		"prevHash": func(r *keys.Record) { r.PrevHash = strings.Repeat("0", 64) },
		// Moving text between fields changes the encoding too.
		"shift": func(r *keys.Record) { r.KeyName, r.NewKeyID = r.KeyName+r.NewKeyID[:1], r.NewKeyID[1:] },
	} {
		r := base
		edit(&r)
		if r.ComputeHash() == base.Hash {
			t.Errorf("editing %s leaves the hash unchanged", name)
		}
	}
}

// TestSecurityLogTamper edits, removes, reorders and cuts records in the
// bucket: Verify names the first record broken.
func TestSecurityLogTamper(t *testing.T) {
	ctx := context.Background()
	build := func() (*memBucket, *keys.Store) {
		b := newBucket()
		c := newClock()
		s := openStore(t, b, c, keys.Options{})
		for _, name := range []string{"a", "b", "c", "d"} {
			mustCreate(t, s, ctx, name, []string{keys.ScopeRead}, nil, 0)
		}
		return b, s
	}
	edit := func(b *memBucket, key string, fn func(*keys.Record)) {
		var r keys.Record
		v, _, _ := b.Get(key)
		json.Unmarshal(v, &r)
		fn(&r)
		nv, _ := json.Marshal(r)
		b.m[key] = nv
	}
	for _, tc := range []struct {
		name   string
		tamper func(b *memBucket)
		seq    uint64
	}{
		{"edited field", func(b *memBucket) { edit(b, "~log/0000000000000002", func(r *keys.Record) { r.Actor = "mallory" }) }, 2},
		{"edited and rehashed", func(b *memBucket) {
			edit(b, "~log/0000000000000002", func(r *keys.Record) { r.KeyName = "z"; r.Hash = r.ComputeHash() })
		}, 3},
		{"removed", func(b *memBucket) { delete(b.m, "~log/0000000000000003") }, 3},
		{"swapped", func(b *memBucket) {
			b.m["~log/0000000000000002"], b.m["~log/0000000000000003"] = b.m["~log/0000000000000003"], b.m["~log/0000000000000002"]
		}, 2},
		{"last cut off", func(b *memBucket) { delete(b.m, "~log/0000000000000004") }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, s := build()
			if _, err := s.Verify(ctx); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			tc.tamper(b)
			_, err := s.Verify(ctx)
			var ce *keys.ChainError
			if !errors.As(err, &ce) || ce.Seq != tc.seq {
				t.Fatalf("verify: %v, want a break at record %d", err, tc.seq)
			}
		})
	}
}

// TestSecurityLogFailureBudget floods the store with failures: the log
// records the burst one by one, counts the rest, and writes their summary
// at the next due flush; the counts add up to every failure.
func TestSecurityLogFailureBudget(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openStore(t, newBucket(), c, keys.Options{FailureBurst: 5, FailureEvery: time.Second, SummaryEvery: time.Minute})
	const flood = 1000
	for i := range flood {
		tok := "garbage"
		if i%2 == 1 {
			tok = "dss_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43)
		}
		s.Authenticate(ctx, tok)
	}
	if n := len(records(t, s)); n != 5 {
		t.Fatalf("%d records after a flood of %d with a burst of 5", n, flood)
	}
	if err := s.Flush(); err != nil { // the first summary is due at once
		t.Fatal(err)
	}
	recs := records(t, s)
	last := recs[len(recs)-1]
	if len(recs) != 6 || last.Count != flood-5 || !strings.Contains(last.Reason, "malformed key 497") || !strings.Contains(last.Reason, "unknown key 498") {
		t.Fatalf("summary %+v", last)
	}
	// The budget refills with time: one record per FailureEvery.
	c.Add(2 * time.Second)
	for range 10 {
		s.Authenticate(ctx, "garbage")
	}
	if err := s.Flush(); err != nil { // not due: the last summary is 2 s old
		t.Fatal(err)
	}
	if n := len(records(t, s)); n != 8 {
		t.Fatalf("%d records, want 8 (2 refilled, no summary yet)", n)
	}
	c.Add(time.Minute)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, r := range records(t, s) {
		total += r.Count
	}
	if total != flood+10 {
		t.Fatalf("the failure records count %d failures, want %d", total, flood+10)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKeyNoSecretStored creates, rotates, uses and fails keys, then looks
// for every secret, and every wrong secret presented, in every key and
// value of the bucket.
func TestKeyNoSecretStored(t *testing.T) {
	ctx := keys.WithActor(context.Background(), "root")
	c := newClock()
	bucket := newBucket()
	s := openStore(t, bucket, c, keys.Options{})
	var secrets []string
	k, tok := mustCreate(t, s, ctx, "one", []string{keys.ScopeRead}, nil, 0)
	secrets = append(secrets, tok)
	_, _, tok2, err := s.Rotate(ctx, k.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok2)
	authOK(t, s, tok, "old")
	authOK(t, s, tok2, "new")
	wrong := "dss_" + k.ID + "_" + strings.Repeat("Zq9", 14) + "Z"
	auth401(t, s, wrong, "a wrong secret")
	secrets = append(secrets, wrong)
	malformed := "dss_" + k.ID + "_tooShortSecretButStillSomething"
	auth401(t, s, malformed, "a malformed key")
	secrets = append(secrets, malformed)
	s.Close()
	for _, sec := range secrets {
		_, secret, ok := keys.ParseToken(sec)
		if !ok {
			secret = sec[len("dss_"+k.ID+"_"):]
		}
		for key, v := range bucket.m {
			if strings.Contains(key, secret) || strings.Contains(string(v), secret) {
				t.Errorf("a secret is stored under %q: %s", key, v)
			}
		}
	}
}

// FuzzAuthenticate presents arbitrary keys: none is accepted but the real
// one, none panics, and what is stored never holds the presented secret.
func FuzzAuthenticate(f *testing.F) {
	c := newClock()
	bucket := newBucket()
	s := openStore(f, bucket, c, keys.Options{FailureBurst: 1 << 30})
	_, tok := mustCreate(f, s, context.Background(), "fuzz", []string{keys.ScopeRead}, nil, 0)
	f.Add(tok)
	f.Add(tok[:len(tok)-1] + "B")
	f.Add("dss_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43))
	f.Add("")
	f.Add(" " + tok + " ")
	f.Add("dss__")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := s.Authenticate(context.Background(), in)
		if strings.TrimSpace(in) == tok {
			if err != nil || p.Name != "fuzz" {
				t.Fatalf("the real key: %v", err)
			}
			return
		}
		if events.ErrorCode(err) != events.EUNAUTHORIZED {
			t.Fatalf("%q: %v, want unauthorized", in, err)
		}
		// Of what was presented, the log keeps the key's id, when it has
		// a key's shape, and nothing else.
		last, _ := s.LastSeq()
		recs, err := s.Records(context.Background(), last-1, 1)
		if err != nil || len(recs) != 1 {
			t.Fatalf("the failure's record: %v %v", recs, err)
		}
		r := recs[0]
		id, _, ok := keys.ParseToken(strings.TrimSpace(in))
		reasons := []string{"malformed key", "unknown key", "wrong secret", "key expired", "key revoked"}
		if r.Kind != keys.KindAuthFailure || r.KeyID != id || !slices.Contains(reasons, r.Reason) || (ok != (r.Reason != "malformed key")) {
			t.Fatalf("the record of %q: %+v", in, r)
		}
	})
}

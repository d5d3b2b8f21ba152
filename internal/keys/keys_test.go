package keys_test

import (
	"context"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/keys"
)

// memBucket is a Bucket in memory.
type memBucket struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (b *memBucket) Get(k string) ([]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok, nil
}

func (b *memBucket) Set(k string, v []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[k] = v
	return nil
}

func (b *memBucket) Scan(prefix string, fn func(string, []byte) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, v := range b.m {
		if strings.HasPrefix(k, prefix) {
			if err := fn(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	bucket := &memBucket{m: map[string][]byte{}}
	s := keys.NewStore(bucket, func() time.Time { return now }, rand.New(rand.NewSource(1)))
	k, token, err := s.Create(ctx, "ci-pipeline", []string{keys.ScopeWrite}, []string{"design"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "dss_"+k.ID+"_") || len(token) != 4+16+1+43 {
		t.Fatalf("token shape %q", token)
	}
	for _, v := range bucket.m {
		if strings.Contains(string(v), token[len(token)-43:]) {
			t.Fatal("the secret is stored in clear")
		}
	}
	p, err := s.Authenticate(ctx, token)
	if err != nil || p.Actor() != "ci-pipeline" {
		t.Fatalf("authenticate: %v %v", p, err)
	}
	for _, tc := range []struct {
		scope, project string
		want           bool
	}{
		{keys.ScopeRead, "design", true},
		{keys.ScopeWrite, "design", true},
		{keys.ScopeAdmin, "design", false},
		{keys.ScopeWrite, "other", false},
		{keys.ScopeRead, "", true},
		{keys.ScopeWrite, "", false},
	} {
		if got := p.Can(tc.scope, tc.project); got != tc.want {
			t.Errorf("Can(%s, %q) = %v, want %v", tc.scope, tc.project, got, tc.want)
		}
	}
	if !p.CanAny(keys.ScopeWrite) || p.CanAny(keys.ScopeAdmin) {
		t.Fatal("CanAny")
	}

	for name, bad := range map[string]string{
		"empty":        "",
		"garbage":      "hello",
		"wrong secret": token[:len(token)-1] + "A",
		"unknown id":   "dss_aaaaaaaaaaaaaaaa_" + token[len(token)-43:],
	} {
		if _, err := s.Authenticate(ctx, bad); events.ErrorCode(err) != events.EUNAUTHORIZED {
			t.Errorf("%s: err=%v, want unauthorized", name, err)
		}
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Authenticate(ctx, token); events.ErrorCode(err) != events.EUNAUTHORIZED {
		t.Fatalf("expired key accepted: %v", err)
	}
	if _, _, err := s.Create(ctx, "bad name!", nil, nil, 0); events.ErrorCode(err) != events.EINVALID {
		t.Fatalf("bad name: %v", err)
	}
	if _, _, err := s.Create(ctx, "x", []string{"root"}, nil, 0); events.ErrorCode(err) != events.EINVALID {
		t.Fatalf("bad scope: %v", err)
	}
	// A second store over the same bucket sees the key (records are loaded).
	s2 := keys.NewStore(bucket, func() time.Time { return now }, nil)
	list, _ := s2.List(ctx)
	if len(list) != 1 || list[0].Name != "ci-pipeline" || list[0].Hash == "" {
		t.Fatalf("list %+v", list)
	}
}

// Package keys manages API keys: minting them, storing them hashed, and
// checking a presented key in constant time.
//
// A key reads "dss_<id>_<secret>": id is a public identifier (it names the
// key in lists and logs), secret is 256 random bits. Only SHA-256 of the
// secret is stored; the key itself is shown once, when created. SHA-256 is
// enough here (no slow hash) because the secret has full entropy.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// Scopes a key may hold. admin implies write, write implies read.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// Key is a stored API key, without its secret.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"` // hex SHA-256 of the secret
	Scopes    []string  `json:"scopes"`
	Projects  []string  `json:"projects,omitempty"` // empty: every project
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

// Principal is who a request acts as: the key's name and what it may do.
type Principal struct {
	KeyID    string
	Name     string
	Scopes   []string
	Projects []string
}

// Actor returns the name recorded on the events the principal makes.
func (p *Principal) Actor() string { return p.Name }

// CanAny reports whether the principal holds scope for some project.
func (p *Principal) CanAny(scope string) bool {
	if len(p.Projects) == 0 {
		return p.Can(scope, "")
	}
	return p.Can(scope, p.Projects[0])
}

// Can reports whether the principal holds scope (directly or through a
// higher one) for project. project "" is a site-wide operation: a key
// limited to named projects may only read there.
func (p *Principal) Can(scope, project string) bool {
	rank := map[string]int{ScopeRead: 1, ScopeWrite: 2, ScopeAdmin: 3}
	held := false
	for _, s := range p.Scopes {
		held = held || rank[s] >= rank[scope]
	}
	switch {
	case !held:
		return false
	case len(p.Projects) == 0:
		return true
	case project == "":
		return scope == ScopeRead
	}
	for _, x := range p.Projects {
		if x == project {
			return true
		}
	}
	return false
}

// Bucket is the storage the keys live in (a pebble.Bucket).
type Bucket interface {
	Get(key string) ([]byte, bool, error)
	Set(key string, value []byte) error
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Store mints, stores and checks keys. It keeps the key records in memory
// (a site has few keys), loaded on first use; every change of a key goes
// through the Store, which updates both.
type Store struct {
	b    Bucket
	now  func() time.Time
	rand io.Reader

	mu     sync.RWMutex
	loaded bool
	byID   map[string]*Key
}

// NewStore returns a key store over b. now and r may be nil (time.Now,
// crypto/rand).
func NewStore(b Bucket, now func() time.Time, r io.Reader) *Store {
	if now == nil {
		now = time.Now
	}
	if r == nil {
		r = rand.Reader
	}
	return &Store{b: b, now: now, rand: r}
}

var (
	idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	tokenRE    = regexp.MustCompile(`^dss_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
)

// Create mints a key and returns its record and the secret token, which is
// not stored anywhere and cannot be shown again.
func (s *Store) Create(ctx context.Context, name string, scopes, projects []string, ttl time.Duration) (*Key, string, error) {
	if !nameRE.MatchString(name) {
		return nil, "", events.Errorf(events.EINVALID, "key name %q: letters, digits, '.', '_', '@', '-', at most 64", name)
	}
	for _, sc := range scopes {
		if sc != ScopeRead && sc != ScopeWrite && sc != ScopeAdmin {
			return nil, "", events.Errorf(events.EINVALID, "unknown scope %q", sc)
		}
	}
	idb := make([]byte, 10)
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, idb); err != nil {
		return nil, "", err
	}
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return nil, "", err
	}
	sec := base64.RawURLEncoding.EncodeToString(secret)
	k := &Key{
		ID: idEncoding.EncodeToString(idb), Name: name, Hash: hashSecret(sec),
		Scopes: scopes, Projects: projects, CreatedAt: s.now().UTC(),
	}
	if ttl > 0 {
		k.ExpiresAt = k.CreatedAt.Add(ttl)
	}
	if err := s.put(k); err != nil {
		return nil, "", err
	}
	return k, "dss_" + k.ID + "_" + sec, nil
}

func hashSecret(sec string) string {
	h := sha256.Sum256([]byte(sec))
	return hex.EncodeToString(h[:])
}

func (s *Store) put(k *Key) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	if err := s.load(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.b.Set(k.ID, b); err != nil {
		return fmt.Errorf("store key %s: %w", k.ID, err)
	}
	s.byID[k.ID] = k
	return nil
}

// load reads every key record into memory, once.
func (s *Store) load() error {
	s.mu.RLock()
	loaded := s.loaded
	s.mu.RUnlock()
	if loaded {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	byID := map[string]*Key{}
	err := s.b.Scan("", func(_ string, v []byte) error {
		k := &Key{}
		if err := json.Unmarshal(v, k); err != nil {
			return err
		}
		byID[k.ID] = k
		return nil
	})
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	s.byID, s.loaded = byID, true
	return nil
}

// List returns every key, revoked and expired ones included.
func (s *Store) List(ctx context.Context) ([]*Key, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Key, 0, len(s.byID))
	for _, k := range s.byID {
		c := *k
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID
	})
	return out, nil
}

// Authenticate checks a presented token and returns who it acts for. Every
// failure is the same EUNAUTHORIZED error, whatever the reason, so the
// response tells an attacker nothing; the reason is in the error's cause.
func (s *Store) Authenticate(ctx context.Context, token string) (*Principal, error) {
	deny := func(reason string) error {
		return events.WrapError(events.EUNAUTHORIZED, "missing or invalid API key", fmt.Errorf("%s", reason))
	}
	m := tokenRE.FindStringSubmatch(strings.TrimSpace(token))
	if m == nil {
		return nil, deny("malformed key")
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	found, ok := s.byID[m[1]]
	s.mu.RUnlock()
	want := make([]byte, 64)
	k := &Key{}
	if ok {
		k = found
		copy(want, k.Hash)
	}
	// Compare even for an unknown id, so timing does not tell ids apart.
	if subtle.ConstantTimeCompare([]byte(hashSecret(m[2])), want) != 1 || !ok {
		return nil, deny("unknown key or wrong secret")
	}
	now := s.now()
	if !k.RevokedAt.IsZero() && !now.Before(k.RevokedAt) {
		return nil, deny("key revoked")
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, deny("key expired")
	}
	return &Principal{KeyID: k.ID, Name: k.Name, Scopes: k.Scopes, Projects: k.Projects}, nil
}

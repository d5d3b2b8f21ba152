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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
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

// Lifetimes.
const (
	// DefaultTTL is a key's lifetime when none is given.
	DefaultTTL = 90 * 24 * time.Hour
	// MaxTTL is the longest lifetime a key may be given.
	MaxTTL = 10 * 365 * 24 * time.Hour
	// DefaultOverlap is how long a rotated key keeps working beside its
	// successor when no overlap is given.
	DefaultOverlap = 7 * 24 * time.Hour
)

// States of a key, as Key.State reports them.
const (
	StateActive  = "active"
	StateRotated = "rotated" // superseded, still working until ExpiresAt (the overlap)
	StateExpired = "expired"
	StateRevoked = "revoked"
)

// SiteActor is the actor of key operations the site does itself (the first
// admin key); it cannot be a key's name.
const SiteActor = "(site)"

// Key is a stored API key, without its secret.
type Key struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Hash        string    `json:"hash"` // hex SHA-256 of the secret
	Scopes      []string  `json:"scopes"`
	Projects    []string  `json:"projects,omitempty"` // empty: every project
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy,omitempty"` // the actor that created or rotated it
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`  // zero only on records from before expiry was required
	RevokedAt   time.Time `json:"revokedAt,omitzero"`
	RevokedBy   string    `json:"revokedBy,omitempty"`
	RotatedFrom string    `json:"rotatedFrom,omitempty"` // the key this one succeeds
	RotatedTo   string    `json:"rotatedTo,omitempty"`   // the key that succeeds this one

	// LastUsedAt and UseCount are kept apart from the record (they change
	// on every request); List and Get fill them in.
	LastUsedAt time.Time `json:"-"`
	UseCount   uint64    `json:"-"`
}

// State returns the key's state at now: revoked, expired, rotated (still
// working, until the end of its overlap) or active.
func (k *Key) State(now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return StateRevoked
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return StateExpired
	case k.RotatedTo != "":
		return StateRotated
	}
	return StateActive
}

// live reports whether the key lets requests in at now.
func (k *Key) live(now time.Time) bool {
	st := k.State(now)
	return st == StateActive || st == StateRotated
}

// Principal is who a request acts as: the key's name and what it may do.
// Its slices are shared with the store and must not be modified.
type Principal struct {
	KeyID    string
	Name     string
	Scopes   []string
	Projects []string
	end      <-chan struct{}
}

// Actor returns the name recorded on the events the principal makes.
func (p *Principal) Actor() string { return p.Name }

// Done is closed when the principal's key stops working (revoked, expired,
// or its rotation overlap ended), so that long requests (live streams) end
// with it. It is nil, never closed, for a Principal not made by a Store.
func (p *Principal) Done() <-chan struct{} { return p.end }

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
	return slices.Contains(p.Projects, project)
}

// Bucket is the storage the keys live in (a pebble.Bucket).
type Bucket interface {
	Get(key string) ([]byte, bool, error)
	Set(key string, value []byte) error
	// SetMany stores every pair durably in one write: all of them or none.
	SetMany(kv map[string][]byte) error
	// Scan calls fn for each key starting with prefix, in key order; an
	// error from fn ends the scan (events.StopScan: without an error).
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Options configure a Store. Zero values take the defaults.
type Options struct {
	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand
	Logger *slog.Logger     // reports what cannot be written; default slog.Default()
	// FlushEvery is how often Run writes the keys' last-used times and use
	// counts (default 10 s): a crash loses at most this long of them.
	FlushEvery time.Duration
	// FailureBurst and FailureEvery budget the auth.failure records: up to
	// FailureBurst at once, then one per FailureEvery (defaults 30 and
	// 10 s). Failures over the budget are counted, by reason, and written
	// as one summary record at most every SummaryEvery (default 1 min).
	FailureBurst int
	FailureEvery time.Duration
	SummaryEvery time.Duration
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 10 * time.Second
	}
	if o.FailureBurst <= 0 {
		o.FailureBurst = 30
	}
	if o.FailureEvery <= 0 {
		o.FailureEvery = 10 * time.Second
	}
	if o.SummaryEvery <= 0 {
		o.SummaryEvery = time.Minute
	}
}

// Store mints, stores and checks keys, and keeps the security log. It
// keeps the key records in memory (a site has few keys), loaded on first
// use; every change of a key goes through the Store, which writes the
// bucket and then memory under one lock.
//
// Lock order: mu, then logMu or useMu (load); flushMu, then logMu (a
// failure summary); failMu and useMu are otherwise held alone.
type Store struct {
	b    Bucket
	opts Options
	now  func() time.Time

	mu     sync.RWMutex
	loaded bool
	byID   map[string]*Key // records are never modified in place: a change stores a new one
	ends   map[string]*ending

	logMu sync.Mutex
	head  logHead

	useMu sync.Mutex
	use   map[string]*usage

	flushMu sync.Mutex
	closed  bool // under flushMu
	failMu  sync.Mutex
	fail    failureBudget
}

// NewStore returns a key store over b, loaded on first use. now and r may
// be nil (time.Now, crypto/rand).
func NewStore(b Bucket, now func() time.Time, r io.Reader) *Store {
	return newStore(b, Options{Now: now, Rand: r})
}

// Open returns a key store over b with its keys and log head loaded.
// Close flushes what it keeps in memory; Run flushes it periodically.
func Open(b Bucket, o Options) (*Store, error) {
	s := newStore(b, o)
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func newStore(b Bucket, o Options) *Store {
	o.defaults()
	s := &Store{b: b, opts: o, now: o.Now}
	s.fail.tokens = float64(o.FailureBurst)
	return s
}

var (
	idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	tokenRE    = regexp.MustCompile(`^dss_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	idRE       = regexp.MustCompile(`^[a-z2-7]{16}$`)
)

// Now is the time on the store's clock, by which keys expire.
func (s *Store) Now() time.Time { return s.now() }

// ParseToken splits a presented key into its id and secret; ok is false
// when it does not have the shape of a key.
func ParseToken(token string) (id, secret string, ok bool) {
	m := tokenRE.FindStringSubmatch(token)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// ValidID reports whether id has the shape of a key id.
func ValidID(id string) bool { return idRE.MatchString(id) }

type ctxKey int

const (
	actorKey ctxKey = iota
	remoteKey
)

// WithActor returns ctx carrying the actor (a key's name) on whose behalf
// key operations are done; the security log records it.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey, actor)
}

// WithRemoteAddr returns ctx carrying the remote address of the request
// (host and port, or host); the security log records its host.
func WithRemoteAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteKey, addr)
}

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey).(string); ok && a != "" {
		return a
	}
	return SiteActor
}

func remoteOf(ctx context.Context) string {
	a, _ := ctx.Value(remoteKey).(string)
	if host, _, err := net.SplitHostPort(a); err == nil {
		a = host
	}
	if len(a) > 64 {
		a = a[:64]
	}
	return a
}

// Create mints a key and returns its record and the secret token, which is
// not stored anywhere and cannot be shown again. ttl 0 is DefaultTTL. The
// name may not be that of another live key: it is the actor the audit
// trail records. The actor doing it comes from WithActor.
func (s *Store) Create(ctx context.Context, name string, scopes, projects []string, ttl time.Duration) (*Key, string, error) {
	if !nameRE.MatchString(name) {
		return nil, "", events.Errorf(events.EINVALID, "key name %q: a letter or digit, then letters, digits, '.', '_', '@', '-', at most 64 in all", name)
	}
	scopes, projects, err := checkGrants(scopes, projects)
	if err != nil {
		return nil, "", err
	}
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < 0 || ttl > MaxTTL:
		return nil, "", events.Errorf(events.EINVALID, "a key's lifetime must be positive and at most %s, not %s", MaxTTL, ttl)
	}
	if err := s.load(); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	for _, o := range s.byID {
		if o.Name == name && o.live(now) {
			return nil, "", events.Errorf(events.ECONFLICT, "key %s is already named %q: rotate it, or revoke it first", o.ID, name)
		}
	}
	k, token, err := s.mint(name, scopes, projects, now, ttl, actorOf(ctx))
	if err != nil {
		return nil, "", err
	}
	rec := &Record{Kind: KindCreate, Actor: k.CreatedBy, KeyID: k.ID, KeyName: k.Name, Remote: remoteOf(ctx),
		Reason: fmt.Sprintf("scopes %s; projects %s; expires %s", strings.Join(k.Scopes, ","), projectsText(k.Projects), k.ExpiresAt.Format(time.RFC3339))}
	if err := s.commitLocked(rec, k); err != nil {
		return nil, "", err
	}
	return k.clone(), token, nil
}

// checkGrants validates scopes and projects and returns them without
// duplicates.
func checkGrants(scopes, projects []string) ([]string, []string, error) {
	if len(scopes) == 0 {
		return nil, nil, events.Errorf(events.EINVALID, "a key needs at least one scope: read, write or admin")
	}
	var sc, pr []string
	for _, x := range scopes {
		if x != ScopeRead && x != ScopeWrite && x != ScopeAdmin {
			return nil, nil, events.Errorf(events.EINVALID, "unknown scope %q: read, write or admin", x)
		}
		if !slices.Contains(sc, x) {
			sc = append(sc, x)
		}
	}
	for _, x := range projects {
		if !events.ValidProject(x) {
			return nil, nil, events.Errorf(events.EINVALID, "invalid project id %q", x)
		}
		if !slices.Contains(pr, x) {
			pr = append(pr, x)
		}
	}
	return sc, pr, nil
}

func projectsText(p []string) string {
	if len(p) == 0 {
		return "all"
	}
	return strings.Join(p, ",")
}

// mint makes a new key record and its token; it stores nothing.
func (s *Store) mint(name string, scopes, projects []string, now time.Time, ttl time.Duration, actor string) (*Key, string, error) {
	idb := make([]byte, 10)
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.opts.Rand, idb); err != nil {
		return nil, "", err
	}
	if _, err := io.ReadFull(s.opts.Rand, secret); err != nil {
		return nil, "", err
	}
	id := idEncoding.EncodeToString(idb)
	if _, dup := s.byID[id]; dup {
		return nil, "", fmt.Errorf("mint key: id %s is taken (a broken random source?)", id)
	}
	sec := base64.RawURLEncoding.EncodeToString(secret)
	k := &Key{
		ID: id, Name: name, Hash: hashSecret(sec), Scopes: scopes, Projects: projects,
		CreatedAt: now, CreatedBy: actor, ExpiresAt: now.Add(ttl),
	}
	return k, "dss_" + id + "_" + sec, nil
}

func hashSecret(sec string) string {
	h := sha256.Sum256([]byte(sec))
	return hex.EncodeToString(h[:])
}

func (k *Key) clone() *Key {
	c := *k
	c.Scopes, c.Projects = slices.Clone(k.Scopes), slices.Clone(k.Projects)
	return &c
}

// commitLocked writes the log record and the changed keys in one batch,
// then puts the keys in memory. The caller holds mu.
func (s *Store) commitLocked(rec *Record, changed ...*Key) error {
	kv := map[string][]byte{}
	for _, k := range changed {
		b, err := json.Marshal(k)
		if err != nil {
			return err
		}
		kv[k.ID] = b
	}
	if err := s.appendLog(rec, kv); err != nil {
		return err
	}
	for _, k := range changed {
		s.byID[k.ID] = k
		s.endFor(k)
	}
	return nil
}

// load reads every key record, the usage counters and the log's head into
// memory, once.
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
	err := s.b.Scan("", func(key string, v []byte) error {
		if strings.HasPrefix(key, "~") {
			return events.StopScan // the log and counters sort after every key
		}
		k := &Key{}
		if err := json.Unmarshal(v, k); err != nil {
			return fmt.Errorf("key %s: %w", key, err)
		}
		byID[k.ID] = k
		return nil
	})
	if err != nil && !errors.Is(err, events.StopScan) {
		return fmt.Errorf("load keys: %w", err)
	}
	use := map[string]*usage{}
	err = s.b.Scan(usePrefix, func(key string, v []byte) error {
		u := &usage{}
		if err := json.Unmarshal(v, u); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		use[strings.TrimPrefix(key, usePrefix)] = u
		return nil
	})
	if err != nil {
		return fmt.Errorf("load key usage: %w", err)
	}
	s.logMu.Lock()
	err = s.loadHead()
	s.logMu.Unlock()
	if err != nil {
		return err
	}
	s.byID, s.ends, s.loaded = byID, map[string]*ending{}, true
	for _, k := range byID {
		s.endFor(k)
	}
	s.useMu.Lock()
	s.use = use
	s.useMu.Unlock()
	return nil
}

// List returns every key, revoked and expired ones included, oldest first,
// with their last-used times and use counts.
func (s *Store) List(ctx context.Context) ([]*Key, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	out := make([]*Key, 0, len(s.byID))
	for _, k := range s.byID {
		out = append(out, k.clone())
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID
	})
	s.fillUsage(out...)
	return out, nil
}

// Get returns one key, with its last-used time and use count.
func (s *Store) Get(ctx context.Context, id string) (*Key, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	k, ok := s.byID[id]
	s.mu.RUnlock()
	if !ok {
		return nil, events.Errorf(events.ENOTFOUND, "no API key %q", id)
	}
	c := k.clone()
	s.fillUsage(c)
	return c, nil
}

// Rotate mints a successor of key id, with its name, scopes, projects and
// lifetime, and makes id expire after overlap (0: DefaultOverlap), or when
// it already did if that is sooner. A revoked, expired or already rotated
// key cannot be rotated (ECONFLICT). It returns the old key as it is now,
// the successor, and the successor's token, shown once.
func (s *Store) Rotate(ctx context.Context, id string, overlap time.Duration) (old, successor *Key, token string, err error) {
	switch {
	case overlap == 0:
		overlap = DefaultOverlap
	case overlap < 0 || overlap > MaxTTL:
		return nil, nil, "", events.Errorf(events.EINVALID, "the overlap must be positive and at most %s, not %s", MaxTTL, overlap)
	}
	if err := s.load(); err != nil {
		return nil, nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.byID[id]
	if !ok {
		return nil, nil, "", events.Errorf(events.ENOTFOUND, "no API key %q", id)
	}
	now := s.now().UTC()
	switch st := k.State(now); st {
	case StateRevoked, StateExpired:
		return nil, nil, "", events.Errorf(events.ECONFLICT, "key %s is %s: create a new one instead", id, st)
	case StateRotated:
		return nil, nil, "", events.Errorf(events.ECONFLICT, "key %s was already rotated to %s: rotate that one", id, k.RotatedTo)
	}
	ttl := DefaultTTL
	if !k.ExpiresAt.IsZero() {
		ttl = k.ExpiresAt.Sub(k.CreatedAt)
	}
	next, token, err := s.mint(k.Name, k.Scopes, k.Projects, now, ttl, actorOf(ctx))
	if err != nil {
		return nil, nil, "", err
	}
	next.RotatedFrom = k.ID
	o := k.clone()
	o.RotatedTo = next.ID
	if end := now.Add(overlap); o.ExpiresAt.IsZero() || end.Before(o.ExpiresAt) {
		o.ExpiresAt = end
	}
	rec := &Record{Kind: KindRotate, Actor: next.CreatedBy, KeyID: o.ID, KeyName: o.Name, NewKeyID: next.ID, Remote: remoteOf(ctx),
		Reason: fmt.Sprintf("old key works until %s; new key expires %s", o.ExpiresAt.Format(time.RFC3339), next.ExpiresAt.Format(time.RFC3339))}
	if err := s.commitLocked(rec, o, next); err != nil {
		return nil, nil, "", err
	}
	return o.clone(), next.clone(), token, nil
}

// Revoke makes key id stop working at once: once Revoke returns, no
// request is let in with it. Revoking a revoked key changes nothing and
// records nothing.
func (s *Store) Revoke(ctx context.Context, id string) (*Key, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.byID[id]
	if !ok {
		return nil, events.Errorf(events.ENOTFOUND, "no API key %q", id)
	}
	if !k.RevokedAt.IsZero() {
		return k.clone(), nil
	}
	r := k.clone()
	r.RevokedAt, r.RevokedBy = s.now().UTC(), actorOf(ctx)
	rec := &Record{Kind: KindRevoke, Actor: r.RevokedBy, KeyID: r.ID, KeyName: r.Name, Remote: remoteOf(ctx)}
	if err := s.commitLocked(rec, r); err != nil {
		return nil, err
	}
	return r.clone(), nil
}

// Authenticate checks a presented token and returns who it acts for. A
// token that is malformed, unknown or has a wrong secret fails with the
// same EUNAUTHORIZED error, so the answer tells an attacker nothing; a
// holder of the right secret is told when the key expired or was revoked.
// Each failure goes to the security log (within a budget, see Options),
// with the key's id when the token has the shape of a key, never more of
// it; the remote address comes from WithRemoteAddr. A success counts as a
// use of the key.
func (s *Store) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	now := s.now()
	id, sec, ok := ParseToken(strings.TrimSpace(token))
	if !ok {
		s.recordFailure(ctx, now, "", "", "malformed key")
		return nil, events.WrapError(events.EUNAUTHORIZED, "missing or invalid API key", errors.New("malformed key"))
	}
	s.mu.RLock()
	k, found := s.byID[id]
	var end <-chan struct{}
	if e := s.ends[id]; e != nil {
		end = e.ch
	}
	s.mu.RUnlock()
	want := make([]byte, 64)
	name := ""
	if found {
		copy(want, k.Hash)
		name = k.Name
	}
	// Compare even for an unknown id, so timing does not tell ids apart.
	match := subtle.ConstantTimeCompare([]byte(hashSecret(sec)), want) == 1
	var reason, detail string
	switch {
	case !found:
		reason, detail = "unknown key", "missing or invalid API key"
	case !match:
		reason, detail = "wrong secret", "missing or invalid API key"
	case !k.RevokedAt.IsZero():
		reason, detail = "key revoked", "API key "+id+" was revoked"
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		reason, detail = "key expired", "API key "+id+" expired at "+k.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if reason != "" {
		s.recordFailure(ctx, now, id, name, reason)
		return nil, events.WrapError(events.EUNAUTHORIZED, detail, errors.New(reason))
	}
	s.used(id, now)
	return &Principal{KeyID: k.ID, Name: k.Name, Scopes: k.Scopes, Projects: k.Projects, end: end}, nil
}

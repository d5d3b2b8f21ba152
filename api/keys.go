package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// KeyAdmin manages the site's API keys and reads its security log
// (cmd/dss-sync implements it over internal/keys). actor is the name of the
// key making the request; the security log records it. Errors are domain
// errors: ENOTFOUND for an unknown key, ECONFLICT for a key in a state that
// forbids the operation, EINVALID for an invalid name, scope, project or
// lifetime.
type KeyAdmin interface {
	// ListKeys returns every key, revoked and expired ones included.
	ListKeys(ctx context.Context) ([]APIKey, error)
	// CreateKey mints a key; ttl 0 takes the site's default lifetime.
	CreateKey(ctx context.Context, actor, name string, scopes, projects []string, ttl time.Duration) (*KeyToken, error)
	// RotateKey mints the successor of key id; id keeps working for
	// overlap (0: the site's default), or until it expires if sooner.
	RotateKey(ctx context.Context, actor, id string, overlap time.Duration) (*KeyToken, error)
	// RevokeKey stops key id at once; revoking a revoked key is a no-op.
	RevokeKey(ctx context.Context, actor, id string) (*APIKey, error)
	// SecurityLog returns up to limit records after seq after.
	SecurityLog(ctx context.Context, after uint64, limit int) ([]SecurityRecord, error)
}

// APIKey is a key as the admin endpoints show it: never its secret, nor
// the secret's hash.
type APIKey struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Scopes   []string `json:"scopes"`
	Projects []string `json:"projects"` // empty: every project
	// State is active, rotated (superseded, working until expiresAt),
	// expired or revoked.
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"createdAt"`
	CreatedBy   string     `json:"createdBy,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"` // absent only for keys made before expiry was required
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
	RevokedBy   string     `json:"revokedBy,omitempty"`
	RotatedFrom string     `json:"rotatedFrom,omitempty"`
	RotatedTo   string     `json:"rotatedTo,omitempty"`
	LastUsedAt  *time.Time `json:"lastUsedAt,omitempty"`
	UseCount    uint64     `json:"useCount"`
}

// KeyToken is a key just made, with its token: the only time the token is
// shown. A rotation also gives the previous key as it now is.
type KeyToken struct {
	Key      APIKey  `json:"key"`
	Token    string  `json:"token"`
	Previous *APIKey `json:"previous,omitempty"`
}

// KeySpec is the body of POST /v1/admin/keys.
type KeySpec struct {
	Name     string   `json:"name"`
	Scopes   []string `json:"scopes"`
	Projects []string `json:"projects,omitempty"`
	// TTL is the key's lifetime as a Go duration ("720h"); empty: the
	// site's default.
	TTL string `json:"ttl,omitempty"`
}

// RotateSpec is the (optional) body of POST /v1/admin/keys/{id}/rotate.
type RotateSpec struct {
	// Overlap is how long the old key keeps working, as a Go duration;
	// empty: the site's default.
	Overlap string `json:"overlap,omitempty"`
}

// SecurityRecord is one record of the site's security log (see
// internal/keys): hash-chained, never holding a secret.
type SecurityRecord struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // key.create, key.rotate, key.revoke, auth.failure
	Actor    string    `json:"actor,omitempty"`
	KeyID    string    `json:"keyId,omitempty"`
	KeyName  string    `json:"keyName,omitempty"`
	NewKeyID string    `json:"newKeyId,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Count    uint64    `json:"count,omitempty"`
	PrevHash string    `json:"prevHash"`
	Hash     string    `json:"hash"`
}

// SecurityLogPage is GET /v1/admin/security-log: records in order, and the
// seq to pass as after for the next page (nil on the last).
type SecurityLogPage struct {
	Records []SecurityRecord `json:"records"`
	Next    *uint64          `json:"next"`
}

// MaxSecurityRecords is the largest page of the security log.
const MaxSecurityRecords = 1000

func (s *Server) keyAdmin(w http.ResponseWriter, r *http.Request) (KeyAdmin, bool) {
	if s.cfg.Keys == nil {
		Error(w, r, events.Errorf(events.ENOTIMPLEMENTED, "key administration is not available on this site"))
		return nil, false
	}
	return s.cfg.Keys, true
}

// parseLifetime reads a positive Go duration; "" is 0 (the default).
func parseLifetime(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, events.Errorf(events.EMALFORMED, "%s must be a duration such as 720h, not %q", field, v)
	}
	if d <= 0 {
		return 0, events.Errorf(events.EINVALID, "%s must be positive, not %s", field, v)
	}
	return d, nil
}

// noStore keeps a response holding a token out of every cache.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	ka, ok := s.keyAdmin(w, r)
	if !ok {
		return
	}
	list, err := ka.ListKeys(r.Context())
	if err != nil {
		Error(w, r, err)
		return
	}
	if list == nil {
		list = []APIKey{}
	}
	JSON(w, http.StatusOK, map[string]any{"keys": list})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	ka, ok := s.keyAdmin(w, r)
	if !ok {
		return
	}
	var in KeySpec
	if err := s.decodeBody(w, r, &in); err != nil {
		Error(w, r, err)
		return
	}
	ttl, err := parseLifetime("ttl", in.TTL)
	if err != nil {
		Error(w, r, err)
		return
	}
	kt, err := ka.CreateKey(r.Context(), actor(r), in.Name, in.Scopes, in.Projects, ttl)
	if err != nil {
		Error(w, r, err)
		return
	}
	noStore(w)
	JSON(w, http.StatusCreated, kt)
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request) {
	ka, ok := s.keyAdmin(w, r)
	if !ok {
		return
	}
	var in RotateSpec
	if r.ContentLength != 0 { // the body is optional
		if err := s.decodeBody(w, r, &in); err != nil {
			Error(w, r, err)
			return
		}
	}
	overlap, err := parseLifetime("overlap", in.Overlap)
	if err != nil {
		Error(w, r, err)
		return
	}
	kt, err := ka.RotateKey(r.Context(), actor(r), routeVar(r, "id"), overlap)
	if err != nil {
		Error(w, r, err)
		return
	}
	noStore(w)
	JSON(w, http.StatusCreated, kt)
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	ka, ok := s.keyAdmin(w, r)
	if !ok {
		return
	}
	k, err := ka.RevokeKey(r.Context(), actor(r), routeVar(r, "id"))
	if err != nil {
		Error(w, r, err)
		return
	}
	JSON(w, http.StatusOK, k)
}

func (s *Server) securityLog(w http.ResponseWriter, r *http.Request) {
	ka, ok := s.keyAdmin(w, r)
	if !ok {
		return
	}
	v, err := query(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	var after uint64
	if a := v.Get("after"); a != "" {
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			Error(w, r, events.Errorf(events.EMALFORMED, "after must be a record's seq, not %q", a))
			return
		}
	}
	limit := 100
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxSecurityRecords {
			Error(w, r, events.Errorf(events.EMALFORMED, "limit must be 1..%d", MaxSecurityRecords))
			return
		}
		limit = n
	}
	recs, err := ka.SecurityLog(r.Context(), after, limit)
	if err != nil {
		Error(w, r, err)
		return
	}
	page := SecurityLogPage{Records: recs}
	if page.Records == nil {
		page.Records = []SecurityRecord{}
	}
	if len(recs) == limit {
		next := recs[len(recs)-1].Seq
		page.Next = &next
	}
	JSON(w, http.StatusOK, page)
}

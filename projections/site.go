package projections

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Site is one dss-sync site: it turns requested changes into events stamped
// by this site, folds events made elsewhere, and answers queries, all over a
// Storage. It holds no state of its own besides configuration: everything
// lives in the storage, so a Site is cheap and safe for concurrent use.
type Site struct {
	id    string
	store Storage
	now   func() time.Time
	ids   *events.IDSource

	aheadTolerance, driftLimit time.Duration
	skew                       skewWatch

	// hold, when set, refuses every event this site would make (see
	// HoldWrites).
	hold atomic.Pointer[error]
}

// HoldWrites makes the site refuse to make events, with err (an
// EUNAVAILABLE *events.Error, for instance), until HoldWrites(nil). Events
// made elsewhere are still received. A site restored from a backup holds
// its writes until it has caught up with its peers: a new event of its own
// would take a seq its pre-restore self may already have used, and fork its
// chain.
func (s *Site) HoldWrites(err error) {
	if err == nil {
		s.hold.Store(nil)
		return
	}
	s.hold.Store(&err)
}

// WritesHeld returns the error writes are refused with, or nil.
func (s *Site) WritesHeld() error {
	if p := s.hold.Load(); p != nil {
		return *p
	}
	return nil
}

// SiteConfig configures a Site.
type SiteConfig struct {
	// ID is the site id, [a-z0-9-]{1,32}.
	ID string
	// Storage holds logs and projections.
	Storage Storage
	// Now is the wall clock stamped on events (with any drill offset
	// applied). Default time.Now.
	Now func() time.Time
	// Rand is the entropy of event and entity ids. Default crypto/rand.
	Rand io.Reader
	// AheadTolerance is how far ahead of this site's clock a received
	// event's wall time may be before it is flagged. Default 5 s.
	AheadTolerance time.Duration
	// DriftLimit is how far ahead another site's clock may run before it is
	// flagged as drifting. Default 1 h.
	DriftLimit time.Duration
}

// NewSite returns a site over cfg.Storage.
func NewSite(cfg SiteConfig) (*Site, error) {
	if !events.ValidSite(cfg.ID) {
		return nil, fmt.Errorf("site id %q must match [a-z0-9-]{1,32}", cfg.ID)
	}
	if cfg.Storage == nil {
		return nil, fmt.Errorf("site %s: no storage", cfg.ID)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.AheadTolerance <= 0 {
		cfg.AheadTolerance = DefaultAheadTolerance
	}
	if cfg.DriftLimit <= 0 {
		cfg.DriftLimit = DefaultDriftLimit
	}
	return &Site{id: cfg.ID, store: cfg.Storage, now: cfg.Now, ids: events.NewIDSource(cfg.Rand),
		aheadTolerance: cfg.AheadTolerance, driftLimit: cfg.DriftLimit,
		skew: skewWatch{lead: map[string]time.Duration{}}}, nil
}

// ID returns the site id.
func (s *Site) ID() string { return s.id }

// Storage returns the site's storage.
func (s *Site) Storage() Storage { return s.store }

// Now returns the site's wall clock.
func (s *Site) Now() time.Time { return s.now() }

// stamp makes the next event of this site in tx's project: seq after the
// site's head, Lamport above everything the project has seen.
func (s *Site) stamp(tx Tx, d events.Draft) (*events.Event, error) {
	if err := s.WritesHeld(); err != nil {
		return nil, err
	}
	head, err := tx.Head(s.id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if d.Entity == "" {
		d.Entity = s.ids.New(now).String()
	}
	return events.Stamp(d, tx.Project(), s.id, head, tx.Lamport()+1, s.ids.New(now), now), nil
}

func projectExists(r Reader) error {
	_, ok, err := r.Get(entityKey(events.KindProject, r.Project()))
	if err != nil {
		return err
	}
	if !ok {
		return events.Errorf(events.ENOTFOUND, "no project %q", r.Project())
	}
	return nil
}

// CreateProject creates a project. It fails with ECONFLICT when this site
// already holds a project with that id.
func (s *Site) CreateProject(ctx context.Context, id, name, actor string) (*Project, error) {
	if !events.ValidProject(id) {
		return nil, events.Errorf(events.EMALFORMED, "project id %q must be a lower-case letter or digit, then up to 63 of a-z, 0-9, '-'", id)
	}
	if name == "" {
		name = id
	}
	if len(name) > 256 || !utf8.ValidString(name) {
		return nil, events.Errorf(events.EMALFORMED, "project name must be valid UTF-8 of at most 256 bytes")
	}
	var p *Project
	err := s.store.Update(ctx, id, func(tx Tx) error {
		if projectExists(tx) == nil {
			return events.Errorf(events.ECONFLICT, "project %q already exists", id)
		}
		e, err := s.stamp(tx, events.Draft{Type: events.ProjectCreate, Entity: id, Path: id, Actor: actor,
			Changes: events.Changes{{Field: FieldName, Value: events.JSONString(name)}}})
		if err != nil {
			return err
		}
		if _, err := Fold(tx, []*events.Event{e}); err != nil {
			return err
		}
		p, err = ReadProject(tx)
		return err
	})
	return p, err
}

// Project returns one project.
func (s *Site) Project(ctx context.Context, id string) (*Project, error) {
	var p *Project
	err := s.view(ctx, id, func(r Reader) (err error) {
		p, err = ReadProject(r)
		return err
	})
	return p, err
}

// Projects returns every project this site holds.
func (s *Site) Projects(ctx context.Context) ([]*Project, error) {
	ids, err := s.store.Projects(ctx)
	if err != nil {
		return nil, err
	}
	out := []*Project{}
	for _, id := range ids {
		p, err := s.Project(ctx, id)
		if events.ErrorCode(err) == events.ENOTFOUND {
			continue // events of a project whose creation has not arrived
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// view runs fn on a snapshot of a project that exists.
func (s *Site) view(ctx context.Context, project string, fn func(Reader) error) error {
	if !events.ValidProject(project) {
		return events.Errorf(events.ENOTFOUND, "no project %q", project)
	}
	return s.store.View(ctx, project, func(r Reader) error {
		if err := projectExists(r); err != nil {
			return err
		}
		return fn(r)
	})
}

// Apply applies a batch of changes atomically: every change, or none when
// any is refused. Each change sees the ones before it. References are checked
// once the whole batch is in, so its order does not matter to them.
func (s *Site) Apply(ctx context.Context, project, actor string, changes []Change) ([]*Result, error) {
	return s.apply(ctx, project, actor, changes, false)
}

// ApplyOne applies one change and returns its result with the entity as it
// now reads (Token or Component), nil after a delete.
func (s *Site) ApplyOne(ctx context.Context, project, actor string, c Change) (*Result, error) {
	res, err := s.apply(ctx, project, actor, []Change{c}, true)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

func (s *Site) apply(ctx context.Context, project, actor string, changes []Change, models bool) ([]*Result, error) {
	if !events.ValidProject(project) {
		return nil, events.Errorf(events.ENOTFOUND, "no project %q", project)
	}
	if len(changes) == 0 {
		return nil, invalid("no changes")
	}
	// Parse and check every change before taking the store's lock.
	parsed := make([]Change, len(changes))
	fields := make([]map[string]json.RawMessage, len(changes))
	for i, c := range changes {
		where := func(err error) error {
			if len(changes) == 1 {
				return err
			}
			return prefixError(fmt.Sprintf("changes[%d] (%s %s %q)", i, c.Op, c.Kind, c.Path), err)
		}
		if err := c.normalize(); err != nil {
			return nil, where(err)
		}
		if c.Op == OpPut {
			f, err := parseData(c.Kind, c.Data)
			if err != nil {
				return nil, where(err)
			}
			fields[i] = f
		}
		parsed[i] = c
	}
	var results []*Result
	err := s.store.Update(ctx, project, func(tx Tx) error {
		if err := projectExists(tx); err != nil {
			return err
		}
		f := newFolder(tx)
		touched, vacated := map[string]bool{}, map[string]bool{}
		results = make([]*Result, 0, len(parsed))
		for i := range parsed {
			c := &parsed[i]
			where := func(err error) error {
				if len(parsed) == 1 {
					return err
				}
				return prefixError(fmt.Sprintf("changes[%d] (%s %s %q)", i, c.Op, c.Kind, c.Path), err)
			}
			d, res, err := decide(tx, c, fields[i], actor)
			if err != nil {
				return where(err)
			}
			if d != nil {
				created := d.Entity == ""
				e, err := s.stamp(tx, *d)
				if err != nil {
					return err
				}
				if _, err := f.fold(e, true, created); err != nil {
					return where(err)
				}
				res.Event, res.entity, res.event = &e.ID, e.Entity, e
				touched[entityRef(c.Kind, e.Entity)] = true
				if c.Kind == events.KindToken && (c.Op == OpDelete || c.Op == OpRename) {
					vacated[c.Path] = true
				}
			}
			results = append(results, res)
		}
		if err := checkReferences(tx, touched, vacated); err != nil {
			return err
		}
		if err := f.settle(); err != nil {
			return err
		}
		if models {
			for _, res := range results {
				if err := res.load(tx); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// load fills in the entity's read model, if the entity is live.
func (res *Result) load(r Reader) error {
	if res.entity == "" {
		return nil
	}
	b, ok, err := r.Get(entityKey(res.Kind, res.entity))
	if err != nil || !ok {
		return err
	}
	en, err := decodeEntity(b)
	if err != nil || !en.claims() {
		return err
	}
	if res.Kind == events.KindToken {
		res.Token, err = tokenOf(r, en)
	} else {
		res.Component, err = componentOf(r, en)
	}
	return err
}

// prefixError adds context to a domain error's client-visible message.
func prefixError(prefix string, err error) error {
	code := events.ErrorCode(err)
	if code == events.EINTERNAL {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	return &events.Error{Code: code, Message: prefix + ": " + events.ErrorMessage(err), Err: err}
}

// Token returns the live token at path.
func (s *Site) Token(ctx context.Context, project, path string) (*Token, error) {
	var t *Token
	err := s.view(ctx, project, func(r Reader) (err error) {
		t, err = ReadToken(r, path)
		return err
	})
	return t, err
}

// Tokens returns a page of tokens. With at > 0 it answers from the log as
// the projection was when the project's Lamport mark was at: the events
// with Lamport time at most at form a causally closed set, folded afresh.
func (s *Site) Tokens(ctx context.Context, project string, q Query, at uint64) (toks []*Token, next string, err error) {
	err = s.at(ctx, project, at, func(r Reader) error {
		toks, next, err = ReadTokens(r, q)
		return err
	})
	return toks, next, err
}

// Component returns the live component named name.
func (s *Site) Component(ctx context.Context, project, name string) (*Component, error) {
	var c *Component
	err := s.view(ctx, project, func(r Reader) (err error) {
		c, err = ReadComponent(r, name)
		return err
	})
	return c, err
}

// Components returns a page of components, optionally as of Lamport time at.
func (s *Site) Components(ctx context.Context, project string, q Query, at uint64) (cs []*Component, next string, err error) {
	err = s.at(ctx, project, at, func(r Reader) error {
		cs, next, err = ReadComponents(r, q)
		return err
	})
	return cs, next, err
}

// at runs fn on the current projection (at == 0) or on the projection
// rebuilt from the events with Lamport time at most at.
func (s *Site) at(ctx context.Context, project string, at uint64, fn func(Reader) error) error {
	return s.view(ctx, project, func(r Reader) error {
		if at == 0 || at >= r.Lamport() {
			return fn(r)
		}
		tx, err := FoldUpTo(ctx, r, at)
		if err != nil {
			return err
		}
		return fn(tx)
	})
}

// FoldUpTo folds the events of r's project with Lamport time at most at
// into a fresh in-memory projection.
func FoldUpTo(ctx context.Context, r Reader, at uint64) (Tx, error) {
	tx := NewMemoryTx(r.Project())
	var batch []*events.Event
	flush := func() error {
		_, err := Fold(tx, batch)
		batch = batch[:0]
		return err
	}
	err := r.ScanEvents(events.Position{}, func(e *events.Event) error {
		if e.Lamport > at {
			return events.StopScan
		}
		batch = append(batch, e)
		if len(batch) == 4096 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return flush()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tx, flush()
}

// History returns the events of the live token or component at path.
func (s *Site) History(ctx context.Context, project, kind, path string) ([]*events.Event, error) {
	var evs []*events.Event
	err := s.view(ctx, project, func(r Reader) (err error) {
		evs, err = History(r, kind, path)
		return err
	})
	return evs, err
}

// Events returns up to limit events of the project in total order, after
// the event with id after (zero: from the start).
func (s *Site) Events(ctx context.Context, project string, after ulid.ULID, limit int) ([]*events.Event, error) {
	if limit <= 0 || limit > MaxLimit {
		limit = DefaultLimit
	}
	out := []*events.Event{}
	err := s.view(ctx, project, func(r Reader) error {
		var from events.Position
		if !after.IsZero() {
			e, err := r.Event(after)
			if err != nil {
				return err
			}
			if e == nil {
				return events.Errorf(events.ENOTFOUND, "no event %s in project %q", after, project)
			}
			from = e.Position()
		}
		return r.ScanEvents(from, func(e *events.Event) error {
			out = append(out, e)
			if len(out) == limit {
				return events.StopScan
			}
			return nil
		})
	})
	return out, err
}

// Conflicts returns the project's open conflicts.
func (s *Site) Conflicts(ctx context.Context, project string) ([]*Conflict, error) {
	var cs []*Conflict
	err := s.view(ctx, project, func(r Reader) (err error) {
		cs, err = ReadConflicts(r)
		return err
	})
	return cs, err
}

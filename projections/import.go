package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Item is one token or component of a snapshot to import (an archive's
// tokens.json or components.json, or a DTCG file): its path, the fields it
// states, and, when the document came from a dss-sync export, the entity's
// id and the rev it was exported at.
type Item struct {
	Kind   string
	Path   string
	ID     string                     // entity id, or ""
	Rev    string                     // the rev the item was exported at, or ""
	Fields map[string]json.RawMessage // canonical values of the kind's fields (not path)
}

// ImportOptions say how items become events.
type ImportOptions struct {
	// CreateName, when the project does not exist, creates it with this
	// name (an archive imported into a new project).
	CreateName string
	// Replace makes the project equal to the items: every entity differing
	// is written, every live entity the items do not hold is deleted, and
	// revs are ignored (the items win).
	Replace bool
	// SkipReferences leaves reference checks to the caller, for an import
	// applied in several transactions whose whole was checked beforehand.
	SkipReferences bool
}

// ImportResult says what an import did: the history received, and the
// entities its snapshot created, updated, deleted or left as they were.
type ImportResult struct {
	Receipt   *Receipt `json:"history"`
	Created   int      `json:"created"`
	Updated   int      `json:"updated"`
	Deleted   int      `json:"deleted"`
	Unchanged int      `json:"unchanged"`
	Events    int      `json:"events"` // events this site made
}

// ParseItemData checks and canonicalizes an item's fields as a put's data
// would be: what an importer calls on every item before ImportItems.
func ParseItemData(kind string, data json.RawMessage) (map[string]json.RawMessage, error) {
	if kind != events.KindToken && kind != events.KindComponent {
		return nil, invalid("kind must be token or component, not %q", kind)
	}
	return parseData(kind, data)
}

// CheckItemFields is ParseItemData for fields already apart and each
// canonical (events.Canonicalize, events.Members): what an importer that
// took a document apart itself calls, without serializing it again. fields
// is not modified.
func CheckItemFields(kind string, fields map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if kind != events.KindToken && kind != events.KindComponent {
		return nil, invalid("kind must be token or component, not %q", kind)
	}
	return checkFields(kind, fields)
}

// CheckItemPath checks an item's path as a put's would be.
func CheckItemPath(kind, path string) error {
	if err := checkPath(kind, path); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// Import applies an import in one transaction: first evs, an archive's
// history, received as events from another site (dedup, causal buffer,
// merge); then items, its snapshot, as events stamped by this site. When the
// project does not exist and opt.CreateName is set, it is created first.
//
// Items update the entity they name (by id, else by live path) or create one
// (keeping the item's id when it has one: a copy keeps entity ids). An update
// whose item carries a rev this log knows descends from that rev and writes
// only the fields that differ from the entity as it was at that rev: what the
// document's author changed. Edits made here since then are concurrent with
// it, so they merge, or conflict field by field, exactly as edits from
// another site would. Without a rev the item is written over the current
// state. With opt.Replace the items win: every live entity they do not hold
// is deleted first, revs are ignored, and the project ends equal to them.
func (s *Site) Import(ctx context.Context, project, actor string, evs []*events.Event, items []Item, opt ImportOptions) (*ImportResult, error) {
	var res *ImportResult
	now := s.now()
	err := s.store.Update(ctx, project, func(tx Tx) (err error) {
		res, err = s.importTx(tx, actor, evs, items, opt, now)
		return err
	})
	return res, err
}

// AnalyzeImport is Import into an overlay over a snapshot: what it would
// do, changing nothing.
func (s *Site) AnalyzeImport(ctx context.Context, project, actor string, evs []*events.Event, items []Item, opt ImportOptions) (*Analysis, error) {
	if !events.ValidProject(project) {
		return nil, events.Errorf(events.EINVALID, "invalid project id %q", project)
	}
	var a *Analysis
	now := s.now()
	err := s.store.View(ctx, project, func(r Reader) error {
		o := newOverlay(r)
		res, err := s.importTx(o, actor, evs, items, opt, now)
		if err != nil {
			return err
		}
		if a, err = compare(r, o, o.appended, res.Receipt); err != nil {
			return err
		}
		a.Events.Total = len(evs)
		return nil
	})
	return a, err
}

func (s *Site) importTx(tx Tx, actor string, evs []*events.Event, items []Item, opt ImportOptions, now time.Time) (*ImportResult, error) {
	res := &ImportResult{Receipt: &Receipt{Held: []Held{}, Refused: []Refusal{}, Flags: []SkewFlag{}}}
	if len(evs) > 0 {
		rc, err := s.receive(tx, evs, now, false)
		if err != nil {
			return nil, err
		}
		res.Receipt = rc
	}
	if len(items) == 0 && !opt.Replace && (opt.CreateName == "" || projectExists(tx) == nil) {
		return res, nil // nothing to fold, no project to create
	}
	if projectExists(tx) != nil {
		if opt.CreateName == "" {
			return nil, projectExists(tx)
		}
		e, err := s.stamp(tx, events.Draft{Type: events.ProjectCreate, Entity: tx.Project(), Path: tx.Project(), Actor: actor,
			Changes: events.Changes{{Field: FieldName, Value: events.JSONString(opt.CreateName)}}})
		if err != nil {
			return nil, err
		}
		if _, err := Fold(tx, []*events.Event{e}); err != nil {
			return nil, err
		}
		res.Events++
	}
	f := newFolder(tx)
	touched, vacated := map[string]bool{}, map[string]bool{}
	if opt.Replace {
		kept := map[string]bool{}
		for i := range items {
			if en, err := importTarget(tx, &items[i]); err != nil {
				return nil, err
			} else if en != nil {
				kept[entityRef(items[i].Kind, en.ID)] = true
			}
		}
		if err := s.deleteOthers(tx, f, actor, kept, vacated, res); err != nil {
			return nil, err
		}
	}
	for i := range items {
		it := &items[i]
		where := func(err error) error { return prefixError(fmt.Sprintf("%s %q", it.Kind, it.Path), err) }
		d, created, err := s.decideImport(tx, it, opt, actor)
		if err != nil {
			return nil, where(err)
		}
		if d == nil {
			res.Unchanged++
			continue
		}
		minted := d.Entity == "" // a new id: the entity cannot exist yet
		e, err := s.stamp(tx, *d)
		if err != nil {
			return nil, err
		}
		if _, err := f.fold(e, true, minted); err != nil {
			return nil, where(err)
		}
		res.Events++
		touched[entityRef(it.Kind, e.Entity)] = true
		if created {
			res.Created++
		} else {
			res.Updated++
		}
	}
	if !opt.SkipReferences {
		if err := checkReferences(tx, touched, vacated); err != nil {
			return nil, err
		}
	}
	return res, f.settle()
}

// importTarget returns the entity an item names: by id, else the live one
// at its path; nil for a new one.
func importTarget(tx Tx, it *Item) (*Entity, error) {
	if it.ID != "" {
		en, err := loadFrom(tx, it.Kind, it.ID)
		if err != nil || en != nil {
			return en, err
		}
	}
	return winnerAt(tx, it.Kind, it.Path)
}

// decideImport returns the draft an item makes, or nil when it changes
// nothing; created says the draft creates the entity.
func (s *Site) decideImport(tx Tx, it *Item, opt ImportOptions, actor string) (*events.Draft, bool, error) {
	cur, err := importTarget(tx, it)
	if err != nil {
		return nil, false, err
	}
	setType := events.TokenSet
	names := TokenFields
	if it.Kind == events.KindComponent {
		setType, names = events.ComponentSet, ComponentFields
	}
	if cur == nil { // a new entity; a copy keeps the item's id
		d := &events.Draft{Type: setType, Entity: it.ID, Path: it.Path, Actor: actor}
		d.Changes = events.Changes{{Field: FieldPath, Value: events.JSONString(it.Path)}}
		for _, n := range names {
			if v, ok := it.Fields[n]; ok {
				d.Changes = append(d.Changes, events.Change{Field: n, Value: v})
			}
		}
		d.Changes = events.SortChanges(d.Changes)
		return d, true, nil
	}
	base, parents := cur, cur.HeadIDs()
	if !opt.Replace && it.Rev != "" {
		if at, ids, ok, err := stateAt(tx, cur, it.Rev); err != nil {
			return nil, false, err
		} else if ok {
			base, parents = at, ids
		}
	}
	var ch events.Changes
	for _, n := range append([]string{FieldPath}, names...) {
		v, ok := it.Fields[n]
		if n == FieldPath {
			v, ok = events.JSONString(it.Path), true
		}
		if !ok {
			v = json.RawMessage("null")
		}
		old := base.Value(n)
		if old == nil {
			old = json.RawMessage("null")
		}
		if !bytes.Equal(v, old) || (opt.Replace && cur.Field(n) != nil && cur.Field(n).Conflicted()) {
			ch = append(ch, events.Change{Field: n, Value: v})
		}
	}
	if len(ch) == 0 && cur.Exists() && !(opt.Replace && cur.Field(FieldExists).Conflicted()) {
		return nil, false, nil
	}
	return &events.Draft{Type: setType, Entity: cur.ID, Path: it.Path, Parents: parents, Actor: actor,
		Changes: events.SortChanges(ch)}, false, nil
}

// stateAt returns the entity as it was at rev (the fold of rev's events and
// their ancestors), and rev's ids, when the log holds every event rev names.
func stateAt(tx Tx, cur *Entity, rev string) (*Entity, []ulid.ULID, bool, error) {
	ids, err := ParseRev(rev)
	if err != nil {
		return nil, nil, false, nil // a rev from elsewhere: ignore it
	}
	evs, err := tx.EntityEvents(cur.ID)
	if err != nil {
		return nil, nil, false, err
	}
	byID := make(map[ulid.ULID]*events.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	keep := map[ulid.ULID]bool{}
	stack := append([]ulid.ULID(nil), ids...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if keep[id] {
			continue
		}
		e := byID[id]
		if e == nil {
			return nil, nil, false, nil // rev names events this log lacks
		}
		keep[id] = true
		stack = append(stack, e.Parents...)
	}
	var upto []*events.Event
	for _, e := range evs {
		if keep[e.ID] {
			upto = append(upto, e)
		}
	}
	at := recompute(cur.Kind, cur.ID, upto)
	if at == nil {
		return nil, nil, false, nil
	}
	return at, ids, true, nil
}

// deleteOthers deletes, for a replace, every live token and component the
// items did not hold.
func (s *Site) deleteOthers(tx Tx, f *folder, actor string, kept, vacated map[string]bool, res *ImportResult) error {
	for _, kind := range []string{events.KindToken, events.KindComponent} {
		var doomed []*Entity
		base := claimKindPrefix(kind)
		err := tx.Scan(base, nil, func(_, v []byte) error {
			cl, err := decodeClaims(v)
			if err != nil {
				return err
			}
			for _, c := range cl { // every live entity, collision losers too
				if kept[entityRef(kind, c.id)] {
					continue
				}
				en, err := loadFrom(tx, kind, c.id)
				if err != nil {
					return err
				}
				doomed = append(doomed, en)
			}
			return nil
		})
		if err != nil {
			return err
		}
		del := events.TokenDelete
		if kind == events.KindComponent {
			del = events.ComponentDelete
		}
		for _, en := range doomed {
			e, err := s.stamp(tx, events.Draft{Type: del, Entity: en.ID, Path: en.Path(), Parents: en.HeadIDs(), Actor: actor})
			if err != nil {
				return err
			}
			if _, err := f.fold(e, true, false); err != nil {
				return err
			}
			res.Deleted++
			res.Events++
			if kind == events.KindToken {
				vacated[en.Path()] = true
			}
		}
	}
	return nil
}

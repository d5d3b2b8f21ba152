package projections

import (
	"context"
	"encoding/json"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Resolution settles a conflict: Pick names one candidate's event, or Value
// gives a new value for the conflicting field. Exactly one is set.
type Resolution struct {
	Pick  *ulid.ULID      `json:"pick,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Resolved says how a conflict was settled.
type Resolved struct {
	Conflict  *Conflict   `json:"conflict"`
	Events    []ulid.ULID `json:"events"`
	Token     *Token      `json:"token,omitempty"`
	Component *Component  `json:"component,omitempty"`
}

// Resolve settles an open conflict with new events made by this site, which
// travel like any other change:
//   - value: a write of the field (the picked candidate's value, or Value)
//     whose parents are the entity's heads, so it descends from every
//     candidate and closes the conflict wherever it arrives;
//   - delete-update: Pick a delete to delete the entity, or an update to
//     keep it (a write of no field, descending from all);
//   - path-collision: Pick the entity that keeps the path; the others are
//     deleted (a rename first, if they should live on, is a normal change);
//   - dangling-alias, alias-cycle, invalid-value: Value for the field.
//
// The result must pass the checks a local write passes; the conflict must be
// gone afterwards, or nothing is written.
func (s *Site) Resolve(ctx context.Context, project, actor, conflictID string, res Resolution) (*Resolved, error) {
	if (res.Pick == nil) == (res.Value == nil) {
		return nil, events.Errorf(events.EMALFORMED, "give exactly one of pick (a candidate's event id) or value")
	}
	var value json.RawMessage
	if res.Value != nil {
		v, err := events.Canonicalize(res.Value)
		if err != nil {
			return nil, events.WrapError(events.EMALFORMED, "value is not valid JSON: "+err.Error(), err)
		}
		value = v
	}
	out := &Resolved{}
	err := s.store.Update(ctx, project, func(tx Tx) error {
		if err := projectExists(tx); err != nil {
			return err
		}
		c, err := ReadConflict(tx, conflictID)
		if err != nil {
			return err
		}
		out.Conflict = c
		var picked *Candidate
		if res.Pick != nil {
			for i := range c.Candidates {
				if c.Candidates[i].Event == *res.Pick {
					picked = &c.Candidates[i]
				}
			}
			if picked == nil {
				return events.Errorf(events.EINVALID, "event %s is not a candidate of conflict %s", res.Pick, c.ID)
			}
		}
		f := newFolder(tx)
		touched, vacated := map[string]bool{}, map[string]bool{}
		write := func(kind, id string, del bool, ch events.Changes) error {
			en, err := loadFrom(tx, kind, id)
			if err != nil {
				return err
			}
			if en == nil {
				return events.Errorf(events.ENOTFOUND, "%s %s is gone", kind, id)
			}
			d := events.Draft{Entity: id, Path: en.Path(), Parents: en.HeadIDs(), Actor: actor, Changes: ch}
			if kind == events.KindProject {
				d.Path = tx.Project()
			}
			switch {
			case kind == events.KindProject && del:
				return events.Errorf(events.EINVALID, "a project is not deleted by a resolution")
			case kind == events.KindProject:
				d.Type = events.ProjectUpdate
			case kind == events.KindToken && del:
				d.Type = events.TokenDelete
			case kind == events.KindToken:
				d.Type = events.TokenSet
			case del:
				d.Type = events.ComponentDelete
			default:
				d.Type = events.ComponentSet
			}
			for _, x := range ch {
				if x.Field == FieldPath {
					d.Path = jsonString(x.Value)
				}
			}
			e, err := s.stamp(tx, d)
			if err != nil {
				return err
			}
			if _, err := f.fold(e, true, false); err != nil {
				return err
			}
			out.Events = append(out.Events, e.ID)
			touched[entityRef(kind, id)] = true
			if kind == events.KindToken && (del || d.Path != en.Path()) {
				vacated[en.Path()] = true
			}
			return nil
		}
		switch c.Kind {
		case ConflictValue:
			v := value
			if picked != nil {
				v = picked.Value
			}
			if err := checkFieldValue(tx, c.EntityKind, c.Entity, c.Field, v); err != nil {
				return err
			}
			if err := write(c.EntityKind, c.Entity, false, events.Changes{{Field: c.Field, Value: v}}); err != nil {
				return err
			}
		case ConflictDeleteUpdate:
			if picked == nil {
				return events.Errorf(events.EINVALID, "a delete-update conflict is settled by picking the delete or an update")
			}
			if err := write(c.EntityKind, c.Entity, string(picked.Value) == "false", nil); err != nil {
				return err
			}
		case ConflictPathCollision:
			if picked == nil {
				return events.Errorf(events.EINVALID, "a path collision is settled by picking the entity that keeps the path")
			}
			for _, cand := range c.Candidates {
				if cand.Entity != picked.Entity {
					if err := write(c.EntityKind, cand.Entity, true, nil); err != nil {
						return err
					}
				}
			}
			delete(vacated, c.Path) // the picked entity keeps it
		default: // dangling-alias, alias-cycle, invalid-value
			if value == nil {
				return events.Errorf(events.EINVALID, "a %s conflict is settled with a new value for %s", c.Kind, c.Field)
			}
			if err := checkFieldValue(tx, c.EntityKind, c.Entity, c.Field, value); err != nil {
				return err
			}
			if err := write(c.EntityKind, c.Entity, false, events.Changes{{Field: c.Field, Value: value}}); err != nil {
				return err
			}
		}
		if err := checkReferences(tx, touched, vacated); err != nil {
			return err
		}
		if err := f.settle(); err != nil {
			return err
		}
		if left, err := f.conflicts.get(c.subject); err != nil {
			return err
		} else if left != nil {
			return events.Errorf(events.EINVALID, "this resolution leaves the conflict open: %s", left.Detail)
		}
		if c.EntityKind != events.KindProject {
			keep := c.Entity
			if picked != nil && c.Kind == ConflictPathCollision {
				keep = picked.Entity
			}
			r := &Result{Kind: c.EntityKind, entity: keep}
			if err := r.load(tx); err != nil {
				return err
			}
			out.Token, out.Component = r.Token, r.Component
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkFieldValue checks that writing v to field of the entity leaves it
// valid, as a put of the whole entity would be checked.
func checkFieldValue(tx Tx, kind, id, field string, v json.RawMessage) error {
	en, err := loadFrom(tx, kind, id)
	if err != nil {
		return err
	}
	if en == nil {
		return events.Errorf(events.ENOTFOUND, "%s %s is gone", kind, id)
	}
	if field == FieldPath {
		if err := checkPath(kind, jsonString(v)); err != nil || jsonString(v) == "" {
			return invalid("path must be a valid %s path", kind)
		}
		if other, err := winnerAt(tx, kind, jsonString(v)); err != nil {
			return err
		} else if other != nil && other.ID != id {
			return events.Errorf(events.ECONFLICT, "%s %s already exists", kind, jsonString(v))
		}
		return nil
	}
	if !fieldAllowed(kind, field) {
		return invalid("a %s has no field %q", kind, field)
	}
	if kind == events.KindProject {
		if jsonString(v) == "" {
			return invalid("a project name is a non-empty string")
		}
		return nil
	}
	fields := map[string]json.RawMessage{}
	names := TokenFields
	if kind == events.KindComponent {
		names = ComponentFields
	}
	for _, n := range names {
		if w := en.Value(n); w != nil {
			fields[n] = w
		}
	}
	if string(v) == "null" {
		delete(fields, field)
	} else {
		fields[field] = v
	}
	switch kind {
	case events.KindToken:
		return checkTokenFields(fields)
	case events.KindComponent:
		return checkComponentFields(fields)
	}
	return nil
}

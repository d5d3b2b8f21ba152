package projections

import (
	"bytes"
	"context"
	"sort"

	"github.com/dss-sync/dss-sync/events"
)

// Change kinds of an entity in an analysis.
const (
	ChangeNew       = "new"
	ChangeUpdated   = "updated"
	ChangeDeleted   = "deleted"
	ChangeUnchanged = "unchanged"
)

// MaxAnalysisList caps the lists an analysis returns; the counts are exact.
const MaxAnalysisList = 1000

// EntityChange is what incoming events would do to one token or component.
type EntityChange struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Path   string `json:"path"`
	Change string `json:"change"`
}

// Analysis is the plan of a merge: what folding a set of incoming events
// into a project would change, computed without changing anything.
type Analysis struct {
	Events struct {
		Total      int `json:"total"`
		New        int `json:"new"`
		Duplicates int `json:"duplicates"`
		Held       int `json:"held"`
		Refused    int `json:"refused"`
	} `json:"events"`
	Counts   map[string]int `json:"counts"`   // entities by change kind
	Entities []EntityChange `json:"entities"` // at most MaxAnalysisList
	// Conflicts are the conflicts the merge would open, by kind, and the
	// number it would settle.
	Conflicts       map[string]int `json:"conflicts"`
	ConflictList    []*Conflict    `json:"conflictList"` // at most MaxAnalysisList
	SettledConflict int            `json:"settledConflicts"`
	Held            []Held         `json:"held"`
	Refused         []Refusal      `json:"refused"`
	Flags           []SkewFlag     `json:"flags"`
}

// Analyze returns what Receive would do with evs in project: the same fold,
// into an overlay over a snapshot, compared with the snapshot. Nothing is
// written. The project need not exist locally.
func (s *Site) Analyze(ctx context.Context, project string, evs []*events.Event) (*Analysis, error) {
	if !events.ValidProject(project) {
		return nil, events.Errorf(events.EINVALID, "invalid project id %q", project)
	}
	var a *Analysis
	now := s.now()
	err := s.store.View(ctx, project, func(r Reader) error {
		o := newOverlay(r)
		rc, err := s.receive(o, evs, now, false)
		if err != nil {
			return err
		}
		a, err = compare(r, o, rc.Applied, rc)
		if err != nil {
			return err
		}
		a.Events.Total = len(evs)
		return nil
	})
	return a, err
}

// compare builds the analysis of an overlay against its base: applied are
// the events the overlay added (received or made), rc the receipt of those
// received.
func compare(base Reader, after Tx, applied []*events.Event, rc *Receipt) (*Analysis, error) {
	a := &Analysis{Counts: map[string]int{ChangeNew: 0, ChangeUpdated: 0, ChangeDeleted: 0, ChangeUnchanged: 0},
		Entities: []EntityChange{}, Conflicts: map[string]int{}, ConflictList: []*Conflict{},
		Held: rc.Held, Refused: rc.Refused, Flags: rc.Flags}
	a.Events.New, a.Events.Duplicates = len(applied), rc.Duplicates
	a.Events.Held, a.Events.Refused = len(rc.Held), len(rc.Refused)

	seen := map[string]bool{}
	for _, e := range applied {
		kind := e.Type.Kind()
		if kind == events.KindProject || seen[entityRef(kind, e.Entity)] {
			continue
		}
		seen[entityRef(kind, e.Entity)] = true
		before, err := loadFrom(base, kind, e.Entity)
		if err != nil {
			return nil, err
		}
		now, err := loadFrom(after, kind, e.Entity)
		if err != nil {
			return nil, err
		}
		ch := EntityChange{Kind: kind, ID: e.Entity}
		wasLive, isLive := before != nil && before.claims(), now != nil && now.claims()
		switch {
		case !wasLive && isLive:
			ch.Change, ch.Path = ChangeNew, now.Path()
		case wasLive && !isLive:
			ch.Change, ch.Path = ChangeDeleted, before.Path()
		case wasLive && isLive && !sameVisible(before, now):
			ch.Change, ch.Path = ChangeUpdated, now.Path()
		default:
			ch.Change = ChangeUnchanged
			if now != nil {
				ch.Path = now.Path()
			}
		}
		a.Counts[ch.Change]++
		if len(a.Entities) < MaxAnalysisList {
			a.Entities = append(a.Entities, ch)
		}
	}
	sort.Slice(a.Entities, func(i, j int) bool { return a.Entities[i].Path < a.Entities[j].Path })

	was, err := ReadConflicts(base)
	if err != nil {
		return nil, err
	}
	is, err := ReadConflicts(after)
	if err != nil {
		return nil, err
	}
	open := map[string]bool{}
	for _, c := range was {
		open[c.ID] = true
	}
	still := map[string]bool{}
	for _, c := range is {
		still[c.ID] = true
		if open[c.ID] {
			continue
		}
		a.Conflicts[c.Kind]++
		if len(a.ConflictList) < MaxAnalysisList {
			a.ConflictList = append(a.ConflictList, c)
		}
	}
	for _, c := range was {
		if !still[c.ID] {
			a.SettledConflict++
		}
	}
	return a, nil
}

func loadFrom(r Reader, kind, id string) (*Entity, error) {
	b, ok, err := r.Get(entityKey(kind, id))
	if err != nil || !ok {
		return nil, err
	}
	return decodeEntity(b)
}

// sameVisible reports whether two states of an entity read the same: the
// same winning value for every field.
func sameVisible(a, b *Entity) bool {
	names := map[string]bool{}
	for _, f := range a.Fields {
		names[f.Name] = true
	}
	for _, f := range b.Fields {
		names[f.Name] = true
	}
	for n := range names {
		if !bytes.Equal(a.Value(n), b.Value(n)) {
			return false
		}
	}
	return true
}

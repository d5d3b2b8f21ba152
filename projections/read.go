package projections

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections/dtcg"
)

// Token is a token as the API returns it (CONTRACT.md §2). Unset DTCG
// properties are null.
type Token struct {
	ID          string          `json:"id"`
	Path        string          `json:"path"`
	Type        json.RawMessage `json:"$type"`
	Value       json.RawMessage `json:"$value"`
	Description json.RawMessage `json:"$description"`
	Deprecated  json.RawMessage `json:"$deprecated"`
	Extensions  json.RawMessage `json:"$extensions"`
	Rev         string          `json:"rev"`
	Lamport     uint64          `json:"lamport"`
	UpdatedAt   string          `json:"updatedAt"`
	UpdatedBy   string          `json:"updatedBy"`
	// ResolvedValue is $value with every alias replaced by its target's
	// resolved value; null when an alias does not resolve.
	ResolvedValue json.RawMessage `json:"resolvedValue"`
	Conflicted    bool            `json:"conflicted"`
}

// Component is a component as the API returns it.
type Component struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description json.RawMessage `json:"description"`
	Props       json.RawMessage `json:"props"`
	Variants    json.RawMessage `json:"variants"`
	Tokens      json.RawMessage `json:"tokens"`
	Rev         string          `json:"rev"`
	Lamport     uint64          `json:"lamport"`
	UpdatedAt   string          `json:"updatedAt"`
	UpdatedBy   string          `json:"updatedBy"`
	Conflicted  bool            `json:"conflicted"`
}

// Project is a project as the API returns it.
type Project struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	CreatedAt string        `json:"createdAt"`
	CreatedBy string        `json:"createdBy"`
	Counts    ProjectCounts `json:"counts"`
	Lamport   uint64        `json:"lamport"`
	Vector    events.Vector `json:"vector"`
}

// ProjectCounts are the counts the API shows for a project.
type ProjectCounts struct {
	Counts
	Events uint64 `json:"events"`
	// Pending counts events received but held until what they depend on
	// arrives (the causal buffer).
	Pending int `json:"pending"`
}

func involved(r Reader, kind, id string) (bool, error) {
	_, ok, err := r.Get(involvesKey(kind, id))
	return ok, err
}

func latestFields(en *Entity) (rev string, lamport uint64, at, by string) {
	l := en.Latest()
	return en.Rev(), l.Lamport, l.WallTime().Format(events.WallFormat), l.Actor
}

// tokenOf builds the read model of a token entity.
func tokenOf(r Reader, en *Entity) (*Token, error) {
	t := &Token{
		ID: en.ID, Path: en.Path(),
		Type: en.Value(FieldType), Value: en.Value(FieldValue), Description: en.Value(FieldDescription),
		Deprecated: en.Value(FieldDeprecated), Extensions: en.Value(FieldExtensions),
	}
	t.Rev, t.Lamport, t.UpdatedAt, t.UpdatedBy = latestFields(en)
	var err error
	if t.Conflicted, err = involved(r, events.KindToken, en.ID); err != nil {
		return nil, err
	}
	if t.ResolvedValue, err = resolveValue(r, t.Value, map[string]bool{t.Path: true}, 0); err != nil {
		return nil, err
	}
	return t, nil
}

func componentOf(r Reader, en *Entity) (*Component, error) {
	c := &Component{
		ID: en.ID, Name: en.Path(),
		Description: en.Value(FieldCompDesc), Props: en.Value(FieldProps),
		Variants: en.Value(FieldVariants), Tokens: en.Value(FieldTokens),
	}
	c.Rev, c.Lamport, c.UpdatedAt, c.UpdatedBy = latestFields(en)
	var err error
	c.Conflicted, err = involved(r, events.KindComponent, en.ID)
	return c, err
}

// maxAliasDepth bounds alias chains followed when resolving.
const maxAliasDepth = 32

// resolveValue replaces every alias in v (whole-value or inside composite
// values) with the resolved value of its target. It returns nil when an alias
// names no live token, loops, or nests deeper than maxAliasDepth.
func resolveValue(r Reader, v json.RawMessage, visiting map[string]bool, depth int) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	refs, err := dtcg.References(v)
	if err != nil || len(refs) == 0 {
		return v, nil
	}
	refs = rootless(refs)
	if depth >= maxAliasDepth {
		return nil, nil
	}
	resolved := map[string]json.RawMessage{}
	for _, p := range refs {
		if visiting[p] {
			return nil, nil
		}
		t, err := winnerAt(r, events.KindToken, p)
		if err != nil {
			return nil, err
		}
		if t == nil {
			return nil, nil
		}
		visiting[p] = true
		rv, err := resolveValue(r, t.Value(FieldValue), visiting, depth+1)
		delete(visiting, p)
		if err != nil || rv == nil {
			return nil, err
		}
		resolved[p] = rv
	}
	if p, ok := aliasTarget(v); ok {
		return resolved[p], nil
	}
	return substituteAliases(v, resolved)
}

// substituteAliases rewrites a composite JSON value, replacing each string
// that is a whole alias with its resolved value.
func substituteAliases(v json.RawMessage, resolved map[string]json.RawMessage) (json.RawMessage, error) {
	return mapAliases(v, func(target string) (any, bool) {
		rv, ok := resolved[strings.TrimSuffix(target, "."+dtcg.RootSegment)]
		return rv, ok
	})
}

// mapAliases returns the canonical form of the JSON value v with each
// string in it that is a whole alias "{target}" replaced by what fn gives
// for target (a JSON value as json.RawMessage, or any value encoding/json
// writes), when fn says so. Numbers are kept as written.
func mapAliases(v json.RawMessage, fn func(target string) (any, bool)) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case string:
			if len(t) > 2 && t[0] == '{' && t[len(t)-1] == '}' {
				if r, ok := fn(t[1 : len(t)-1]); ok {
					return r
				}
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		case map[string]any:
			for k := range t {
				t[k] = walk(t[k])
			}
		}
		return x
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(walk(x)); err != nil {
		return nil, err
	}
	return events.Canonicalize(b.Bytes())
}

// effectiveType returns a token's own $type, or for an alias without one,
// its target's effective type ("" when unknown).
func effectiveType(r Reader, en *Entity, depth int) (string, error) {
	if v := en.Value(FieldType); v != nil {
		return jsonString(v), nil
	}
	p, ok := aliasTarget(en.Value(FieldValue))
	if !ok || depth >= maxAliasDepth {
		return "", nil
	}
	t, err := winnerAt(r, events.KindToken, p)
	if err != nil || t == nil {
		return "", err
	}
	return effectiveType(r, t, depth+1)
}

// ReadToken returns the live token at path, or an ENOTFOUND error.
func ReadToken(r Reader, path string) (*Token, error) {
	en, err := winnerAt(r, events.KindToken, path)
	if err != nil {
		return nil, err
	}
	if en == nil {
		return nil, events.Errorf(events.ENOTFOUND, "no token %q in project %q", path, r.Project())
	}
	return tokenOf(r, en)
}

// ReadComponent returns the live component named name, or an ENOTFOUND error.
func ReadComponent(r Reader, name string) (*Component, error) {
	en, err := winnerAt(r, events.KindComponent, name)
	if err != nil {
		return nil, err
	}
	if en == nil {
		return nil, events.Errorf(events.ENOTFOUND, "no component %q in project %q", name, r.Project())
	}
	return componentOf(r, en)
}

// ReadProject returns the project, or an ENOTFOUND error when it was never
// created (or only its deletion is known).
func ReadProject(r Reader) (*Project, error) {
	b, ok, err := r.Get(entityKey(events.KindProject, r.Project()))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, events.Errorf(events.ENOTFOUND, "no project %q", r.Project())
	}
	en, err := decodeEntity(b)
	if err != nil {
		return nil, err
	}
	p := &Project{ID: r.Project(), Lamport: r.Lamport()}
	p.Name = en.StringValue(FieldName)
	first := en.Field(FieldExists).Writers[0]
	p.CreatedAt, p.CreatedBy = first.WallTime().Format(events.WallFormat), first.Actor
	if p.Counts.Counts, err = ReadCounts(r); err != nil {
		return nil, err
	}
	if p.Vector, err = r.Vector(); err != nil {
		return nil, err
	}
	p.Counts.Events = p.Vector.Total()
	if p.Counts.Pending, err = r.PendingCount(); err != nil {
		return nil, err
	}
	return p, nil
}

// Query selects tokens or components from a projection.
type Query struct {
	// Type keeps tokens whose effective $type is Type.
	Type string
	// Prefix keeps paths equal to Prefix or inside the group Prefix
	// ("color" keeps "color.base.blue", not "colorful").
	Prefix string
	// After is the cursor: results start after this path.
	After string
	// Limit caps the page; 0 means DefaultLimit, and MaxLimit is the most.
	Limit int
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// scanWinners calls fn with each path of kind selected by q and its winning
// entity, in path order, until fn returns false or an error.
func scanWinners(r Reader, kind string, q Query, fn func(path string, en *Entity) (bool, error)) error {
	prefix := strings.TrimSuffix(q.Prefix, ".")
	base := claimKindPrefix(kind)
	var after []byte
	if q.After != "" {
		after = claimKey(kind, q.After)
	}
	return r.Scan(append(base, prefix...), after, func(k, v []byte) error {
		path := string(k[len(base):])
		if prefix != "" && path != prefix && !strings.HasPrefix(path, prefix+".") {
			return nil
		}
		cl, err := decodeClaims(v)
		if err != nil || len(cl) == 0 {
			return err
		}
		b, ok, err := r.Get(entityKey(kind, cl[len(cl)-1].id))
		if err != nil || !ok {
			return err
		}
		en, err := decodeEntity(b)
		if err != nil {
			return err
		}
		more, err := fn(path, en)
		if err == nil && !more {
			err = events.StopScan
		}
		return err
	})
}

// ReadTokens returns one page of tokens selected by q, in path order, and
// the cursor of the next page ("" when this is the last).
func ReadTokens(r Reader, q Query) ([]*Token, string, error) {
	out := []*Token{}
	var next string
	err := scanWinners(r, events.KindToken, q, func(path string, en *Entity) (bool, error) {
		if q.Type != "" {
			typ, err := effectiveType(r, en, 0)
			if err != nil {
				return false, err
			}
			if typ != q.Type {
				return true, nil
			}
		}
		if len(out) == q.limit() {
			next = out[len(out)-1].Path
			return false, nil
		}
		t, err := tokenOf(r, en)
		if err != nil {
			return false, err
		}
		out = append(out, t)
		return true, nil
	})
	return out, next, err
}

// ReadComponents returns one page of components selected by q.
func ReadComponents(r Reader, q Query) ([]*Component, string, error) {
	out := []*Component{}
	var next string
	err := scanWinners(r, events.KindComponent, Query{Prefix: q.Prefix, After: q.After, Limit: q.Limit},
		func(path string, en *Entity) (bool, error) {
			if len(out) == q.limit() {
				next = out[len(out)-1].Name
				return false, nil
			}
			c, err := componentOf(r, en)
			if err != nil {
				return false, err
			}
			out = append(out, c)
			return true, nil
		})
	return out, next, err
}

// ReadConflicts returns the open conflicts, ordered by subject (kind of
// conflict, then entity or path).
func ReadConflicts(r Reader) ([]*Conflict, error) {
	out := []*Conflict{}
	err := r.Scan([]byte{tableConflict}, nil, func(k, v []byte) error {
		c := &Conflict{subject: string(k[1:])}
		if err := json.Unmarshal(v, c); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].subject < out[j].subject })
	return out, err
}

// ReadConflict returns the open conflict with id, or an ENOTFOUND error.
func ReadConflict(r Reader, id string) (*Conflict, error) {
	all, err := ReadConflicts(r)
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		if c.ID == id {
			return c, nil
		}
	}
	return nil, events.Errorf(events.ENOTFOUND, "no open conflict %q in project %q", id, r.Project())
}

// History returns the events of the live token or component at path, oldest
// first in total order.
func History(r Reader, kind, path string) ([]*events.Event, error) {
	en, err := winnerAt(r, kind, path)
	if err != nil {
		return nil, err
	}
	if en == nil {
		return nil, events.Errorf(events.ENOTFOUND, "no %s %q in project %q", kind, path, r.Project())
	}
	evs, err := r.EntityEvents(en.ID)
	if err != nil {
		return nil, err
	}
	out := evs[:0]
	for _, e := range evs {
		if e.Type.Kind() == kind {
			out = append(out, e)
		}
	}
	return out, nil
}

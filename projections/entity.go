package projections

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Field names. Token fields are the DTCG properties; a component's fields are
// its own; "path" is the token path or component name; "exists" is written by
// every event of an entity (true by a set, false by a delete) and is how a
// delete concurrent with an update is seen.
const (
	FieldPath        = "path"
	FieldExists      = "exists"
	FieldType        = "$type"
	FieldValue       = "$value"
	FieldDescription = "$description"
	FieldDeprecated  = "$deprecated"
	FieldExtensions  = "$extensions"
	FieldCompDesc    = "description"
	FieldProps       = "props"
	FieldVariants    = "variants"
	FieldTokens      = "tokens"
	FieldName        = "name"
)

// TokenFields are the fields a token event may write, besides path.
var TokenFields = []string{FieldType, FieldValue, FieldDescription, FieldDeprecated, FieldExtensions}

// ComponentFields are the fields a component event may write, besides path.
var ComponentFields = []string{FieldCompDesc, FieldProps, FieldVariants, FieldTokens}

// fieldAllowed reports whether an event of kind may write field.
func fieldAllowed(kind, field string) bool {
	switch kind {
	case events.KindToken:
		return field == FieldPath || contains(TokenFields, field)
	case events.KindComponent:
		return field == FieldPath || contains(ComponentFields, field)
	case events.KindProject:
		return field == FieldName
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Ref identifies an event and carries what conflicts show about it.
type Ref struct {
	ID      ulid.ULID `json:"id"`
	Lamport uint64    `json:"lamport"`
	Site    string    `json:"site"`
	Seq     uint64    `json:"seq"`
	Wall    int64     `json:"wall"` // Unix milliseconds
	Actor   string    `json:"actor"`
}

func refOf(e *events.Event) Ref {
	return Ref{ID: e.ID, Lamport: e.Lamport, Site: e.Site, Seq: e.Seq, Wall: e.Wall.UnixMilli(), Actor: e.Actor}
}

// Position returns the referenced event's place in the total order.
func (r Ref) Position() events.Position {
	return events.Position{Lamport: r.Lamport, Site: r.Site, Seq: r.Seq}
}

// WallTime returns the referenced event's wall time.
func (r Ref) WallTime() time.Time { return time.UnixMilli(r.Wall).UTC() }

// Write is one event's write of one field.
type Write struct {
	Ref
	Value json.RawMessage `json:"value"`
}

// Field is the state of one field: its causal frontier, the writes of it that
// no other write of it descends from, in total order. The last is the winner,
// whose value the projection shows. More than one write with different
// values is a conflict.
type Field struct {
	Name    string  `json:"name"`
	Writers []Write `json:"writers"`
}

// Winner returns the winning write.
func (f *Field) Winner() Write { return f.Writers[len(f.Writers)-1] }

// Conflicted reports whether the frontier holds different values.
func (f *Field) Conflicted() bool {
	for _, w := range f.Writers[:len(f.Writers)-1] {
		if !bytes.Equal(w.Value, f.Winner().Value) {
			return true
		}
	}
	return false
}

// Entity is the projected state of one token, component or project: a pure
// function of the set of its events, whatever order they came in.
type Entity struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Heads []Ref  `json:"heads"` // events no other event of the entity descends from, total order
	// Fields, sorted by name, include "exists" and "path".
	Fields []Field `json:"fields"`
}

// Field returns the named field, or nil.
func (en *Entity) Field(name string) *Field {
	i := sort.Search(len(en.Fields), func(i int) bool { return en.Fields[i].Name >= name })
	if i < len(en.Fields) && en.Fields[i].Name == name {
		return &en.Fields[i]
	}
	return nil
}

// Value returns the winning value of a field, or nil when the field is
// unset (never written, or written null).
func (en *Entity) Value(name string) json.RawMessage {
	f := en.Field(name)
	if f == nil {
		return nil
	}
	v := f.Winner().Value
	if string(v) == "null" {
		return nil
	}
	return v
}

// Exists reports whether the entity is live (its exists winner is true).
func (en *Entity) Exists() bool { return string(en.Value(FieldExists)) == "true" }

// claims reports whether the entity holds a path: it is live and has one.
// (Projects hold none; an entity whose creation wrote no path holds none.)
func (en *Entity) claims() bool {
	return en.Kind != events.KindProject && en.Exists() && en.Field(FieldPath) != nil && en.Path() != ""
}

// Path returns the winning path.
func (en *Entity) Path() string { return jsonString(en.Value(FieldPath)) }

// StringValue returns a field's winning value when it is a JSON string, else "".
func (en *Entity) StringValue(name string) string { return jsonString(en.Value(name)) }

// jsonString decodes a JSON string value ("" for anything else). Stored
// values are canonical: a string without escapes is its bytes between quotes.
func jsonString(v json.RawMessage) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return ""
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// Latest returns the head latest in total order: whose time and actor the
// projection shows as updatedAt/updatedBy.
func (en *Entity) Latest() Ref { return en.Heads[len(en.Heads)-1] }

// Rev returns the entity's revision: its head ids joined by "+" in id order.
// It changes with every event of the entity and is the same on every site
// that holds the same events. A writer that read rev and names its ids as
// parents has seen everything the projection showed.
func (en *Entity) Rev() string {
	ids := make([]string, len(en.Heads))
	for i, h := range en.Heads {
		ids[i] = h.ID.String()
	}
	sort.Strings(ids)
	return strings.Join(ids, "+")
}

// HeadIDs returns the ids of the heads, sorted: the parents of an event that
// descends from everything known of the entity.
func (en *Entity) HeadIDs() []ulid.ULID {
	ids := make([]ulid.ULID, len(en.Heads))
	for i, h := range en.Heads {
		ids[i] = h.ID
	}
	return events.SortParents(ids)
}

// ParseRev splits a rev into event ids.
func ParseRev(rev string) ([]ulid.ULID, error) {
	var ids []ulid.ULID
	for _, s := range strings.Split(rev, "+") {
		id, err := ulid.ParseStrict(s)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return events.SortParents(ids), nil
}

var (
	jsonTrue  = json.RawMessage("true")
	jsonFalse = json.RawMessage("false")
)

func existsValue(e *events.Event) json.RawMessage {
	if e.Type.IsDelete() {
		return jsonFalse
	}
	return jsonTrue
}

// descendsFromAll reports whether e's parents are exactly the entity's heads:
// then e descends from every event of the entity and can be applied on top.
func (en *Entity) descendsFromAll(e *events.Event) bool {
	if len(e.Parents) != len(en.Heads) {
		return false
	}
	heads := en.HeadIDs()
	for i := range heads {
		if heads[i] != e.Parents[i] {
			return false
		}
	}
	return true
}

// applyOnTop returns the state after e, which descends from every event of
// en (nil for a new entity): each field e writes has e as its only writer.
func applyOnTop(en *Entity, e *events.Event) *Entity {
	ref := refOf(e)
	out := &Entity{ID: e.Entity, Kind: e.Type.Kind(), Heads: []Ref{ref}}
	if en != nil {
		out.Fields = make([]Field, 0, len(en.Fields)+len(e.Changes))
		out.Fields = append(out.Fields, en.Fields...)
	}
	set := func(name string, v json.RawMessage) {
		w := []Write{{Ref: ref, Value: v}}
		if f := out.Field(name); f != nil {
			f.Writers = w
			return
		}
		out.Fields = append(out.Fields, Field{Name: name, Writers: w})
		sort.Slice(out.Fields, func(i, j int) bool { return out.Fields[i].Name < out.Fields[j].Name })
	}
	set(FieldExists, existsValue(e))
	for _, c := range e.Changes {
		set(c.Field, c.Value)
	}
	return out
}

// recompute returns the state of entity (kind, id) from all its events, in
// total order. It is the definition of the projection; applyOnTop is the fast
// path that agrees with it whenever the new event descends from every
// earlier one. Parents outside the given events are ignored.
func recompute(kind, id string, evs []*events.Event) *Entity {
	// Keep the entity's events of this kind (an id reused across kinds is
	// another entity).
	n := 0
	own := make([]*events.Event, 0, len(evs))
	for _, e := range evs {
		if e.Entity == id && e.Type.Kind() == kind {
			own = append(own, e)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	idx := make(map[ulid.ULID]int, n)
	for i, e := range own {
		idx[e.ID] = i
	}
	parents := make([][]int, n)
	hasChild := make([]bool, n)
	for i, e := range own {
		for _, p := range e.Parents {
			if j, ok := idx[p]; ok && j < i {
				parents[i] = append(parents[i], j)
				hasChild[j] = true
			}
		}
	}
	var heads []int
	for i := range own {
		if !hasChild[i] {
			heads = append(heads, i)
		}
	}
	// The fields any event writes, plus exists (written by all).
	names := map[string]bool{FieldExists: true}
	for _, e := range own {
		for _, c := range e.Changes {
			names[c.Field] = true
		}
	}
	valueOf := func(i int, name string) (json.RawMessage, bool) {
		if name == FieldExists {
			return existsValue(own[i]), true
		}
		return own[i].Changes.Get(name)
	}
	out := &Entity{ID: id, Kind: kind}
	for _, h := range heads {
		out.Heads = append(out.Heads, refOf(own[h]))
	}
	for name := range names {
		front := frontier(own, parents, heads, func(i int) bool { _, ok := valueOf(i, name); return ok })
		if len(front) == 0 {
			continue
		}
		f := Field{Name: name}
		for _, i := range front {
			v, _ := valueOf(i, name)
			f.Writers = append(f.Writers, Write{Ref: refOf(own[i]), Value: v})
		}
		out.Fields = append(out.Fields, f)
	}
	sort.Slice(out.Fields, func(i, j int) bool { return out.Fields[i].Name < out.Fields[j].Name })
	return out
}

// frontier returns, in total order, the events writing a field (writes(i))
// that no other writing event descends from. Events are in total order, so
// parents precede children. It walks back from the heads, stopping at the
// first write on each path, then drops any candidate that is an ancestor of
// another: O(n) for the walk, and a bounded walk per pair of candidates.
func frontier(evs []*events.Event, parents [][]int, heads []int, writes func(int) bool) []int {
	seen := make([]bool, len(evs))
	var cands []int
	stack := append([]int(nil), heads...)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[i] {
			continue
		}
		seen[i] = true
		if writes(i) {
			cands = append(cands, i)
			continue
		}
		stack = append(stack, parents[i]...)
	}
	sort.Ints(cands)
	if len(cands) < 2 {
		return cands
	}
	var out []int
	for a, ci := range cands {
		covered := false
		for _, cj := range cands[a+1:] {
			if isAncestor(parents, ci, cj) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, ci)
		}
	}
	return out
}

// isAncestor reports whether a is an ancestor of b (a < b in total order).
func isAncestor(parents [][]int, a, b int) bool {
	seen := map[int]bool{}
	stack := []int{b}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range parents[i] {
			if p == a {
				return true
			}
			if p > a && !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return false
}

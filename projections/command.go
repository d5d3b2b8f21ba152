package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections/dtcg"
	"github.com/oklog/ulid/v2"
)

// Operations a Change can make.
const (
	OpPut    = "put"
	OpDelete = "delete"
	OpRename = "rename"
)

// Change is one change requested of a project: create or update (put),
// delete, or rename a token or component. A batch of changes is applied
// atomically or not at all.
type Change struct {
	Op   string `json:"op"`   // put (default), delete, rename
	Kind string `json:"kind"` // token (default) or component
	Path string `json:"path"` // token path or component name
	To   string `json:"to,omitempty"`
	// Data is the token's DTCG properties ($type, $value, $description,
	// $deprecated, $extensions) or the component's (description, props,
	// variants, tokens), for put.
	Data json.RawMessage `json:"data,omitempty"`
	// IfMatch, when set, must equal the entity's current rev ("*": the
	// entity must exist).
	IfMatch string `json:"ifMatch,omitempty"`
}

// Result says what one change did.
type Result struct {
	Op        string     `json:"op"`
	Kind      string     `json:"kind"`
	Path      string     `json:"path"`
	Created   bool       `json:"created"`
	Event     *ulid.ULID `json:"event"` // nil when the change changed nothing
	Token     *Token     `json:"token,omitempty"`
	Component *Component `json:"component,omitempty"`
	entity    string     // the entity's id
	event     *events.Event
}

// readOnlyFields may appear in a put's data (a client sending back what it
// read) and are ignored.
var readOnlyFields = map[string]bool{
	"id": true, "path": true, "name": true, "rev": true, "lamport": true, "updatedAt": true,
	"updatedBy": true, "resolvedValue": true, "conflicted": true,
}

func invalid(format string, args ...any) error {
	return events.Errorf(events.EINVALID, format, args...)
}

// parseData reads a put's data into canonical field values (absent fields
// are left out; null counts as absent) and validates each field on its own.
func parseData(kind string, data json.RawMessage) (map[string]json.RawMessage, error) {
	if len(data) == 0 {
		return nil, invalid("put needs data")
	}
	canon, err := events.Canonicalize(data)
	if err != nil {
		return nil, events.WrapError(events.EMALFORMED, "data is not valid JSON: "+err.Error(), err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(canon, &raw); err != nil || raw == nil {
		return nil, invalid("data must be a JSON object")
	}
	return checkFields(kind, raw)
}

// checkFields checks the canonical values of a put's data, member by
// member, and returns the fields it writes (read-only ones and nulls
// dropped).
func checkFields(kind string, raw map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	fields := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		switch {
		case readOnlyFields[k]:
			continue
		case !fieldAllowed(kind, k) || k == FieldPath:
			return nil, invalid("%s has no property %q", kind, k)
		case string(v) == "null":
			continue
		}
		fields[k] = v
	}
	if kind == events.KindToken {
		if err := checkTokenFields(fields); err != nil {
			return nil, err
		}
		// One spelling per reference in the store: "{g}", not "{g.$root}".
		if v := fields[FieldValue]; bytes.Contains(v, []byte(rootSuffix+"}")) {
			v, err := rewriteReferences(v, storedReference)
			if err != nil {
				return nil, invalid("$value: %v", err)
			}
			fields[FieldValue] = v
		}
		return fields, nil
	}
	return fields, checkComponentFields(fields)
}

func checkTokenFields(f map[string]json.RawMessage) error {
	var typ string
	if v, ok := f[FieldType]; ok {
		if err := json.Unmarshal(v, &typ); err != nil || !dtcg.IsType(typ) {
			return invalid("$type must be one of %s", strings.Join(dtcg.Types, ", "))
		}
	}
	v, ok := f[FieldValue]
	if !ok {
		return invalid("$value is required")
	}
	if _, err := dtcg.References(v); err != nil {
		return invalid("$value: %v", err)
	}
	if _, alias := dtcg.ParseAlias(v); !alias {
		if typ == "" {
			return invalid("$type is required unless $value is an alias")
		}
		if err := dtcg.ValidateValue(typ, v); err != nil {
			return invalid("%v", err)
		}
	}
	if d, ok := f[FieldDescription]; ok && (len(d) == 0 || d[0] != '"') {
		return invalid("$description must be a string")
	}
	if d, ok := f[FieldDeprecated]; ok && !(string(d) == "true" || string(d) == "false" || d[0] == '"') {
		return invalid("$deprecated must be a boolean or a string")
	}
	if x, ok := f[FieldExtensions]; ok && x[0] != '{' {
		return invalid("$extensions must be an object")
	}
	return nil
}

func checkComponentFields(f map[string]json.RawMessage) error {
	if d, ok := f[FieldCompDesc]; ok && d[0] != '"' {
		return invalid("description must be a string")
	}
	if p, ok := f[FieldProps]; ok && p[0] != '{' {
		return invalid("props must be an object")
	}
	if v, ok := f[FieldVariants]; ok && v[0] != '{' && v[0] != '[' {
		return invalid("variants must be an object or an array")
	}
	if t, ok := f[FieldTokens]; ok {
		var paths []string
		if err := json.Unmarshal(t, &paths); err != nil {
			return invalid("tokens must be an array of token paths")
		}
		seen := map[string]bool{}
		for _, p := range paths {
			if err := dtcg.ValidatePath(p); err != nil {
				return invalid("tokens: %v", err)
			}
			if seen[p] {
				return invalid("tokens: %q appears twice", p)
			}
			seen[p] = true
		}
	}
	return nil
}

// normalize fills defaults and checks the shape of a change.
func (c *Change) normalize() error {
	if c.Op == "" {
		c.Op = OpPut
	}
	if c.Kind == "" {
		c.Kind = events.KindToken
	}
	if c.Kind != events.KindToken && c.Kind != events.KindComponent {
		return invalid("kind must be token or component, not %q", c.Kind)
	}
	if err := checkPath(c.Kind, c.Path); err != nil {
		return invalid("%v", err)
	}
	switch c.Op {
	case OpPut, OpDelete:
	case OpRename:
		if err := checkPath(c.Kind, c.To); err != nil {
			return invalid("to: %v", err)
		}
	default:
		return invalid("op must be put, delete or rename, not %q", c.Op)
	}
	return nil
}

// decide turns one change (normalized; for a put, its parsed data) into a
// draft against the current state of tx, or nil when it changes nothing.
func decide(tx Tx, c *Change, fields map[string]json.RawMessage, actor string) (*events.Draft, *Result, error) {
	res := &Result{Op: c.Op, Kind: c.Kind, Path: c.Path}
	cur, err := winnerAt(tx, c.Kind, c.Path)
	if err != nil {
		return nil, nil, err
	}
	if cur != nil {
		res.entity = cur.ID
	}
	if c.IfMatch != "" && (cur == nil || (c.IfMatch != "*" && cur.Rev() != c.IfMatch)) {
		return nil, nil, events.Errorf(events.EPRECONDITION, "%s %q is not at rev %q", c.Kind, c.Path, c.IfMatch)
	}
	setType, delType := events.TokenSet, events.TokenDelete
	if c.Kind == events.KindComponent {
		setType, delType = events.ComponentSet, events.ComponentDelete
	}
	notFound := func() error {
		return events.Errorf(events.ENOTFOUND, "no %s %q in project %q", c.Kind, c.Path, tx.Project())
	}
	switch c.Op {
	case OpDelete:
		if cur == nil {
			return nil, nil, notFound()
		}
		return &events.Draft{Type: delType, Entity: cur.ID, Path: c.Path, Parents: cur.HeadIDs(), Actor: actor}, res, nil

	case OpRename:
		if cur == nil {
			return nil, nil, notFound()
		}
		if c.To == c.Path {
			return nil, res, nil
		}
		taken, err := winnerAt(tx, c.Kind, c.To)
		if err != nil {
			return nil, nil, err
		}
		if taken != nil {
			return nil, nil, events.Errorf(events.ECONFLICT, "%s %q already exists", c.Kind, c.To)
		}
		res.Path = c.To
		return &events.Draft{Type: setType, Entity: cur.ID, Path: c.To, Parents: cur.HeadIDs(), Actor: actor,
			Changes: events.Changes{{Field: FieldPath, Value: events.JSONString(c.To)}}}, res, nil
	}

	names := TokenFields
	if c.Kind == events.KindComponent {
		names = ComponentFields
	}
	if cur == nil {
		res.Created = true
		ch := events.Changes{{Field: FieldPath, Value: events.JSONString(c.Path)}}
		for _, n := range names {
			if v, ok := fields[n]; ok {
				ch = append(ch, events.Change{Field: n, Value: v})
			}
		}
		return &events.Draft{Type: setType, Path: c.Path, Actor: actor, Changes: events.SortChanges(ch)}, res, nil
	}
	// An update writes what differs from the winner, and every field in
	// conflict: a put states the whole entity, descends from everything
	// this site has of it, and so settles its open value conflicts.
	var ch events.Changes
	for _, n := range names {
		v, ok := fields[n]
		if !ok {
			v = json.RawMessage("null")
		}
		f := cur.Field(n)
		old := json.RawMessage("null")
		if f != nil {
			old = f.Winner().Value
		}
		if !bytes.Equal(v, old) || (f != nil && f.Conflicted()) {
			ch = append(ch, events.Change{Field: n, Value: v})
		}
	}
	pathField := cur.Field(FieldPath)
	if pathField.Conflicted() {
		ch = append(ch, events.Change{Field: FieldPath, Value: events.JSONString(c.Path)})
	}
	if len(ch) == 0 && !cur.Field(FieldExists).Conflicted() {
		return nil, res, nil
	}
	return &events.Draft{Type: setType, Entity: cur.ID, Path: c.Path, Parents: cur.HeadIDs(), Actor: actor,
		Changes: events.SortChanges(ch)}, res, nil
}

// checkReferences checks, after a batch, what its changes mean for
// references: every alias and component token names a live token, no alias
// loops, an alias with a $type names a token of that type, and no live
// entity is left naming a path the batch removed.
func checkReferences(tx Tx, touched map[string]bool, vacated map[string]bool) error {
	for _, er := range slices.Sorted(maps.Keys(touched)) {
		kind, id := splitEntityRef(er)
		b, ok, err := tx.Get(entityKey(kind, id))
		if err != nil || !ok {
			return err
		}
		en, err := decodeEntity(b)
		if err != nil {
			return err
		}
		if !en.claims() {
			continue
		}
		for _, p := range references(en) {
			t, err := winnerAt(tx, events.KindToken, p)
			if err != nil {
				return err
			}
			if t == nil {
				return invalid("%s %q names token {%s}, which does not exist", kind, en.Path(), p)
			}
		}
		if kind != events.KindToken {
			continue
		}
		loop, err := aliasCycle(tx, en)
		if err != nil {
			return err
		}
		if loop != nil {
			return invalid("alias cycle: %s", strings.Join(loop, " -> "))
		}
		if target, ok := aliasTarget(en.Value(FieldValue)); ok && en.Value(FieldType) != nil {
			own := en.StringValue(FieldType)
			t, _ := winnerAt(tx, events.KindToken, target)
			theirs, err := effectiveType(tx, t, 0)
			if err != nil {
				return err
			}
			if theirs != "" && theirs != own {
				return invalid("token %q has $type %s but its alias {%s} is a %s", en.Path(), own, target, theirs)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(vacated)) {
		if t, err := winnerAt(tx, events.KindToken, p); err != nil || t != nil {
			if err != nil {
				return err
			}
			continue // the path is held again
		}
		refs, err := getStrings(tx, refKey(p))
		if err != nil {
			return err
		}
		var users []string
		for _, u := range refs {
			kind, id := splitEntityRef(u)
			b, ok, err := tx.Get(entityKey(kind, id))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			en, err := decodeEntity(b)
			if err != nil {
				return err
			}
			users = append(users, fmt.Sprintf("%s %q", kind, en.Path()))
		}
		if len(users) > 0 {
			sort.Strings(users)
			return events.Errorf(events.ECONFLICT, "token %q is still used by %s", p, strings.Join(users, ", "))
		}
	}
	return nil
}

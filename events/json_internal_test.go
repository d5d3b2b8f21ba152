package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// referenceEvent is the contract's shape as encoding/json reads it: the
// reference the one-pass parser is checked against.
type referenceEvent struct {
	ID       string          `json:"id"` // "" is no id, as in the parser (Validate refuses it)
	Project  string          `json:"project"`
	Site     string          `json:"site"`
	Seq      uint64          `json:"seq"`
	Lamport  uint64          `json:"lamport"`
	Wall     *string         `json:"wall"` // present but empty is no time: refused
	Actor    string          `json:"actor"`
	Type     string          `json:"type"`
	Entity   string          `json:"entity"`
	Path     string          `json:"path"`
	Parents  []string        `json:"parents"`
	Changes  json.RawMessage `json:"changes"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

// referenceParse reads b with Canonicalize (which refuses duplicate keys,
// bad UTF-8, deep nesting) then encoding/json, and converts each member as
// the contract says.
func referenceParse(b []byte) (*Event, error) {
	canon, err := Canonicalize(b)
	if err != nil {
		return nil, err
	}
	if canon[0] != '{' {
		return nil, fmt.Errorf("not an object") // encoding/json reads null as nothing
	}
	var keys map[string]json.RawMessage // encoding/json matches names without case: the contract does not
	if err := json.Unmarshal(canon, &keys); err != nil {
		return nil, err
	}
	for k := range keys {
		if _, ok := eventMembers[k]; !ok {
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	var r referenceEvent
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	e := &Event{Project: r.Project, Site: r.Site, Seq: r.Seq, Lamport: r.Lamport, Actor: r.Actor,
		Type: Type(r.Type), Entity: r.Entity, Path: r.Path}
	if r.ID != "" {
		if e.ID, err = ulid.ParseStrict(r.ID); err != nil {
			return nil, err
		}
	}
	if r.Wall != nil {
		wall, err := time.Parse(time.RFC3339Nano, *r.Wall)
		if err != nil {
			return nil, err
		}
		e.Wall = wall.UTC().Truncate(time.Millisecond)
	}
	for _, p := range r.Parents {
		id, err := ulid.ParseStrict(p)
		if err != nil {
			return nil, err
		}
		e.Parents = append(e.Parents, id)
	}
	if len(r.Changes) > 0 && string(r.Changes) != "null" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r.Changes, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			e.Changes = append(e.Changes, Change{Field: k, Value: v})
		}
		sortChanges(e.Changes)
	}
	if err := e.PrevHash.UnmarshalText([]byte(r.PrevHash)); err != nil {
		return nil, err
	}
	if err := e.Hash.UnmarshalText([]byte(r.Hash)); err != nil {
		return nil, err
	}
	return e, nil
}

func sortChanges(c Changes) {
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].Field < c[j-1].Field; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}

// FuzzParseEventJSON: the one-pass parser and the reference accept the
// same inputs and read them to the same event (but for a wall time written
// without one, which the reference leaves zero as well, and Wall's location).
func FuzzParseEventJSON(f *testing.F) {
	wall := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	e := Stamp(Draft{Type: TokenSet, Entity: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Path: "color.a",
		Parents: []ulid.ULID{ulid.MustParse("01ARZ3NDEKTSV4RRFFQ69G5FAV")},
		Changes: Changes{{Field: "$value", Value: json.RawMessage(`"#fff"`)}}, Actor: "ann"},
		"design", "paris", Head{Seq: 3, Hash: Hash{1}}, 9, ulid.MustParse("01ARZ3NDEKTSV4RRFFQ69G5FAW"), wall)
	f.Add(e.AppendJSON(nil))
	f.Add([]byte(`{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","changes":{"a":[1,{"b":null}]},"parents":null,"seq":1e2}`))
	f.Add([]byte(`{"site":"a","site":"b"}`))
	f.Add([]byte(`{"changes":{"a":1,"a":2}}`))
	f.Add([]byte(` { "seq" : 18446744073709551615 , "project" : "\u00e9\ud83d\ude00" } `))
	f.Fuzz(func(t *testing.T, b []byte) {
		mine, errMine := parseEventJSON(b)
		ref, errRef := referenceParse(b)
		if errMine == nil && (mine.Seq > 1<<53 || mine.Lamport > 1<<53) {
			return // the reference rounds such numbers (Canonicalize reads float64s): it is wrong there
		}
		if (errMine == nil) != (errRef == nil) {
			t.Fatalf("parser: %v; reference: %v", errMine, errRef)
		}
		if errMine != nil {
			return
		}
		if a, r := fmt.Sprintf("%+v", *mine), fmt.Sprintf("%+v", *ref); a != r {
			t.Fatalf("parser and reference disagree:\n%s\n%s", a, r)
		}
	})
}

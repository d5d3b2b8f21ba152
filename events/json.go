package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// WallFormat is how wall times appear in JSON: UTC with milliseconds.
const WallFormat = "2006-01-02T15:04:05.000Z"

// eventJSON is the contract's shape of an event (CONTRACT.md §2).
type eventJSON struct {
	ID       ulid.ULID   `json:"id"`
	Project  string      `json:"project"`
	Site     string      `json:"site"`
	Seq      uint64      `json:"seq"`
	Lamport  uint64      `json:"lamport"`
	Wall     string      `json:"wall"`
	Actor    string      `json:"actor"`
	Type     Type        `json:"type"`
	Entity   string      `json:"entity"`
	Path     string      `json:"path"`
	Parents  []ulid.ULID `json:"parents"`
	Changes  Changes     `json:"changes"`
	PrevHash Hash        `json:"prevHash"`
	Hash     Hash        `json:"hash"`
}

// MarshalJSON encodes e in the contract's shape. The output is deterministic.
func (e *Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{
		ID: e.ID, Project: e.Project, Site: e.Site, Seq: e.Seq, Lamport: e.Lamport,
		Wall: e.Wall.UTC().Format(WallFormat), Actor: e.Actor, Type: e.Type,
		Entity: e.Entity, Path: e.Path, Parents: e.Parents, Changes: e.Changes,
		PrevHash: e.PrevHash, Hash: e.Hash,
	}
	if j.Parents == nil {
		j.Parents = []ulid.ULID{}
	}
	if j.Changes == nil {
		j.Changes = Changes{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// UnmarshalJSON decodes the contract's shape. Use ParseJSON for input from
// outside: it is stricter.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	return e.fromJSON(&j)
}

func (e *Event) fromJSON(j *eventJSON) error {
	wall, err := time.Parse(time.RFC3339Nano, j.Wall)
	if err != nil {
		return fmt.Errorf("wall: %w", err)
	}
	*e = Event{
		ID: j.ID, Project: j.Project, Site: j.Site, Seq: j.Seq, Lamport: j.Lamport,
		Wall: wall.UTC().Truncate(time.Millisecond), Actor: j.Actor, Type: j.Type,
		Entity: j.Entity, Path: j.Path, Parents: j.Parents, Changes: j.Changes,
		PrevHash: j.PrevHash, Hash: j.Hash,
	}
	if len(e.Parents) == 0 {
		e.Parents = nil
	}
	if len(e.Changes) == 0 {
		e.Changes = nil
	}
	return nil
}

// ParseJSON decodes one event from untrusted JSON: it refuses unknown fields,
// duplicate keys, invalid UTF-8, deep nesting and anything Validate refuses,
// and checks that Hash matches the content. The error is an *Error with code
// EMALFORMED (cannot be read) or EINVALID (read, but wrong).
func ParseJSON(b []byte) (*Event, error) {
	canon, err := Canonicalize(b)
	if err != nil {
		return nil, WrapError(EMALFORMED, "event is not valid JSON", err)
	}
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	var j eventJSON
	if err := dec.Decode(&j); err != nil {
		return nil, WrapError(EMALFORMED, "event does not have the event shape", err)
	}
	e := &Event{}
	if err := e.fromJSON(&j); err != nil {
		return nil, WrapError(EMALFORMED, "event has a bad wall time", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if !e.VerifyHash() {
		return nil, Errorf(EINVALID, "event %s: hash does not match its content", e.ID)
	}
	return e, nil
}

package events

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// WallFormat is how wall times appear in JSON: UTC with milliseconds.
const WallFormat = "2006-01-02T15:04:05.000Z"

// MarshalJSON encodes e in the contract's shape. The output is deterministic.
func (e *Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// AppendJSON appends e in the contract's shape (CONTRACT.md §2): members in
// a fixed order, strings escaped minimally, changes as their canonical
// values, parents and changes present even when empty. ParseJSON reads it
// back to the same event.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, e.ID.String()...)
	b = append(b, `","project":`...)
	b = appendJSONString(b, e.Project)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, e.Site)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"lamport":`...)
	b = strconv.AppendUint(b, e.Lamport, 10)
	b = append(b, `,"wall":"`...)
	b = e.Wall.UTC().AppendFormat(b, WallFormat)
	b = append(b, `","actor":`...)
	b = appendJSONString(b, e.Actor)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, string(e.Type))
	b = append(b, `,"entity":`...)
	b = appendJSONString(b, e.Entity)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"parents":[`...)
	for i, p := range e.Parents {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, p.String()...)
		b = append(b, '"')
	}
	b = append(b, `],"changes":{`...)
	for i, c := range e.Changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.Field)
		b = append(b, ':')
		b = append(b, c.Value...)
	}
	b = append(b, `},"prevHash":"`...)
	b = hex.AppendEncode(b, e.PrevHash[:])
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, e.Hash[:])
	return append(b, `"}`...)
}

// UnmarshalJSON decodes the contract's shape. Use ParseJSON for input from
// outside: it also validates the event and checks its hash.
func (e *Event) UnmarshalJSON(b []byte) error {
	got, err := parseEventJSON(b)
	if err != nil {
		return err
	}
	*e = *got
	return nil
}

// ParseJSON decodes one event from untrusted JSON: it refuses unknown fields,
// duplicate keys, invalid UTF-8, deep nesting and anything Validate refuses,
// and checks that Hash matches the content. The error is an *Error with code
// EMALFORMED (cannot be read) or EINVALID (read, but wrong).
func ParseJSON(b []byte) (*Event, error) {
	e, err := parseEventJSON(b)
	if err != nil {
		return nil, WrapError(EMALFORMED, "event is not an event in JSON: "+err.Error(), err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if !e.VerifyHash() {
		return nil, Errorf(EINVALID, "event %s: hash does not match its content", e.ID)
	}
	return e, nil
}

// parseEventJSON reads the contract's shape in one pass: members in any
// order, each known at most once, none unknown; null reads as empty; the
// values of changes are canonicalized as they are read.
func parseEventJSON(b []byte) (*Event, error) {
	p := canonParser{src: b}
	p.skipSpace()
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return nil, p.errorf("an event is a JSON object")
	}
	p.pos++
	e := &Event{}
	seen := 0
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
	} else {
		for {
			p.skipSpace()
			if p.pos >= len(p.src) || p.src[p.pos] != '"' {
				return nil, p.errorf("object key must be a string")
			}
			key, err := p.str()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.pos >= len(p.src) || p.src[p.pos] != ':' {
				return nil, p.errorf("missing ':' after object key")
			}
			p.pos++
			p.skipSpace()
			bit, ok := eventMembers[key]
			if !ok {
				return nil, fmt.Errorf("unknown field %q", key)
			}
			if seen&bit != 0 {
				return nil, fmt.Errorf("duplicate object key %q", key)
			}
			seen |= bit
			if err := p.eventMember(e, key); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			p.skipSpace()
			if p.pos >= len(p.src) {
				return nil, p.errorf("unterminated object")
			}
			if p.src[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.src[p.pos] == '}' {
				p.pos++
				break
			}
			return nil, p.errorf("expected ',' or '}' in object")
		}
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected data after the value")
	}
	if len(e.Parents) == 0 {
		e.Parents = nil
	}
	if len(e.Changes) == 0 {
		e.Changes = nil
	}
	return e, nil
}

var eventMembers = map[string]int{
	"id": 1 << 0, "project": 1 << 1, "site": 1 << 2, "seq": 1 << 3, "lamport": 1 << 4,
	"wall": 1 << 5, "actor": 1 << 6, "type": 1 << 7, "entity": 1 << 8, "path": 1 << 9,
	"parents": 1 << 10, "changes": 1 << 11, "prevHash": 1 << 12, "hash": 1 << 13,
}

// null consumes a null, and says whether there was one.
func (p *canonParser) null() bool {
	if bytes.HasPrefix(p.src[p.pos:], []byte("null")) {
		p.pos += 4
		return true
	}
	return false
}

func (p *canonParser) stringValue() (string, error) {
	if p.null() {
		return "", nil
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '"' {
		return "", p.errorf("expected a string")
	}
	return p.str()
}

func (p *canonParser) uintValue() (uint64, error) {
	if p.null() {
		return 0, nil
	}
	if p.pos >= len(p.src) || !(p.src[p.pos] == '-' || p.src[p.pos] >= '0' && p.src[p.pos] <= '9') {
		return 0, p.errorf("expected a number")
	}
	start := p.pos
	canon, err := p.number(nil)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(p.src[start:p.pos]), 10, 64)
	if err != nil { // 1e2 or 100.0: an integer all the same
		if v, err = strconv.ParseUint(string(canon), 10, 64); err != nil {
			return 0, p.errorf("expected an unsigned integer")
		}
	}
	return v, nil
}

func (p *canonParser) eventMember(e *Event, key string) error {
	var err error
	switch key {
	case "project":
		e.Project, err = p.stringValue()
	case "site":
		e.Site, err = p.stringValue()
	case "actor":
		e.Actor, err = p.stringValue()
	case "entity":
		e.Entity, err = p.stringValue()
	case "path":
		e.Path, err = p.stringValue()
	case "type":
		var t string
		t, err = p.stringValue()
		e.Type = Type(t)
	case "seq":
		e.Seq, err = p.uintValue()
	case "lamport":
		e.Lamport, err = p.uintValue()
	case "id":
		var s string
		if s, err = p.stringValue(); err == nil && s != "" {
			e.ID, err = ulid.ParseStrict(s)
		}
	case "wall":
		var s string
		if s, err = p.stringValue(); err == nil {
			var wall time.Time
			if wall, err = time.Parse(time.RFC3339Nano, s); err == nil {
				e.Wall = wall.UTC().Truncate(time.Millisecond)
			}
		}
	case "prevHash", "hash":
		var s string
		if s, err = p.stringValue(); err == nil {
			h := &e.Hash
			if key == "prevHash" {
				h = &e.PrevHash
			}
			err = h.UnmarshalText([]byte(s))
		}
	case "parents":
		err = p.parents(e)
	case "changes":
		err = p.changes(e)
	}
	return err
}

func (p *canonParser) parents(e *Event) error {
	if p.null() {
		return nil
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '[' {
		return p.errorf("expected an array")
	}
	p.pos++
	for i := 0; ; i++ {
		p.skipSpace()
		if p.pos >= len(p.src) {
			return p.errorf("unterminated array")
		}
		if p.src[p.pos] == ']' && i == 0 {
			p.pos++
			return nil
		}
		if i > 0 {
			switch p.src[p.pos] {
			case ',':
				p.pos++
				p.skipSpace()
			case ']':
				p.pos++
				return nil
			default:
				return p.errorf("expected ',' or ']' in array")
			}
		}
		if i >= MaxParents {
			return p.errorf("more than %d parents", MaxParents)
		}
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return p.errorf("a parent is an id")
		}
		s, err := p.str()
		if err != nil {
			return err
		}
		id, err := ulid.ParseStrict(s)
		if err != nil {
			return err
		}
		e.Parents = append(e.Parents, id)
	}
}

func (p *canonParser) changes(e *Event) error {
	if p.null() {
		return nil
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return p.errorf("expected an object")
	}
	members, err := p.members(0)
	if err != nil {
		return err
	}
	e.Changes = make(Changes, len(members))
	for i, m := range members {
		e.Changes[i] = Change{Field: m.Key, Value: m.Value}
	}
	return nil
}

package events

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Type names what an event does. The prefix before the dot is the kind of
// entity it concerns.
type Type string

// The event types. A "set" event writes the fields named in its Changes and
// (implicitly) marks the entity as existing; a "delete" event marks it deleted
// and writes no field.
const (
	ProjectCreate   Type = "project.create"
	ProjectUpdate   Type = "project.update"
	TokenSet        Type = "token.set"
	TokenDelete     Type = "token.delete"
	ComponentSet    Type = "component.set"
	ComponentDelete Type = "component.delete"
)

// Kinds of entity.
const (
	KindProject   = "project"
	KindToken     = "token"
	KindComponent = "component"
)

// Kind returns the kind of entity the type concerns, or "" for an unknown type.
func (t Type) Kind() string {
	switch t {
	case ProjectCreate, ProjectUpdate:
		return KindProject
	case TokenSet, TokenDelete:
		return KindToken
	case ComponentSet, ComponentDelete:
		return KindComponent
	}
	return ""
}

// IsDelete reports whether the type deletes its entity.
func (t Type) IsDelete() bool { return t == TokenDelete || t == ComponentDelete }

// Hash is a SHA-256 digest. The zero Hash is the prevHash of a site's first
// event in a project.
type Hash [32]byte

// IsZero reports whether h is the zero hash.
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h in lower-case hex, or "" for the zero hash.
func (h Hash) String() string {
	if h.IsZero() {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// MarshalText encodes h as String does.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText accepts 64 hex digits, or "" for the zero hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	if len(b) != 64 {
		return fmt.Errorf("hash must be 64 hex digits, got %d characters", len(b))
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	return nil
}

// Change is one field written by an event. Value is canonical JSON (see
// Canonicalize); the JSON literal null means the field is unset.
type Change struct {
	Field string
	Value json.RawMessage
}

// Changes is the set of fields an event writes, sorted by Field with no field
// twice. It encodes to and from a JSON object.
type Changes []Change

// Get returns the value written to field, and whether the field is written.
func (c Changes) Get(field string) (json.RawMessage, bool) {
	i := sort.Search(len(c), func(i int) bool { return c[i].Field >= field })
	if i < len(c) && c[i].Field == field {
		return c[i].Value, true
	}
	return nil, false
}

// MarshalJSON encodes the changes as a JSON object in field order.
func (c Changes) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, ch := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, ch.Field)
		b.WriteByte(':')
		b.Write(ch.Value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes a JSON object, canonicalizing every value and
// refusing duplicate fields, invalid UTF-8 and excessive nesting.
func (c *Changes) UnmarshalJSON(b []byte) error {
	canon, err := Canonicalize(b)
	if err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	// Every member of a canonical object is itself canonical.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(canon, &m); err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	out := make(Changes, 0, len(m))
	for k, v := range m {
		out = append(out, Change{Field: k, Value: v})
	}
	*c = SortChanges(out)
	return nil
}

// Event is one immutable change in a project's log. Every field but Hash is
// covered by Hash (see Encode). Events are created by a site (Stamp) or
// received from elsewhere; once appended to a Log they are never rewritten.
type Event struct {
	ID      ulid.ULID // globally unique; dedup key
	Project string    // the unit of history, same id on every site
	Site    string    // the site that created the event
	Seq     uint64    // 1, 2, 3... per (project, site), without gaps
	Lamport uint64    // > every Lamport of the events it depends on
	Wall    time.Time // the creating site's wall clock, UTC, millisecond precision; evidence only
	Actor   string    // who made the change (an API key's name)
	Type    Type
	Entity  string      // the id of the token, component or project concerned
	Path    string      // the entity's path (token path, component name, project id) after the event
	Parents []ulid.ULID // the entity's heads as the writer saw them; sorted, unique
	Changes Changes     // the fields written
	// PrevHash is the Hash of the same site's previous event in the project
	// (Seq-1), zero for Seq 1.
	PrevHash Hash
	// Hash is SHA-256 over Encode's canonical bytes.
	Hash Hash
}

// Position is an event's place in the project's total order. The order
// (Lamport, Site, Seq) extends causal order and is the same on every site.
type Position struct {
	Lamport uint64
	Site    string
	Seq     uint64
}

// Position returns e's place in the total order.
func (e *Event) Position() Position { return Position{e.Lamport, e.Site, e.Seq} }

// Compare orders positions: negative when p comes before q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Lamport != q.Lamport:
		if p.Lamport < q.Lamport {
			return -1
		}
		return 1
	case p.Site != q.Site:
		if p.Site < q.Site {
			return -1
		}
		return 1
	case p.Seq != q.Seq:
		if p.Seq < q.Seq {
			return -1
		}
		return 1
	}
	return 0
}

// Limits on the envelope, checked by Validate.
const (
	MaxActorLen   = 128
	MaxPathLen    = 512
	MaxParents    = 256
	MaxChanges    = 64
	MaxFieldLen   = 64
	MaxValueBytes = 1 << 20
	// MaxChangesBytes bounds the values of one event together, so that any
	// event fits one line of an NDJSON transport (2 MiB) and one message of
	// the embedded JetStream.
	MaxChangesBytes = 3 << 19
)

func lowerAlnumDash(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidSite reports whether s is a valid site id: [a-z0-9-]{1,32}.
func ValidSite(s string) bool { return len(s) >= 1 && len(s) <= 32 && lowerAlnumDash(s) }

// ValidProject reports whether p is a valid project id: a lower-case letter or
// digit, then up to 63 lower-case letters, digits or hyphens. Project ids are
// used in NATS subjects and storage keys, so nothing else is allowed.
func ValidProject(p string) bool {
	return len(p) >= 1 && len(p) <= 64 && p[0] != '-' && lowerAlnumDash(p)
}

// Validate checks the envelope's structure: ids, sizes, sorted unique parents
// and changes, a known type. It does not check the hash, the chain, or what
// the changes mean for the entity (that is the projection's job).
func (e *Event) Validate() error {
	bad := func(format string, args ...any) error {
		return Errorf(EINVALID, "event %s: %s", e.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case e.ID.IsZero():
		return bad("id is missing")
	case !ValidProject(e.Project):
		return bad("invalid project id %q", e.Project)
	case !ValidSite(e.Site):
		return bad("invalid site id %q", e.Site)
	case e.Seq == 0:
		return bad("seq must be at least 1")
	case e.Lamport == 0:
		return bad("lamport must be at least 1")
	case e.Type.Kind() == "":
		return bad("unknown type %q", e.Type)
	case e.Entity == "" || len(e.Entity) > 64 || !utf8.ValidString(e.Entity):
		return bad("invalid entity id")
	case len(e.Actor) > MaxActorLen || !utf8.ValidString(e.Actor) || hasControl(e.Actor):
		return bad("invalid actor")
	case len(e.Path) > MaxPathLen || !utf8.ValidString(e.Path):
		return bad("invalid path")
	case len(e.Parents) > MaxParents:
		return bad("more than %d parents", MaxParents)
	case len(e.Changes) > MaxChanges:
		return bad("more than %d changes", MaxChanges)
	}
	for i := 1; i < len(e.Parents); i++ {
		if e.Parents[i-1].Compare(e.Parents[i]) >= 0 {
			return bad("parents must be sorted and unique")
		}
	}
	total := 0
	for i, c := range e.Changes {
		total += len(c.Value)
		if total > MaxChangesBytes {
			return bad("changes are larger than %d bytes together", MaxChangesBytes)
		}
		if c.Field == "" || len(c.Field) > MaxFieldLen || !utf8.ValidString(c.Field) {
			return bad("invalid field name %q", c.Field)
		}
		if i > 0 && e.Changes[i-1].Field >= c.Field {
			return bad("changes must be sorted by field and unique")
		}
		if len(c.Value) == 0 || len(c.Value) > MaxValueBytes {
			return bad("change %q: value missing or larger than %d bytes", c.Field, MaxValueBytes)
		}
	}
	if e.Type.IsDelete() && len(e.Changes) != 0 {
		return bad("a delete writes no field")
	}
	if e.Wall.IsZero() {
		return bad("wall time is missing")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// VerifyHash reports whether e.Hash is the hash of e's canonical encoding.
func (e *Event) VerifyHash() bool { return e.Hash == e.ComputeHash() }

// SortParents sorts ids and drops duplicates, as Event.Parents requires.
func SortParents(ids []ulid.ULID) []ulid.ULID {
	if len(ids) == 0 {
		return nil
	}
	out := append([]ulid.ULID(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	n := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[n-1] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}

// SortChanges sorts changes by field. It does not remove duplicates: Validate
// refuses them.
func SortChanges(c Changes) Changes {
	sort.Slice(c, func(i, j int) bool { return c[i].Field < c[j].Field })
	return c
}

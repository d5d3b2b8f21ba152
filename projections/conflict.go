package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Conflict kinds.
const (
	// ConflictValue: concurrent writes of one field with different values.
	ConflictValue = "value"
	// ConflictDeleteUpdate: a delete concurrent with an update of the entity.
	ConflictDeleteUpdate = "delete-update"
	// ConflictPathCollision: two live entities claim one path.
	ConflictPathCollision = "path-collision"
	// ConflictDanglingAlias: an alias, or a component's token list, names a
	// path no live token holds.
	ConflictDanglingAlias = "dangling-alias"
	// ConflictAliasCycle: following aliases from a token comes back to it.
	ConflictAliasCycle = "alias-cycle"
	// ConflictInvalidValue: concurrent writes of $type and $value, each
	// valid, merged into a token whose value does not fit its type.
	ConflictInvalidValue = "invalid-value"
)

// Conflict flags. Flags are evidence about wall clocks; they never change a
// winner or an order. Every flag here is a function of the events alone, so
// every site shows the same.
const (
	// FlagWallOrder: the winner by total order has an earlier wall time
	// than another candidate, so "last writer" by wall clock would differ.
	FlagWallOrder = "wall-clock-disagrees"
	// FlagWallBeforeAncestor: a candidate's wall time is earlier than one of
	// its causal ancestors' by more than the skew tolerance.
	FlagWallBeforeAncestor = "wall-before-ancestor"
)

// Candidate is one side of a conflict: an event and the value it stands for.
type Candidate struct {
	Event   ulid.ULID       `json:"event"`
	Entity  string          `json:"entity"`
	Site    string          `json:"site"`
	Seq     uint64          `json:"seq"`
	Lamport uint64          `json:"lamport"`
	Wall    string          `json:"wall"`
	Actor   string          `json:"actor"`
	Value   json.RawMessage `json:"value"`
	Flags   []string        `json:"flags,omitempty"`
}

// Conflict is an open conflict. It stays open until an event resolves it:
// one that descends from every candidate (value, delete-update), or a change
// that removes its cause (path-collision, dangling-alias, alias-cycle,
// invalid-value). Its ID is a digest of its subject and candidates, so it is
// the same on every site holding the same events, and changes when a new
// candidate joins.
type Conflict struct {
	ID         string      `json:"id"`
	Kind       string      `json:"kind"`
	EntityKind string      `json:"entityKind"`
	Entity     string      `json:"entity"`
	Path       string      `json:"path"`
	Field      string      `json:"field"`
	Candidates []Candidate `json:"candidates"`
	Winner     ulid.ULID   `json:"winner"`
	Flags      []string    `json:"flags"`
	Detail     string      `json:"detail,omitempty"`
	// Entities lists every entity involved ("kind:id"), for cleanup.
	Entities []string `json:"entities"`
	subject  string
}

func candidateOf(entity string, w Write) Candidate {
	return Candidate{
		Event: w.ID, Entity: entity, Site: w.Site, Seq: w.Seq, Lamport: w.Lamport,
		Wall: w.WallTime().Format(events.WallFormat), Actor: w.Actor, Value: w.Value,
	}
}

// finish fills in ID, Winner and flags from the candidates, which must be in
// total order (the last wins).
func (c *Conflict) finish(subject string) *Conflict {
	c.subject = subject
	h := sha256.New()
	h.Write([]byte(subject))
	ids := make([]string, len(c.Candidates))
	for i, cand := range c.Candidates {
		ids[i] = cand.Event.String()
	}
	sort.Strings(ids)
	for _, id := range ids {
		h.Write([]byte{0})
		h.Write([]byte(id))
	}
	c.ID = hex.EncodeToString(h.Sum(nil)[:12])
	win := c.Candidates[len(c.Candidates)-1]
	c.Winner = win.Event
	c.Flags = []string{}
	for _, cand := range c.Candidates[:len(c.Candidates)-1] {
		if cand.Wall > win.Wall { // WallFormat sorts as text
			c.Flags = append(c.Flags, FlagWallOrder)
			break
		}
	}
	for _, cand := range c.Candidates {
		if contains(cand.Flags, FlagWallBeforeAncestor) {
			c.Flags = append(c.Flags, FlagWallBeforeAncestor)
			break
		}
	}
	sort.Strings(c.Entities)
	return c
}

func entityRef(kind, id string) string { return kind + ":" + id }

func splitEntityRef(s string) (kind, id string) {
	kind, id, _ = strings.Cut(s, ":")
	return kind, id
}

// Subjects name what a conflict is about; one subject has at most one open
// conflict. Entity-level subjects share the prefix of their entity.
func entitySubjectPrefix(kind, id string) string {
	return "v\x00" + string(kindByte(kind)) + id + "\x00"
}

func pathSubject(kind, path string) string { return "p\x00" + string(kindByte(kind)) + path }

func refSubject(kind, id string) string { return "a\x00" + string(kindByte(kind)) + id }

func cycleSubject(id string) string { return "y\x00" + string(kindByte(events.KindToken)) + id }

// conflictStore writes conflicts and their involvement index, and counts how
// many open conflicts a transaction added or removed.
type conflictStore struct {
	tx    Tx
	delta int
}

func (s *conflictStore) get(subject string) (*Conflict, error) {
	b, ok, err := s.tx.Get(conflictKey(subject))
	if err != nil || !ok {
		return nil, err
	}
	c := &Conflict{subject: subject}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// put records c under its subject, replacing what was there.
func (s *conflictStore) put(c *Conflict) error {
	old, err := s.get(c.subject)
	if err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if old != nil {
		ob, _ := json.Marshal(old)
		if bytes.Equal(ob, b) {
			return nil
		}
		if err := s.unindex(old); err != nil {
			return err
		}
	} else {
		s.delta++
	}
	if err := s.tx.Set(conflictKey(c.subject), b); err != nil {
		return err
	}
	for _, er := range c.Entities {
		kind, id := splitEntityRef(er)
		if err := addString(s.tx, involvesKey(kind, id), c.subject); err != nil {
			return err
		}
	}
	return nil
}

// clear removes the conflict under subject, if any.
func (s *conflictStore) clear(subject string) error {
	old, err := s.get(subject)
	if err != nil || old == nil {
		return err
	}
	s.delta--
	if err := s.unindex(old); err != nil {
		return err
	}
	return s.tx.Delete(conflictKey(subject))
}

func (s *conflictStore) unindex(c *Conflict) error {
	for _, er := range c.Entities {
		kind, id := splitEntityRef(er)
		if err := removeString(s.tx, involvesKey(kind, id), c.subject); err != nil {
			return err
		}
	}
	return nil
}

// subjectsWithPrefix lists the subjects of the open conflicts involving an
// entity that start with prefix.
func (s *conflictStore) subjectsWithPrefix(kind, id, prefix string) ([]string, error) {
	all, err := getStrings(s.tx, involvesKey(kind, id))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, subj := range all {
		if strings.HasPrefix(subj, prefix) {
			out = append(out, subj)
		}
	}
	return out, nil
}

// flagWallSkew marks candidates whose wall time is earlier than their
// entity's causal ancestors' by more than tol. It is a function of the
// events only. Ancestors are found through parents within the entity.
func flagWallSkew(cands []Candidate, evs []*events.Event, tol time.Duration) {
	if tol <= 0 || len(evs) == 0 {
		return
	}
	byID := make(map[ulid.ULID]*events.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	for i := range cands {
		e := byID[cands[i].Event]
		if e == nil {
			continue
		}
		if latestAncestorWall(e, byID).Sub(e.Wall) > tol {
			cands[i].Flags = append(cands[i].Flags, FlagWallBeforeAncestor)
		}
	}
}

// latestAncestorWall returns the latest wall time among e's ancestors.
func latestAncestorWall(e *events.Event, byID map[ulid.ULID]*events.Event) time.Time {
	var latest time.Time
	seen := map[ulid.ULID]bool{}
	stack := append([]ulid.ULID(nil), e.Parents...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		p := byID[id]
		if p == nil {
			continue
		}
		if p.Wall.After(latest) {
			latest = p.Wall
		}
		stack = append(stack, p.Parents...)
	}
	return latest
}

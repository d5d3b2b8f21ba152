package events

import (
	"io"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Clock is a Lamport clock. A local event takes Tick(); receiving an event
// calls Witness with its Lamport time, so the clock is always at least the
// highest Lamport time the owner has seen. The zero value is a clock at 0.
// A Clock is not safe for concurrent use; its owner serializes access.
type Clock struct{ now uint64 }

// Now returns the current value.
func (c *Clock) Now() uint64 { return c.now }

// Witness raises the clock to at least l.
func (c *Clock) Witness(l uint64) {
	if l > c.now {
		c.now = l
	}
}

// Tick advances the clock and returns the new value: the Lamport time of a
// new local event, greater than everything witnessed so far.
func (c *Clock) Tick() uint64 {
	c.now++
	return c.now
}

// IDSource makes event ids: ULIDs whose time part is the wall time given and
// whose entropy is monotonic within a millisecond, so ids made by one source
// in one millisecond sort in the order they were made. Safe for concurrent use.
type IDSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

// NewIDSource returns a source drawing randomness from r (crypto/rand.Reader
// in production, a seeded reader in tests).
func NewIDSource(r io.Reader) *IDSource {
	return &IDSource{entropy: ulid.Monotonic(r, 0)}
}

// New returns a new id stamped with t.
func (s *IDSource) New(t time.Time) ulid.ULID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := ulid.Timestamp(t)
	if t.Before(time.UnixMilli(0)) {
		ms = 0
	}
	id, err := ulid.New(ms, s.entropy)
	if err != nil {
		// Monotonic entropy overflows only after 2^80 ids in one
		// millisecond, or when the reader fails: both are fatal.
		panic("events: cannot make an id: " + err.Error())
	}
	return id
}

// Head is the tail of one site's hash chain in one project: its highest seq
// and that event's hash. The zero Head is an empty chain.
type Head struct {
	Seq  uint64
	Hash Hash
}

// Draft is an event before a site stamps it: what changed, not when or where.
type Draft struct {
	Type    Type
	Entity  string
	Path    string
	Parents []ulid.ULID
	Changes Changes
	Actor   string
}

// Stamp turns a draft into the next event of site's chain in project: seq and
// prevHash follow head, lamport is the value the caller ticked, id and wall
// are given (wall is truncated to milliseconds, as the encoding keeps it).
// Parents are sorted and changes sorted; the hash is computed last.
func Stamp(d Draft, project, site string, head Head, lamport uint64, id ulid.ULID, wall time.Time) *Event {
	e := &Event{
		ID:       id,
		Project:  project,
		Site:     site,
		Seq:      head.Seq + 1,
		Lamport:  lamport,
		Wall:     wall.UTC().Truncate(time.Millisecond),
		Actor:    d.Actor,
		Type:     d.Type,
		Entity:   d.Entity,
		Path:     d.Path,
		Parents:  SortParents(d.Parents),
		Changes:  SortChanges(d.Changes),
		PrevHash: head.Hash,
	}
	e.Hash = e.ComputeHash()
	return e
}

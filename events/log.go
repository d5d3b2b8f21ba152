package events

import (
	"context"
	"fmt"

	"github.com/oklog/ulid/v2"
)

// Log is a project-partitioned, append-only event log. The conformance suite
// in events/eventstest states its contract as tests; every implementation
// runs it.
//
// Invariants every implementation keeps:
//   - Appending is atomic (all of a call's events or none) and durable before
//     Append returns.
//   - An event is appended only when it passes Validate, is the next link of
//     its site's chain in the project (seq = head+1, prevHash = head's hash,
//     Hash matches the content) and every parent is already in the log or
//     earlier in the same call. Otherwise Append fails with a *GapError
//     (the event may fit later), a *ChainError or an *Error, and appends nothing.
//   - An event whose id is already in the project's log is skipped: appending
//     an event twice is a no-op.
//   - Lamport(project) is at least the Lamport time of every event appended.
//   - Reads see every event whose Append returned, across restarts.
type Log interface {
	// Append appends evs, all of one project, and returns how many were new.
	Append(ctx context.Context, evs ...*Event) (int, error)

	// Event returns one event by id, or an ENOTFOUND *Error.
	Event(ctx context.Context, project string, id ulid.ULID) (*Event, error)

	// Scan calls fn for each event of project strictly after position after,
	// in total order, until fn returns an error (returned) or StopScan (not).
	// The zero Position starts at the beginning.
	Scan(ctx context.Context, project string, after Position, fn func(*Event) error) error

	// EntityEvents returns every event of one entity, in total order.
	EntityEvents(ctx context.Context, project, entity string) ([]*Event, error)

	// SiteEvents returns up to limit events made by site in project with
	// seq > after, in seq order.
	SiteEvents(ctx context.Context, project, site string, after uint64, limit int) ([]*Event, error)

	// Vector returns the project's version vector.
	Vector(ctx context.Context, project string) (Vector, error)

	// Lamport returns the project's Lamport high-water mark.
	Lamport(ctx context.Context, project string) (uint64, error)

	// Head returns the head of site's chain in project.
	Head(ctx context.Context, project, site string) (Head, error)
}

// StopScan, returned by a Scan callback, ends the scan without error.
var StopScan = stopScan{}

type stopScan struct{}

func (stopScan) Error() string { return "stop scan" }

// CheckAppend decides whether e may be appended to a log in which e's site's
// chain ends at head, and lamport(id) returns the Lamport time of an event in
// the log (ok false when absent). It is the one implementation of the append
// rules of Log, shared by every store. Besides the chain, it requires every
// parent to be present with a Lamport time below e's (invariant 3).
func CheckAppend(e *Event, head Head, lamport func(ulid.ULID) (l uint64, ok bool, err error)) error {
	if err := e.Validate(); err != nil {
		return err
	}
	c := Chains{heads: map[chainKey]Head{{e.Project, e.Site}: head}}
	if err := c.Check(e); err != nil {
		return err
	}
	var missing []ulid.ULID
	for _, p := range e.Parents {
		l, ok, err := lamport(p)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, p)
			continue
		}
		if l >= e.Lamport {
			return &ChainError{e, fmt.Sprintf("lamport %d is not above parent %s's %d", e.Lamport, p, l)}
		}
	}
	if len(missing) > 0 {
		return &GapError{Project: e.Project, Site: e.Site, Have: e.Seq - 1, Want: e.Seq, Parents: missing}
	}
	return nil
}

// Committed is an event with the number this site's log gave it when it was
// appended, locally: 1, 2, 3... in the order events were committed,
// whatever their project or origin.
type Committed struct {
	Seq   uint64
	Event *Event
}

// Feed is a site's log in commit order, restricted to what is durable. The
// outbox publishes from it and live streams follow it. An event appears in
// the feed only once its commit has been fsynced, so nothing read from it
// can be lost by a crash of this site.
type Feed interface {
	// Read returns up to limit durable events with commit number > after.
	Read(ctx context.Context, after uint64, limit int) ([]Committed, error)
	// Wait returns once an event with commit number > after is durable, or
	// with ctx's error.
	Wait(ctx context.Context, after uint64) error
	// Last returns the highest durable commit number (0 when empty).
	Last() uint64
}

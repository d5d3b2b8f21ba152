package projections

import (
	"context"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Reader reads one project's log and projection at one consistent point.
// Byte slices it returns belong to the caller.
type Reader interface {
	// Project returns the id of the project this reader is scoped to.
	Project() string

	// Get returns the projection value stored under key, and whether it exists.
	Get(key []byte) ([]byte, bool, error)
	// Scan calls fn for each projection key with the given prefix that sorts
	// strictly after after (nil: from the first), in ascending key order,
	// until fn returns an error. fn returning events.StopScan ends the scan
	// without error.
	Scan(prefix, after []byte, fn func(key, value []byte) error) error

	// Event returns the event with id, or nil when the log does not hold it.
	Event(id ulid.ULID) (*events.Event, error)
	// EntityEvents returns every event naming entity, in total order.
	EntityEvents(entity string) ([]*events.Event, error)
	// ScanEvents calls fn for each event after position after in total order.
	ScanEvents(after events.Position, fn func(*events.Event) error) error
	// SiteEvents returns up to limit events made by site with seq > after.
	SiteEvents(site string, after uint64, limit int) ([]*events.Event, error)
	// Head returns the head of site's chain.
	Head(site string) (events.Head, error)
	// Lamport returns the project's Lamport high-water mark.
	Lamport() uint64
	// Vector returns the project's version vector.
	Vector() (events.Vector, error)

	// PendingFor returns the held events waiting for dep (see Tx.HoldPending).
	PendingFor(dep string) ([]*events.Event, error)
	// ScanPending calls fn for every held event and what it waits for.
	ScanPending(fn func(e *events.Event, dep string) error) error
	// PendingCount returns how many events are held.
	PendingCount() (int, error)
}

// Tx is a read-write transaction on one project. Its reads see its own
// writes. Nothing it does is visible to others until the Storage commits it.
type Tx interface {
	Reader

	// Set stores value under a projection key.
	Set(key, value []byte) error
	// Delete removes a projection key.
	Delete(key []byte) error

	// AppendLog appends e to the project's log, enforcing the rules of
	// events.CheckAppend, and raises the Lamport mark. It returns false,
	// and changes nothing, when the log already holds an event with e's id.
	// fresh says e was just stamped by this site with an id it just made,
	// so the store may skip looking for a duplicate. Only the fold calls
	// it: that is what keeps log and projection in step.
	AppendLog(e *events.Event, fresh bool) (bool, error)

	// HoldPending keeps e, received before something it depends on, until
	// dep arrives: the causal buffer. dep names the missing dependency
	// (see PendingDep). Holding an event twice keeps it once. Held events
	// are not part of the projection: a rebuild keeps them.
	HoldPending(e *events.Event, dep string) error
	// TakePending removes and returns the events waiting for dep.
	TakePending(dep string) ([]*events.Event, error)
}

// Storage keeps logs and projections. Update commits atomically and durably
// before it returns; a failed fn leaves nothing behind.
type Storage interface {
	// Update runs fn in a transaction on project and commits it if fn
	// returns nil. Updates are serialized.
	Update(ctx context.Context, project string, fn func(Tx) error) error
	// View runs fn on a read-only snapshot of project.
	View(ctx context.Context, project string, fn func(Reader) error) error
	// Projects lists the ids of the projects whose log is not empty, sorted.
	Projects(ctx context.Context) ([]string, error)
}

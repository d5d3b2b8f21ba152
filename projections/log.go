package projections

import (
	"context"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// NewLog returns the events.Log view of a Storage. Appends go through Fold,
// so the projection is updated in the same transaction as the log.
func NewLog(s Storage) events.Log { return storageLog{s} }

type storageLog struct{ s Storage }

func (l storageLog) Append(ctx context.Context, evs ...*events.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	project := evs[0].Project
	for _, e := range evs {
		if e.Project != project {
			return 0, events.Errorf(events.EINVALID, "one append holds events of one project, got %q and %q", project, e.Project)
		}
	}
	var n int
	err := l.s.Update(ctx, project, func(tx Tx) error {
		appended, err := Fold(tx, evs)
		n = len(appended)
		return err
	})
	return n, err
}

func (l storageLog) Event(ctx context.Context, project string, id ulid.ULID) (*events.Event, error) {
	var e *events.Event
	err := l.s.View(ctx, project, func(r Reader) (err error) {
		e, err = r.Event(id)
		return err
	})
	if err == nil && e == nil {
		err = events.Errorf(events.ENOTFOUND, "no event %s in project %q", id, project)
	}
	return e, err
}

func (l storageLog) Scan(ctx context.Context, project string, after events.Position, fn func(*events.Event) error) error {
	return l.s.View(ctx, project, func(r Reader) error { return r.ScanEvents(after, fn) })
}

func (l storageLog) EntityEvents(ctx context.Context, project, entity string) (evs []*events.Event, err error) {
	err = l.s.View(ctx, project, func(r Reader) error {
		evs, err = r.EntityEvents(entity)
		return err
	})
	return evs, err
}

func (l storageLog) SiteEvents(ctx context.Context, project, site string, after uint64, limit int) (evs []*events.Event, err error) {
	err = l.s.View(ctx, project, func(r Reader) error {
		evs, err = r.SiteEvents(site, after, limit)
		return err
	})
	return evs, err
}

func (l storageLog) Vector(ctx context.Context, project string) (v events.Vector, err error) {
	err = l.s.View(ctx, project, func(r Reader) error {
		v, err = r.Vector()
		return err
	})
	return v, err
}

func (l storageLog) Lamport(ctx context.Context, project string) (n uint64, err error) {
	err = l.s.View(ctx, project, func(r Reader) error {
		n = r.Lamport()
		return nil
	})
	return n, err
}

func (l storageLog) Head(ctx context.Context, project, site string) (h events.Head, err error) {
	err = l.s.View(ctx, project, func(r Reader) error {
		h, err = r.Head(site)
		return err
	})
	return h, err
}

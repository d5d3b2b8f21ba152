package pebble

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
)

// Last implements events.Feed.
func (s *Store) Last() uint64 { return s.durable.Load() }

// Wait implements events.Feed.
func (s *Store) Wait(ctx context.Context, after uint64) error {
	for {
		s.notifyMu.Lock()
		ch := s.notify
		s.notifyMu.Unlock()
		if s.durable.Load() > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Read implements events.Feed.
func (s *Store) Read(ctx context.Context, after uint64, limit int) ([]events.Committed, error) {
	last := s.durable.Load()
	if after >= last {
		return nil, nil
	}
	s.mu.Lock()
	if s.db == nil {
		s.mu.Unlock()
		return nil, events.Errorf(events.EUNAVAILABLE, "store is closed")
	}
	snap := s.db.NewSnapshot()
	s.mu.Unlock()
	defer snap.Close()
	var out []events.Committed
	err := scan(snap, commitKey(after+1), commitKey(last+1), func(k, v []byte) error {
		seq := binary.BigEndian.Uint64(k[1:])
		e, err := readAt(snap, append([]byte{tLog}, v...))
		if err != nil {
			return fmt.Errorf("commit %d: %w", seq, err)
		}
		out = append(out, events.Committed{Seq: seq, Event: e})
		if limit > 0 && len(out) == limit {
			return events.StopScan
		}
		return ctx.Err()
	})
	return out, err
}

// Rebuild discards a project's projection and folds it again from the log,
// in total order, in bounded batches. It holds the append lock throughout:
// no write happens meanwhile. Readers may see the projection partly built
// until it returns.
func (s *Store) Rebuild(ctx context.Context, project string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return events.Errorf(events.EUNAVAILABLE, "store is closed")
	}
	st, err := s.state(project)
	if err != nil {
		return err
	}
	vp := prefix(tView, project)
	if err := s.db.DeleteRange(vp, upperBound(vp), pebble.Sync); err != nil {
		return fmt.Errorf("rebuild %s: clear projection: %w", project, err)
	}
	const chunk = 8192
	var after events.Position
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []*events.Event
		if err := scanEvents(s.db, project, after, func(e *events.Event) error {
			batch = append(batch, e)
			if len(batch) == chunk {
				return events.StopScan
			}
			return nil
		}); err != nil {
			return err
		}
		if len(batch) == 0 {
			return s.db.Flush()
		}
		t := &tx{s: s, b: s.db.NewIndexedBatch(), project: project, base: st, lamport: st.lamport, commit: s.commit}
		if err := projections.Replay(t, batch); err != nil {
			t.b.Close()
			return fmt.Errorf("rebuild %s: %w", project, err)
		}
		if err := s.db.Apply(t.b, pebble.NoSync); err != nil {
			t.b.Close()
			return err
		}
		t.b.Close()
		after = batch[len(batch)-1].Position()
	}
}

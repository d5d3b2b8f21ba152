package pebble

import (
	"bytes"
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
	// The record holding commit after+1 starts at or before it.
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{tCommit}, UpperBound: commitKey(last + 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []events.Committed
	for ok := it.SeekLT(commitKey(after + 2)); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		base := binary.BigEndian.Uint64(it.Key()[1:])
		project, positions, err := decodeCommit(v)
		if err != nil {
			return nil, fmt.Errorf("commit record %d: %w", base, err)
		}
		for i, pos := range positions {
			seq := base + uint64(i)
			if seq <= after || seq > last {
				continue
			}
			e, err := readAt(snap, append(prefix(tLog, project), pos...))
			if err != nil {
				return nil, fmt.Errorf("commit %d: %w", seq, err)
			}
			out = append(out, events.Committed{Seq: seq, Event: e})
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, it.Error()
}

// RebuildBudget is how many bytes of projection a rebuild holds in memory
// before it writes them to disk.
var RebuildBudget = 96 << 20

// Rebuild folds a project's projection afresh from its log, in total order,
// into a new generation of the projection, then switches to it with one
// synced write and drops the old one. Readers see the old projection until
// the switch, never a partial one. It holds the append lock throughout: no
// write happens meanwhile. Memory stays bounded by RebuildBudget: beyond it,
// the new generation's state is written out and read back as needed.
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
	oldGen, newGen := st.gen, st.gen+1
	np := viewPrefix(project, newGen)
	if err := s.db.DeleteRange(np, upperBound(np), pebble.NoSync); err != nil { // a rebuild that died half-way
		return fmt.Errorf("rebuild %s: %w", project, err)
	}
	s.values.clear()
	t := newTx(s, project, st)
	t.gen, t.fresh = newGen, true
	defer t.discard()
	spill := func() error { return t.spill(8 << 20) }
	// One range scan of the entity index: each entity's events are together,
	// in total order.
	rb := projections.NewRebuilder(t)
	ep := prefix(tEntity, project)
	var group []*events.Event
	var groupKey []byte // the entity part of the current group's keys
	err = scan(s.db, ep, upperBound(ep), func(k, v []byte) error {
		rest := k[len(ep):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return errBadKey
		}
		if !bytes.Equal(rest[:i], groupKey) {
			if err := rb.Entity(group); err != nil {
				return err
			}
			if t.written > RebuildBudget {
				if err := spill(); err != nil {
					return err
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			group, groupKey = group[:0], append(groupKey[:0], rest[:i]...)
		}
		e, err := events.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("rebuild %s: entity index at %q: %w", project, k, err)
		}
		group = append(group, e)
		return nil
	})
	if err == nil {
		err = rb.Entity(group)
	}
	if err == nil {
		err = rb.Finish()
	}
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", project, err)
	}
	if err := spill(); err != nil {
		return err
	}
	// Switch: the synced pointer write also syncs the WAL before it.
	if err := s.db.Set(genKey(project), binary.BigEndian.AppendUint64(nil, newGen), pebble.Sync); err != nil {
		return fmt.Errorf("rebuild %s: switch generation: %w", project, err)
	}
	st.gen = newGen
	s.values.clear()
	op := viewPrefix(project, oldGen)
	if err := s.db.DeleteRange(op, upperBound(op), pebble.NoSync); err != nil {
		s.logger.Warn("old projection generation not dropped", "project", project, "err", err)
	}
	return nil
}

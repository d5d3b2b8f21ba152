package pebble

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/oklog/ulid/v2"
)

// tx is a projections.Tx under the append lock. Nothing else writes the
// store's logs or projections while it runs, so it reads the database
// directly, through an overlay of its own writes:
//   - projection writes go to an in-memory map that its reads see first, and
//     reach the batch once per key at commit;
//   - log writes go straight into a plain (unindexed) batch; the events it
//     appended are kept in memory for the log reads that need them.
//
// This keeps every operation of the write path a map access or a point read
// (bloom-filtered), which is what makes large batches cheap.
type tx struct {
	s       *Store
	project string
	gen     uint64 // the projection generation this tx reads and writes
	base    *projectState
	lamport uint64
	heads   map[string]events.Head
	commit  uint64
	// fresh: the generation has nothing on disk yet (a rebuild that has not
	// spilled), so a key missing from the overlay is absent.
	fresh bool
	// written: bytes held by writes, for a rebuild's memory budget.
	written int

	writes   map[string]projections.Override
	pending  map[string]projections.Override // causal-buffer writes, apart: scanned on every applied event
	log      *pebble.Batch
	appended []*events.Event
	byID     map[ulid.ULID]*events.Event
	byEntity map[string][]*events.Event
}

var _ projections.Tx = (*tx)(nil)

func newTx(s *Store, project string, st *projectState) *tx {
	return &tx{
		s: s, project: project, gen: st.gen, base: st, lamport: st.lamport, commit: s.commit,
		writes: map[string]projections.Override{}, pending: map[string]projections.Override{}, log: s.db.NewBatch(),
		byID: map[ulid.ULID]*events.Event{}, byEntity: map[string][]*events.Event{},
	}
}

// spill writes the overlay to the database in batches of at most max bytes,
// unsynced, and empties it: a rebuild's way to stay within its memory budget.
func (t *tx) spill(max int) error {
	b := t.s.db.NewBatch()
	flush := func() error {
		err := t.s.db.Apply(b, pebble.NoSync)
		b.Close()
		b = t.s.db.NewBatch()
		return err
	}
	for k, w := range t.writes {
		if w.Deleted {
			b.Delete([]byte(k), nil)
		} else {
			b.Set([]byte(k), w.Value, nil)
		}
		if b.Len() > max {
			if err := flush(); err != nil {
				b.Close()
				return err
			}
		}
	}
	err := flush()
	b.Close()
	t.writes, t.written, t.fresh = map[string]projections.Override{}, 0, false
	return err
}

// batch returns the transaction's writes as one batch (the caller owns it).
func (t *tx) batch() *pebble.Batch {
	b := t.log
	t.log = nil
	for _, m := range []map[string]projections.Override{t.writes, t.pending} {
		for k, w := range m {
			if w.Deleted {
				b.Delete([]byte(k), nil)
			} else {
				b.Set([]byte(k), w.Value, nil)
			}
		}
	}
	if len(t.appended) > 0 {
		b.Set(projectKey(t.project), nil, nil)
		// One commit record for the transaction: its events get the
		// commit numbers first..t.commit, in the order they were appended.
		first := t.commit - uint64(len(t.appended)) + 1
		b.Set(commitKey(first), encodeCommit(t.project, t.appended), nil)
	}
	return b
}

func (t *tx) discard() {
	if t.log != nil {
		t.log.Close()
		t.log = nil
	}
}

func (t *tx) Project() string { return t.project }

func (t *tx) Get(key []byte) ([]byte, bool, error) {
	k := viewKey(t.project, t.gen, key)
	if w, ok := t.writes[string(k)]; ok {
		if w.Deleted {
			return nil, false, nil
		}
		return append([]byte(nil), w.Value...), true, nil
	}
	if t.fresh {
		return nil, false, nil
	}
	if v, ok := t.s.values.get(string(k)); ok {
		return append([]byte(nil), v...), v != nil, nil
	}
	v, ok, err := get(t.s.db, k)
	if err == nil {
		t.s.values.put(string(k), v)
	}
	return v, ok, err
}

// publish records the committed transaction's writes in the store's caches.
func (t *tx) publish() {
	for k, w := range t.writes {
		if w.Deleted {
			t.s.values.put(k, nil)
		} else {
			t.s.values.put(k, w.Value)
		}
	}
	for _, e := range t.appended {
		t.s.lamports.put(eventKey{t.project, e.ID}, e.Lamport)
	}
}

func (t *tx) Set(key, value []byte) error {
	t.put(string(viewKey(t.project, t.gen, key)), projections.Override{Value: append([]byte(nil), value...)})
	return nil
}

func (t *tx) Delete(key []byte) error {
	t.put(string(viewKey(t.project, t.gen, key)), projections.Override{Deleted: true})
	return nil
}

// put records a write, keeping written equal to the bytes the overlay holds.
func (t *tx) put(k string, w projections.Override) {
	if old, ok := t.writes[k]; ok {
		t.written -= len(k) + len(old.Value) + 48
	}
	t.writes[k] = w
	t.written += len(k) + len(w.Value) + 48
}

// Scan merges the database's keys with the overlay's, the overlay winning.
func (t *tx) Scan(p, after []byte, fn func(k, v []byte) error) error {
	base := viewPrefix(t.project, t.gen)
	lo := viewKey(t.project, t.gen, p)
	hi := upperBound(lo)
	if len(p) == 0 {
		hi = upperBound(base)
	}
	if after != nil && bytes.Compare(after, p) >= 0 {
		lo = append(viewKey(t.project, t.gen, after), 0)
	}
	return t.scanRange(lo, hi, t.fresh, t.writes, func(k, v []byte) error {
		return fn(append([]byte(nil), k[len(base):]...), append([]byte(nil), v...))
	})
}

// scanRange calls fn for the keys in [lo, hi) of the database merged with
// the overlay over (which wins), in order; fresh skips the database.
func (t *tx) scanRange(lo, hi []byte, fresh bool, over map[string]projections.Override, fn func(k, v []byte) error) error {
	var mine []string
	for k := range over {
		if k >= string(lo) && (hi == nil || k < string(hi)) {
			mine = append(mine, k)
		}
	}
	sort.Strings(mine)
	dbHi := hi
	if fresh {
		dbHi = lo
	}
	base := func(f func(k, v []byte) error) error { return scan(t.s.db, lo, dbHi, f) }
	return projections.MergeScan(base, mine, over, fn)
}

// PendingFor implements projections.Reader.
func (t *tx) PendingFor(dep string) ([]*events.Event, error) {
	p := pendingPrefix(t.project, dep)
	var out []*events.Event
	err := t.scanRange(p, upperBound(p), false, t.pending, func(k, v []byte) error {
		e, err := events.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("held event at %q: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ScanPending implements projections.Reader.
func (t *tx) ScanPending(fn func(*events.Event, string) error) error {
	return scanPending(t.project, fn, func(lo, hi []byte, f func(k, v []byte) error) error {
		return t.scanRange(lo, hi, false, t.pending, f)
	})
}

// scanPending walks a project's held events through scanFn.
func scanPending(project string, fn func(*events.Event, string) error, scanFn func(lo, hi []byte, f func(k, v []byte) error) error) error {
	p := prefix(tPending, project)
	return scanFn(p, upperBound(p), func(k, v []byte) error {
		rest := k[len(p):]
		i := bytes.IndexByte(rest, 0)
		if i <= 0 { // the count key
			return nil
		}
		e, err := events.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("held event at %q: %w", k, err)
		}
		return fn(e, string(rest[:i]))
	})
}

// HoldPending implements projections.Tx.
func (t *tx) HoldPending(e *events.Event, dep string) error {
	k := append(pendingPrefix(t.project, dep), e.ID[:]...)
	if _, held, err := t.getRaw(k); err != nil || held {
		return err
	}
	t.pending[string(k)] = projections.Override{Value: e.Marshal()}
	return t.addPendingCount(1)
}

// TakePending implements projections.Tx.
func (t *tx) TakePending(dep string) ([]*events.Event, error) {
	if n, err := t.PendingCount(); err != nil || n == 0 {
		return nil, err // nothing held: the usual case, answered from one key
	}
	evs, err := t.PendingFor(dep)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	for _, e := range evs {
		t.pending[string(append(pendingPrefix(t.project, dep), e.ID[:]...))] = projections.Override{Deleted: true}
	}
	return evs, t.addPendingCount(-len(evs))
}

// PendingCount implements projections.Tx.
func (t *tx) PendingCount() (int, error) {
	v, ok, err := t.getRaw(pendingCountKey(t.project))
	if err != nil || !ok || len(v) != 8 {
		return 0, err
	}
	return int(binary.BigEndian.Uint64(v)), nil
}

func (t *tx) addPendingCount(d int) error {
	n, err := t.PendingCount()
	if err != nil {
		return err
	}
	t.pending[string(pendingCountKey(t.project))] = projections.Override{Value: binary.BigEndian.AppendUint64(nil, uint64(n+d))}
	return nil
}

// getRaw reads a causal-buffer key through its overlay.
func (t *tx) getRaw(k []byte) ([]byte, bool, error) {
	if w, ok := t.pending[string(k)]; ok {
		return w.Value, !w.Deleted, nil
	}
	return get(t.s.db, k)
}

func (t *tx) Event(id ulid.ULID) (*events.Event, error) {
	if e := t.byID[id]; e != nil {
		return e, nil
	}
	return readEvent(t.s.db, t.project, id)
}

func sortByPosition(evs []*events.Event) {
	sort.Slice(evs, func(i, j int) bool { return evs[i].Position().Compare(evs[j].Position()) < 0 })
}

func (t *tx) EntityEvents(entity string) ([]*events.Event, error) {
	evs, err := entityEvents(t.s.db, t.project, entity)
	if err != nil {
		return nil, err
	}
	if mine := t.byEntity[entity]; len(mine) > 0 {
		evs = append(evs, mine...)
		sortByPosition(evs)
	}
	return evs, nil
}

func (t *tx) ScanEvents(after events.Position, fn func(*events.Event) error) error {
	base := func(f func(*events.Event) error) error { return scanEvents(t.s.db, t.project, after, f) }
	return projections.MergeEvents(after, t.appended, base, fn)
}

func (t *tx) SiteEvents(site string, after uint64, limit int) ([]*events.Event, error) {
	evs, err := siteEvents(t.s.db, t.project, site, after, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range t.appended { // appended after everything on disk, in seq order
		if e.Site == site && e.Seq > after && (limit <= 0 || len(evs) < limit) {
			evs = append(evs, e)
		}
	}
	return evs, nil
}

func (t *tx) Head(site string) (events.Head, error) {
	if h, ok := t.heads[site]; ok {
		return h, nil
	}
	return t.base.heads[site], nil
}

func (t *tx) Lamport() uint64 { return t.lamport }

func (t *tx) Vector() (events.Vector, error) {
	out := events.Vector{}
	for site, h := range t.base.heads {
		out[site] = h.Seq
	}
	for site, h := range t.heads {
		out[site] = h.Seq
	}
	return out, nil
}

// lamportOf returns the Lamport time of an event in the log or in this tx.
func (t *tx) lamportOf(id ulid.ULID) (uint64, bool, error) {
	if e := t.byID[id]; e != nil {
		return e.Lamport, true, nil
	}
	if l, ok := t.s.lamports.get(eventKey{t.project, id}); ok {
		return l, true, nil
	}
	pos, ok, err := get(t.s.db, idKey(t.project, id))
	if err != nil || !ok {
		return 0, false, err
	}
	l := binary.BigEndian.Uint64(pos)
	t.s.lamports.put(eventKey{t.project, id}, l)
	return l, true, nil
}

// AppendLog implements projections.Tx: the log's append rules, and one key
// per index.
func (t *tx) AppendLog(e *events.Event, fresh bool) (bool, error) {
	if e.Project != t.project {
		return false, events.Errorf(events.EINVALID, "event %s belongs to project %q, not %q", e.ID, e.Project, t.project)
	}
	if !fresh {
		if _, dup, err := t.lamportOf(e.ID); err != nil || dup {
			return false, err
		}
	}
	head, _ := t.Head(e.Site)
	if err := events.CheckAppend(e, head, t.lamportOf); err != nil {
		return false, err
	}
	pos := appendPos(nil, e.Position())
	raw := e.Marshal()
	t.commit++
	for _, kv := range [...][2][]byte{
		{logKey(t.project, e.Position()), raw},
		{idKey(t.project, e.ID), pos},
		{siteKey(t.project, e.Site, e.Seq), append(e.Hash[:], pos...)},
		{entityIndexKey(t.project, e.Entity, e.Position()), raw},
	} {
		if err := t.log.Set(kv[0], kv[1], nil); err != nil {
			return false, err
		}
	}
	if t.heads == nil {
		t.heads = map[string]events.Head{}
	}
	t.heads[e.Site] = events.Head{Seq: e.Seq, Hash: e.Hash}
	if e.Lamport > t.lamport {
		t.lamport = e.Lamport
	}
	t.appended = append(t.appended, e)
	t.byID[e.ID] = e
	t.byEntity[e.Entity] = append(t.byEntity[e.Entity], e)
	return true, nil
}

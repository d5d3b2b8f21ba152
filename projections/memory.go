package projections

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/dss-sync/dss-sync/events"
	"github.com/google/btree"
	"github.com/oklog/ulid/v2"
)

// Memory is a Storage held in memory. It is what as-of queries and merge
// analyses fold into, and what simulated sites run on in tests. It is not
// durable. Safe for concurrent use; updates are serialized.
type Memory struct {
	mu       sync.RWMutex
	projects map[string]*memProject
}

// NewMemory returns an empty in-memory storage.
func NewMemory() *Memory { return &Memory{projects: map[string]*memProject{}} }

var _ Storage = (*Memory)(nil)

type kv struct{ k, v []byte }

func kvLess(a, b kv) bool { return bytes.Compare(a.k, b.k) < 0 }

type memEvent struct {
	pos events.Position
	e   *events.Event
}

func memEventLess(a, b memEvent) bool { return a.pos.Compare(b.pos) < 0 }

// memProject is one project's log and projection. Events are shared, never
// copied: they are immutable once appended.
type memProject struct {
	pending map[string]map[ulid.ULID]*events.Event // dep -> held events
	id      string
	kv      *btree.BTreeG[kv]
	log     *btree.BTreeG[memEvent]
	byID    map[ulid.ULID]*events.Event
	entity  map[string][]*events.Event // unordered; sorted on read
	sites   map[string][]*events.Event // seq order
	lamport uint64
}

func newMemProject(id string) *memProject {
	return &memProject{
		id:      id,
		kv:      btree.NewG(32, kvLess),
		log:     btree.NewG(32, memEventLess),
		byID:    map[ulid.ULID]*events.Event{},
		entity:  map[string][]*events.Event{},
		sites:   map[string][]*events.Event{},
		pending: map[string]map[ulid.ULID]*events.Event{},
	}
}

// Update implements Storage. The transaction writes into copy-on-write
// clones of the project's trees, swapped in on success.
func (m *Memory) Update(ctx context.Context, project string, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	base := m.projects[project]
	if base == nil {
		base = newMemProject(project)
	}
	tx := &memTx{p: base.clone()}
	if err := fn(tx); err != nil {
		return err
	}
	if tx.p.log.Len() > 0 || len(tx.p.pending) > 0 {
		m.projects[project] = tx.p
	}
	return nil
}

// View implements Storage.
func (m *Memory) View(ctx context.Context, project string, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.RLock()
	p := m.projects[project]
	if p == nil {
		p = newMemProject(project)
	} else {
		p = p.clone() // a snapshot: later updates do not show through
	}
	m.mu.RUnlock()
	return fn(&memTx{p: p, readOnly: true})
}

// Projects implements Storage.
func (m *Memory) Projects(ctx context.Context) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.projects))
	for id := range m.projects {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

func (p *memProject) clone() *memProject {
	c := &memProject{
		id:      p.id,
		kv:      p.kv.Clone(),
		log:     p.log.Clone(),
		byID:    make(map[ulid.ULID]*events.Event, len(p.byID)),
		entity:  make(map[string][]*events.Event, len(p.entity)),
		sites:   make(map[string][]*events.Event, len(p.sites)),
		lamport: p.lamport,
		pending: make(map[string]map[ulid.ULID]*events.Event, len(p.pending)),
	}
	for dep, held := range p.pending {
		c.pending[dep] = make(map[ulid.ULID]*events.Event, len(held))
		for id, e := range held {
			c.pending[dep][id] = e
		}
	}
	for k, v := range p.byID {
		c.byID[k] = v
	}
	// Slices are appended to, never modified in place: cap them so an
	// append in the clone cannot write into the original's array.
	for k, v := range p.entity {
		c.entity[k] = v[:len(v):len(v)]
	}
	for k, v := range p.sites {
		c.sites[k] = v[:len(v):len(v)]
	}
	return c
}

// NewMemoryTx returns a transaction on an empty in-memory project, for
// folding a set of events into a throw-away projection (as-of queries).
func NewMemoryTx(project string) Tx { return &memTx{p: newMemProject(project)} }

type memTx struct {
	p        *memProject
	readOnly bool
}

var errReadOnly = errors.New("projections: write in a read-only view")

func (t *memTx) Project() string { return t.p.id }

func (t *memTx) Get(key []byte) ([]byte, bool, error) {
	it, ok := t.p.kv.Get(kv{k: key})
	if !ok {
		return nil, false, nil
	}
	return append([]byte(nil), it.v...), true, nil
}

func (t *memTx) Scan(prefix, after []byte, fn func(key, value []byte) error) error {
	start := prefix
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		start = append(append([]byte(nil), after...), 0)
	}
	var err error
	t.p.kv.AscendGreaterOrEqual(kv{k: start}, func(it kv) bool {
		if !bytes.HasPrefix(it.k, prefix) {
			return false
		}
		err = fn(append([]byte(nil), it.k...), append([]byte(nil), it.v...))
		return err == nil
	})
	if err == events.StopScan {
		return nil
	}
	return err
}

func (t *memTx) Set(key, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	t.p.kv.ReplaceOrInsert(kv{k: append([]byte(nil), key...), v: append([]byte(nil), value...)})
	return nil
}

func (t *memTx) Delete(key []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	t.p.kv.Delete(kv{k: key})
	return nil
}

func (t *memTx) Event(id ulid.ULID) (*events.Event, error) { return t.p.byID[id], nil }

func (t *memTx) EntityEvents(entity string) ([]*events.Event, error) {
	evs := append([]*events.Event(nil), t.p.entity[entity]...)
	sort.Slice(evs, func(i, j int) bool { return evs[i].Position().Compare(evs[j].Position()) < 0 })
	return evs, nil
}

func (t *memTx) ScanEvents(after events.Position, fn func(*events.Event) error) error {
	var err error
	t.p.log.AscendGreaterOrEqual(memEvent{pos: after}, func(it memEvent) bool {
		if it.pos.Compare(after) == 0 {
			return true
		}
		err = fn(it.e)
		return err == nil
	})
	if err == events.StopScan {
		return nil
	}
	return err
}

func (t *memTx) SiteEvents(site string, after uint64, limit int) ([]*events.Event, error) {
	evs := t.p.sites[site]
	if after >= uint64(len(evs)) {
		return nil, nil
	}
	evs = evs[after:]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return append([]*events.Event(nil), evs...), nil
}

func (t *memTx) Head(site string) (events.Head, error) {
	evs := t.p.sites[site]
	if len(evs) == 0 {
		return events.Head{}, nil
	}
	last := evs[len(evs)-1]
	return events.Head{Seq: last.Seq, Hash: last.Hash}, nil
}

func (t *memTx) Lamport() uint64 { return t.p.lamport }

func (t *memTx) Vector() (events.Vector, error) {
	v := events.Vector{}
	for site, evs := range t.p.sites {
		if len(evs) > 0 {
			v[site] = uint64(len(evs))
		}
	}
	return v, nil
}

func (t *memTx) AppendLog(e *events.Event, _ bool) (bool, error) {
	if t.readOnly {
		return false, errReadOnly
	}
	if e.Project != t.p.id {
		return false, events.Errorf(events.EINVALID, "event %s belongs to project %q, not %q", e.ID, e.Project, t.p.id)
	}
	if _, dup := t.p.byID[e.ID]; dup {
		return false, nil
	}
	head, _ := t.Head(e.Site)
	lamport := func(id ulid.ULID) (uint64, bool, error) {
		if p, ok := t.p.byID[id]; ok {
			return p.Lamport, true, nil
		}
		return 0, false, nil
	}
	if err := events.CheckAppend(e, head, lamport); err != nil {
		return false, err
	}
	t.p.byID[e.ID] = e
	t.p.log.ReplaceOrInsert(memEvent{pos: e.Position(), e: e})
	t.p.entity[e.Entity] = append(t.p.entity[e.Entity], e)
	t.p.sites[e.Site] = append(t.p.sites[e.Site], e)
	if e.Lamport > t.p.lamport {
		t.p.lamport = e.Lamport
	}
	return true, nil
}

func (t *memTx) PendingFor(dep string) ([]*events.Event, error) {
	var out []*events.Event
	for _, e := range t.p.pending[dep] {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.Compare(out[j].ID) < 0 })
	return out, nil
}

func (t *memTx) ScanPending(fn func(*events.Event, string) error) error {
	deps := make([]string, 0, len(t.p.pending))
	for dep := range t.p.pending {
		deps = append(deps, dep)
	}
	sort.Strings(deps)
	for _, dep := range deps {
		evs, _ := t.PendingFor(dep)
		for _, e := range evs {
			if err := fn(e, dep); err != nil {
				if err == events.StopScan {
					return nil
				}
				return err
			}
		}
	}
	return nil
}

func (t *memTx) HoldPending(e *events.Event, dep string) error {
	if t.readOnly {
		return errReadOnly
	}
	if t.p.pending[dep] == nil {
		t.p.pending[dep] = map[ulid.ULID]*events.Event{}
	}
	t.p.pending[dep][e.ID] = e
	return nil
}

func (t *memTx) TakePending(dep string) ([]*events.Event, error) {
	if t.readOnly {
		return nil, errReadOnly
	}
	out, _ := t.PendingFor(dep)
	delete(t.p.pending, dep)
	return out, nil
}

func (t *memTx) PendingCount() (int, error) {
	n := 0
	for _, held := range t.p.pending {
		n += len(held)
	}
	return n, nil
}

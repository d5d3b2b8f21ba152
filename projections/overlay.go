package projections

import (
	"sort"
	"strings"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Override is a write an overlay holds over a base: a value, or a deletion.
type Override struct {
	Value   []byte
	Deleted bool
}

// MergeScan calls fn for the union of a base's keys (base walks them in
// order) and an overlay's (keys, sorted, looked up in over), the overlay
// winning and its deletions hiding base keys. events.StopScan from fn ends
// the walk without error. Every transaction overlay uses it.
func MergeScan(base func(fn func(k, v []byte) error) error, keys []string, over map[string]Override, fn func(k, v []byte) error) error {
	emitMine := func(upTo []byte) error { // overlay keys before upTo (nil: all)
		for len(keys) > 0 && (upTo == nil || keys[0] < string(upTo)) {
			k := keys[0]
			keys = keys[1:]
			if w := over[k]; !w.Deleted {
				if err := fn([]byte(k), w.Value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := base(func(k, v []byte) error {
		if err := emitMine(k); err != nil {
			return err
		}
		if w, overridden := over[string(k)]; overridden {
			if len(keys) > 0 && keys[0] == string(k) {
				keys = keys[1:]
				if !w.Deleted {
					return fn(k, w.Value)
				}
			}
			return nil
		}
		return fn(k, v)
	})
	if err == nil {
		err = emitMine(nil)
	}
	if err == events.StopScan {
		return nil
	}
	return err
}

// MergeEvents calls fn for the events of a base scan (base, in total order,
// after position after) merged with extra events not yet in the base, in
// total order. events.StopScan from fn ends the walk without error. Every
// transaction overlay scans its log with it.
func MergeEvents(after events.Position, extra []*events.Event, base func(fn func(*events.Event) error) error, fn func(*events.Event) error) error {
	var mine []*events.Event
	for _, e := range extra {
		if e.Position().Compare(after) > 0 {
			mine = append(mine, e)
		}
	}
	sortEvents(mine)
	err := base(func(e *events.Event) error {
		for len(mine) > 0 && mine[0].Position().Compare(e.Position()) < 0 {
			if err := fn(mine[0]); err != nil {
				return err
			}
			mine = mine[1:]
		}
		return fn(e)
	})
	for err == nil && len(mine) > 0 {
		err = fn(mine[0])
		mine = mine[1:]
	}
	if err == events.StopScan {
		return nil
	}
	return err
}

// overlay is a Tx over a read-only Reader that keeps every write in memory:
// what a merge analysis folds incoming events into, changing nothing.
type overlay struct {
	base     Reader
	writes   map[string]Override
	sorted   []string // keys of writes, sorted, but for fresh
	fresh    []string // keys of writes added since sorted was last merged
	appended []*events.Event
	byID     map[ulid.ULID]*events.Event
	byEntity map[string][]*events.Event
	heads    map[string]events.Head
	lamport  uint64
	held     map[string]map[ulid.ULID]*events.Event
	taken    map[string]bool
}

var _ Tx = (*overlay)(nil)

func newOverlay(base Reader) *overlay {
	return &overlay{
		base: base, writes: map[string]Override{}, byID: map[ulid.ULID]*events.Event{},
		byEntity: map[string][]*events.Event{},
		heads:    map[string]events.Head{}, lamport: base.Lamport(),
		held: map[string]map[ulid.ULID]*events.Event{}, taken: map[string]bool{},
	}
}

func (o *overlay) Project() string { return o.base.Project() }

func (o *overlay) Get(key []byte) ([]byte, bool, error) {
	if w, ok := o.writes[string(key)]; ok {
		return w.Value, !w.Deleted, nil
	}
	return o.base.Get(key)
}

// Scan walks the base and the writes merged. The written keys are kept
// sorted (new ones merged in at the next scan), so that a scan costs a
// binary search, not a pass over every write: an analysis of a large import
// scans once per item.
func (o *overlay) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	if len(o.fresh) > 0 {
		sort.Strings(o.fresh)
		merged := make([]string, 0, len(o.sorted)+len(o.fresh))
		a, b := o.sorted, o.fresh
		for len(a) > 0 && len(b) > 0 {
			if a[0] < b[0] {
				merged, a = append(merged, a[0]), a[1:]
			} else {
				merged, b = append(merged, b[0]), b[1:]
			}
		}
		o.sorted, o.fresh = append(append(merged, a...), b...), nil
	}
	from := string(prefix)
	if after != nil && string(after) > from {
		from = string(after)
	}
	i := sort.SearchStrings(o.sorted, from)
	j := i
	for j < len(o.sorted) && strings.HasPrefix(o.sorted[j], string(prefix)) {
		j++
	}
	keys := o.sorted[i:j]
	if len(keys) > 0 && after != nil && keys[0] == string(after) {
		keys = keys[1:]
	}
	base := func(f func(k, v []byte) error) error { return o.base.Scan(prefix, after, f) }
	return MergeScan(base, keys, o.writes, fn)
}

func (o *overlay) Set(key, value []byte) error {
	o.write(string(key), Override{Value: append([]byte(nil), value...)})
	return nil
}

func (o *overlay) Delete(key []byte) error {
	o.write(string(key), Override{Deleted: true})
	return nil
}

func (o *overlay) write(k string, w Override) {
	if _, ok := o.writes[k]; !ok {
		o.fresh = append(o.fresh, k)
	}
	o.writes[k] = w
}

func (o *overlay) Event(id ulid.ULID) (*events.Event, error) {
	if e := o.byID[id]; e != nil {
		return e, nil
	}
	return o.base.Event(id)
}

func sortEvents(evs []*events.Event) {
	sort.Slice(evs, func(i, j int) bool { return evs[i].Position().Compare(evs[j].Position()) < 0 })
}

func (o *overlay) EntityEvents(entity string) ([]*events.Event, error) {
	evs, err := o.base.EntityEvents(entity)
	if err != nil {
		return nil, err
	}
	if mine := o.byEntity[entity]; len(mine) > 0 {
		evs = append(evs, mine...)
		sortEvents(evs)
	}
	return evs, nil
}

func (o *overlay) ScanEvents(after events.Position, fn func(*events.Event) error) error {
	base := func(f func(*events.Event) error) error { return o.base.ScanEvents(after, f) }
	return MergeEvents(after, o.appended, base, fn)
}

func (o *overlay) SiteEvents(site string, after uint64, limit int) ([]*events.Event, error) {
	evs, err := o.base.SiteEvents(site, after, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range o.appended {
		if e.Site == site && e.Seq > after && (limit <= 0 || len(evs) < limit) {
			evs = append(evs, e)
		}
	}
	return evs, nil
}

func (o *overlay) Head(site string) (events.Head, error) {
	if h, ok := o.heads[site]; ok {
		return h, nil
	}
	return o.base.Head(site)
}

func (o *overlay) Lamport() uint64 { return o.lamport }

func (o *overlay) Vector() (events.Vector, error) {
	v, err := o.base.Vector()
	if err != nil {
		return nil, err
	}
	v = v.Clone()
	for site, h := range o.heads {
		v[site] = h.Seq
	}
	return v, nil
}

func (o *overlay) AppendLog(e *events.Event, _ bool) (bool, error) {
	if have, err := o.Event(e.ID); err != nil || have != nil {
		return false, err
	}
	head, err := o.Head(e.Site)
	if err != nil {
		return false, err
	}
	lamport := func(id ulid.ULID) (uint64, bool, error) {
		p, err := o.Event(id)
		if err != nil || p == nil {
			return 0, false, err
		}
		return p.Lamport, true, nil
	}
	if err := events.CheckAppend(e, head, lamport); err != nil {
		return false, err
	}
	o.appended = append(o.appended, e)
	o.byID[e.ID] = e
	o.byEntity[e.Entity] = append(o.byEntity[e.Entity], e)
	o.heads[e.Site] = events.Head{Seq: e.Seq, Hash: e.Hash}
	if e.Lamport > o.lamport {
		o.lamport = e.Lamport
	}
	return true, nil
}

func (o *overlay) PendingFor(dep string) ([]*events.Event, error) {
	var out []*events.Event
	if !o.taken[dep] {
		base, err := o.base.PendingFor(dep)
		if err != nil {
			return nil, err
		}
		out = append(out, base...)
	}
	for _, e := range o.held[dep] {
		out = append(out, e)
	}
	return out, nil
}

func (o *overlay) ScanPending(fn func(*events.Event, string) error) error {
	err := o.base.ScanPending(func(e *events.Event, dep string) error {
		if o.taken[dep] {
			return nil
		}
		return fn(e, dep)
	})
	if err != nil {
		return err
	}
	for dep, held := range o.held {
		for _, e := range held {
			if err := fn(e, dep); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *overlay) HoldPending(e *events.Event, dep string) error {
	if o.held[dep] == nil {
		o.held[dep] = map[ulid.ULID]*events.Event{}
	}
	o.held[dep][e.ID] = e
	return nil
}

func (o *overlay) TakePending(dep string) ([]*events.Event, error) {
	out, err := o.PendingFor(dep)
	o.taken[dep] = true
	delete(o.held, dep)
	return out, err
}

func (o *overlay) PendingCount() (int, error) {
	n := 0
	err := o.ScanPending(func(*events.Event, string) error { n++; return nil })
	return n, err
}

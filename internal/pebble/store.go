package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/oklog/ulid/v2"
)

// Store keeps every project's event log and projection in one Pebble
// database. It implements projections.Storage and events.Feed (and, through
// projections.NewLog, events.Log).
//
// Writes are serialized by one append lock held while a transaction builds
// its batch and hands it to Pebble's commit pipeline, and released before
// the fsync: concurrent writers queue behind the lock, and Pebble's WAL
// syncs each group of batches with one fsync (group commit). Update returns
// only after its own batch is fsynced. The commit feed exposes an event only
// once its batch is fsynced, so nothing downstream (peers, streams) ever sees
// an event a crash could take back.
type Store struct {
	db     *pebble.DB
	logger *slog.Logger
	noSync bool

	mu       sync.Mutex // the append lock; guards projects, commit and the caches
	projects map[string]*projectState
	commit   uint64 // last commit number assigned
	// values caches projection values (nil: known absent) recently read or
	// written; lamports caches the Lamport time of recent events by id. Only
	// transactions write projections, under the lock, so both stay exact.
	values   *genCache[string, []byte]
	lamports *genCache[eventKey, uint64]

	durable  atomic.Uint64 // last commit number known fsynced
	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when durable advances
}

// eventKey names an event: ids are unique, but a log is per project.
type eventKey struct {
	project string
	id      ulid.ULID
}

// projectState caches what stamping and appending need: the Lamport mark
// and the head of every site's chain. It is read from disk on first use and
// changed only under the append lock, after a successful apply.
type projectState struct {
	lamport uint64
	heads   map[string]events.Head
	gen     uint64 // the projection's generation (see Rebuild)
}

// Options configures a Store.
type Options struct {
	// Logger receives the store's events. Default: slog.Default().
	Logger *slog.Logger
	// CacheSize is Pebble's block cache in bytes. Default 256 MiB: the write
	// path's point reads (dedup, claims, entities) miss the cache when it is
	// much smaller than the recently written data, and then read from disk.
	CacheSize int64
	// MemTableSize is Pebble's memtable size in bytes. Default 64 MiB. Up
	// to two memtables are in memory (outside the Go heap) at once.
	MemTableSize uint64
	// ValueCacheBytes bounds the store's cache of projection values read
	// and written by transactions (default 32 MiB); the cache of event
	// lamports gets a quarter of it. Each cache keeps two generations, so
	// it may hold up to twice its bound.
	ValueCacheBytes int
	// NoSync skips fsync. For benchmarks of the raw path only: with it,
	// a crash loses acknowledged writes.
	NoSync bool
}

var (
	_ projections.Storage = (*Store)(nil)
	_ events.Feed         = (*Store)(nil)
)

// Open opens (or creates, mode 0700) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ValueCacheBytes <= 0 {
		opts.ValueCacheBytes = 32 << 20
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = 64 << 20
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 256 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	po := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		Logger:             quietLogger{opts.Logger},
		// Larger memtables: fewer flushes and less compaction under bursts
		// of writes (each event writes several small keys).
		MemTableSize: opts.MemTableSize,
	}
	// Bloom filters on every level: the write path does many point reads
	// that miss (dedup by id, new entities, empty posting lists).
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{db: db, logger: opts.Logger, noSync: opts.NoSync, projects: map[string]*projectState{}, notify: make(chan struct{}),
		values:   newGenCache(opts.ValueCacheBytes, func(k string, v []byte) int { return len(k) + len(v) + 64 }),
		lamports: newGenCache(opts.ValueCacheBytes/4, func(k eventKey, _ uint64) int { return 64 + len(k.project) }),
	}
	// Everything on disk at open is as durable as it will get.
	last, err := s.lastCommit()
	if err != nil {
		db.Close()
		return nil, err
	}
	s.commit = last
	s.durable.Store(last)
	return s, nil
}

// Close closes the database. Pending Updates must have returned.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// DB returns the underlying Pebble database, for checkpoints and metrics.
func (s *Store) DB() *pebble.DB { return s.db }

func (s *Store) writeOpts() *pebble.WriteOptions {
	if s.noSync {
		return pebble.NoSync
	}
	return pebble.Sync
}

func (s *Store) lastCommit() (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tCommit}, UpperBound: []byte{tCommit + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return 0, err
	}
	_, pos, err := decodeCommit(v)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(it.Key()[1:]) + uint64(len(pos)) - 1, nil
}

// reader is what a Batch and a Snapshot have in common.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func get(r reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

// scan calls fn for each key in [lo, hi) in order; fn's key and value are
// valid only during the call.
func scan(r reader, lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			if err == events.StopScan {
				return nil
			}
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

// loadState reads a project's Lamport mark and chain heads.
func loadState(r reader, project string) (*projectState, error) {
	st := &projectState{heads: map[string]events.Head{}}
	if g, ok, err := get(r, genKey(project)); err != nil {
		return nil, err
	} else if ok && len(g) == 8 {
		st.gen = binary.BigEndian.Uint64(g)
	}
	lp := prefix(tLog, project)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lp, UpperBound: upperBound(lp)})
	if err != nil {
		return nil, err
	}
	if it.Last() {
		pos, err := parsePos(it.Key()[len(lp):])
		if err != nil {
			it.Close()
			return nil, err
		}
		st.lamport = pos.Lamport
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	sp := prefix(tSite, project)
	it, err = r.NewIter(&pebble.IterOptions{LowerBound: sp, UpperBound: upperBound(sp)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		rest := it.Key()[len(sp):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, errBadKey
		}
		site := string(rest[:i])
		end := upperBound(append(append([]byte(nil), sp...), rest[:i+1]...))
		if !it.SeekLT(end) {
			return nil, errBadKey
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		var h events.Head
		h.Seq = binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:])
		copy(h.Hash[:], v)
		st.heads[site] = h
		ok = it.SeekGE(end)
	}
	return st, it.Error()
}

// state returns the cached state of a project. Call with s.mu held.
func (s *Store) state(project string) (*projectState, error) {
	if st, ok := s.projects[project]; ok {
		return st, nil
	}
	st, err := loadState(s.db, project)
	if err != nil {
		return nil, fmt.Errorf("load project %s: %w", project, err)
	}
	s.projects[project] = st
	return st, nil
}

// Update implements projections.Storage.
func (s *Store) Update(ctx context.Context, project string, fn func(projections.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, commit, err := s.prepare(project, fn)
	if err != nil || b == nil {
		return err
	}
	defer b.Close()
	if !s.noSync {
		if err := b.SyncWait(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	s.markDurable(commit)
	return nil
}

// prepare runs fn and applies its batch under the append lock, returning
// before the fsync. It returns a nil batch when fn wrote nothing.
func (s *Store) prepare(project string, fn func(projections.Tx) error) (*pebble.Batch, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil, 0, events.Errorf(events.EUNAVAILABLE, "store is closed")
	}
	st, err := s.state(project)
	if err != nil {
		return nil, 0, err
	}
	t := newTx(s, project, st)
	if err := fn(t); err != nil {
		t.discard()
		return nil, 0, err
	}
	b := t.batch()
	if b.Empty() {
		b.Close()
		return nil, 0, nil
	}
	if s.noSync {
		err = s.db.Apply(b, pebble.NoSync)
	} else {
		err = s.db.ApplyNoSyncWait(b, pebble.Sync)
	}
	if err != nil {
		b.Close()
		return nil, 0, fmt.Errorf("apply batch: %w", err)
	}
	// Applied: publish the transaction's effect on the cached state.
	t.publish()
	st.lamport = t.lamport
	for site, h := range t.heads {
		st.heads[site] = h
	}
	s.commit = t.commit
	return b, t.commit, nil
}

// markDurable raises the durable commit number to at least c. Pebble syncs
// its WAL in order, so when c is synced everything before it is too.
func (s *Store) markDurable(c uint64) {
	for {
		cur := s.durable.Load()
		if c <= cur {
			return
		}
		if s.durable.CompareAndSwap(cur, c) {
			break
		}
	}
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// View implements projections.Storage on a Pebble snapshot.
func (s *Store) View(ctx context.Context, project string, fn func(projections.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.db == nil {
		s.mu.Unlock()
		return events.Errorf(events.EUNAVAILABLE, "store is closed")
	}
	st, err := s.state(project)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	gen := st.gen
	snap := s.db.NewSnapshot()
	s.mu.Unlock()
	defer snap.Close()
	return fn(&view{r: snap, project: project, gen: gen})
}

// Projects implements projections.Storage.
func (s *Store) Projects(ctx context.Context) ([]string, error) {
	var out []string
	err := scan(s.db, []byte{tProject}, []byte{tProject + 1}, func(k, _ []byte) error {
		out = append(out, string(k[1:]))
		return nil
	})
	return out, err
}

// view is a read-only projections.Reader over a snapshot.
type view struct {
	r       reader
	project string
	gen     uint64
	state   *projectState
}

func (v *view) Project() string { return v.project }

func (v *view) Get(key []byte) ([]byte, bool, error) { return get(v.r, viewKey(v.project, v.gen, key)) }

func (v *view) Scan(prefix, after []byte, fn func(k, val []byte) error) error {
	return scanView(v.r, v.project, v.gen, prefix, after, fn)
}

func scanView(r reader, project string, gen uint64, p, after []byte, fn func(k, v []byte) error) error {
	base := viewPrefix(project, gen)
	lo := viewKey(project, gen, p)
	hi := upperBound(lo)
	if len(p) == 0 {
		hi = upperBound(base)
	}
	if after != nil && bytes.Compare(after, p) >= 0 {
		lo = append(viewKey(project, gen, after), 0)
	}
	return scan(r, lo, hi, func(k, val []byte) error {
		return fn(append([]byte(nil), k[len(base):]...), append([]byte(nil), val...))
	})
}

func (v *view) Event(id ulid.ULID) (*events.Event, error) { return readEvent(v.r, v.project, id) }

func readEvent(r reader, project string, id ulid.ULID) (*events.Event, error) {
	pos, ok, err := get(r, idKey(project, id))
	if err != nil || !ok {
		return nil, err
	}
	return readAt(r, append(prefix(tLog, project), pos...))
}

func readAt(r reader, key []byte) (*events.Event, error) {
	b, ok, err := get(r, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("pebble: index names missing event %q", key)
	}
	e, err := events.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("pebble: event at %q: %w", key, err)
	}
	return e, nil
}

func (v *view) EntityEvents(entity string) ([]*events.Event, error) {
	return entityEvents(v.r, v.project, entity)
}

func entityEvents(r reader, project, entity string) ([]*events.Event, error) {
	p := prefix(tEntity, project, entity)
	var out []*events.Event
	err := scan(r, p, upperBound(p), func(k, v []byte) error {
		e, err := events.Unmarshal(v)
		if err != nil {
			return fmt.Errorf("pebble: entity index at %q: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func (v *view) ScanEvents(after events.Position, fn func(*events.Event) error) error {
	return scanEvents(v.r, v.project, after, fn)
}

func scanEvents(r reader, project string, after events.Position, fn func(*events.Event) error) error {
	p := prefix(tLog, project)
	lo := p
	if after != (events.Position{}) {
		lo = append(logKey(project, after), 0)
	}
	return scan(r, lo, upperBound(p), func(_, val []byte) error {
		e, err := events.Unmarshal(val)
		if err != nil {
			return err
		}
		return fn(e)
	})
}

func (v *view) SiteEvents(site string, after uint64, limit int) ([]*events.Event, error) {
	return siteEvents(v.r, v.project, site, after, limit)
}

func siteEvents(r reader, project, site string, after uint64, limit int) ([]*events.Event, error) {
	p := prefix(tSite, project, site)
	var keys [][]byte
	err := scan(r, siteKey(project, site, after+1), upperBound(p), func(_, val []byte) error {
		keys = append(keys, append(prefix(tLog, project), val[32:]...))
		if limit > 0 && len(keys) == limit {
			return events.StopScan
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*events.Event, 0, len(keys))
	for _, k := range keys {
		e, err := readAt(r, k)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (v *view) PendingFor(dep string) ([]*events.Event, error) {
	p := pendingPrefix(v.project, dep)
	var out []*events.Event
	err := scan(v.r, p, upperBound(p), func(k, val []byte) error {
		e, err := events.Unmarshal(val)
		if err != nil {
			return fmt.Errorf("held event at %q: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func (v *view) ScanPending(fn func(*events.Event, string) error) error {
	return scanPending(v.project, fn, func(lo, hi []byte, f func(k, val []byte) error) error {
		return scan(v.r, lo, hi, f)
	})
}

func (v *view) PendingCount() (int, error) {
	b, ok, err := get(v.r, pendingCountKey(v.project))
	if err != nil || !ok || len(b) != 8 {
		return 0, err
	}
	return int(binary.BigEndian.Uint64(b)), nil
}

func (v *view) loadState() *projectState {
	if v.state == nil {
		st, err := loadState(v.r, v.project)
		if err != nil {
			st = &projectState{heads: map[string]events.Head{}}
		}
		v.state = st
	}
	return v.state
}

func (v *view) Head(site string) (events.Head, error) { return v.loadState().heads[site], nil }

func (v *view) Lamport() uint64 { return v.loadState().lamport }

func (v *view) Vector() (events.Vector, error) {
	out := events.Vector{}
	for site, h := range v.loadState().heads {
		out[site] = h.Seq
	}
	return out, nil
}

// quietLogger sends Pebble's informational chatter to debug level.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any) {
	q.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (q quietLogger) Errorf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (q quietLogger) Fatalf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}

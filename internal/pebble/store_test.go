package pebble_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/events/eventstest"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
)

// openStore opens a store in a fresh temp dir, closed at cleanup.
func openStore(t testing.TB, dir string) *pebble.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logStore pairs a log with the store and directory behind it, for Reopen.
type logStore struct {
	events.Log
	s   *pebble.Store
	dir string
}

func TestLogConformance(t *testing.T) {
	eventstest.Run(t, eventstest.Harness{
		Open: func(t testing.TB) events.Log {
			dir := t.TempDir()
			s := openStore(t, dir)
			return logStore{projections.NewLog(s), s, dir}
		},
		Reopen: func(t testing.TB, l events.Log) events.Log {
			ls := l.(logStore)
			if err := ls.s.Close(); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, ls.dir)
			return logStore{projections.NewLog(s), s, ls.dir}
		},
	})
}

func newSite(t testing.TB, id string, store projections.Storage, seed int64) *projections.Site {
	t.Helper()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Millisecond); return now }
	s, err := projections.NewSite(projections.SiteConfig{ID: id, Storage: store, Now: clock, Rand: rand.New(rand.NewSource(seed))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dump(t testing.TB, store projections.Storage, project string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := store.View(context.Background(), project, func(r projections.Reader) error {
		return r.Scan(nil, nil, func(k, v []byte) error {
			fmt.Fprintf(&b, "%q = %s\n", k, v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// randomWrites makes n random writes (creates, updates, aliases, deletes,
// renames, component edits) through the site; refused ones are skipped.
func randomWrites(t testing.TB, s *projections.Site, rng *rand.Rand, n int) int {
	t.Helper()
	ctx := context.Background()
	ok := 0
	for i := 0; i < n; i++ {
		path := fmt.Sprintf("g%d.t%d", rng.Intn(4), rng.Intn(12))
		var c projections.Change
		switch r := rng.Intn(10); {
		case r < 5:
			c = projections.Change{Path: path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"d%d"}`, rng.Intn(1<<24), rng.Intn(3)))}
		case r < 7:
			c = projections.Change{Path: path, Data: json.RawMessage(fmt.Sprintf(`{"$value":"{g%d.t%d}"}`, rng.Intn(4), rng.Intn(12)))}
		case r < 8:
			c = projections.Change{Op: projections.OpDelete, Path: path}
		case r < 9:
			c = projections.Change{Op: projections.OpRename, Path: path, To: fmt.Sprintf("g%d.t%d", rng.Intn(4), rng.Intn(12))}
		default:
			c = projections.Change{Kind: "component", Path: fmt.Sprintf("C%d", rng.Intn(5)), Data: json.RawMessage(fmt.Sprintf(`{"description":"c%d","tokens":["%s"]}`, rng.Intn(9), path))}
		}
		if _, err := s.ApplyOne(ctx, "design", "tester", c); err == nil {
			ok++
		}
	}
	return ok
}

// TestRebuildMatchesIncremental is the property of issue 2: for random
// write sequences, rebuilding the projection from the log gives the same
// bytes as the incremental projection, and so does folding the same log
// into memory.
func TestRebuildMatchesIncremental(t *testing.T) {
	for seed := int64(0); seed < 10; seed++ {
		store := openStore(t, "")
		s := newSite(t, "paris", store, seed)
		if _, err := s.CreateProject(context.Background(), "design", "Design", "tester"); err != nil {
			t.Fatal(err)
		}
		ok := randomWrites(t, s, rand.New(rand.NewSource(seed)), 300)
		if ok < 50 {
			t.Fatalf("seed %d: only %d writes succeeded", seed, ok)
		}
		want := dump(t, store, "design")
		if err := store.Rebuild(context.Background(), "design"); err != nil {
			t.Fatal(err)
		}
		if got := dump(t, store, "design"); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: rebuild differs:\n--- incremental\n%s\n--- rebuilt\n%s", seed, want, got)
		}
		var evs []*events.Event
		projections.NewLog(store).Scan(context.Background(), "design", events.Position{}, func(e *events.Event) error {
			evs = append(evs, e)
			return nil
		})
		mem := projections.NewMemory()
		if _, err := projections.NewLog(mem).Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		if got := dump(t, mem, "design"); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: memory fold differs from pebble", seed)
		}
	}
}

// TestConcurrentWritersShareCommits runs many writers at once; every write
// must be acknowledged, present, and in the durable feed exactly once.
func TestConcurrentWritersShareCommits(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, "")
	s := newSite(t, "paris", store, 1)
	if _, err := s.CreateProject(ctx, "design", "", "tester"); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c := projections.Change{Path: fmt.Sprintf("w%d.t%d", w, i), Data: json.RawMessage(`{"$type":"number","$value":1}`)}
				if _, err := s.ApplyOne(ctx, "design", "tester", c); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p, _ := s.Project(ctx, "design")
	if p.Counts.Tokens != writers*each || p.Counts.Events != writers*each+1 {
		t.Fatalf("counts %+v", p.Counts)
	}
	if got := store.Last(); got != writers*each+1 {
		t.Fatalf("durable feed at %d, want %d", got, writers*each+1)
	}
	seen := map[string]bool{}
	var after uint64
	for {
		batch, err := store.Read(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, c := range batch {
			if c.Seq != after+1 {
				t.Fatalf("feed skipped from %d to %d", after, c.Seq)
			}
			after = c.Seq
			if seen[c.Event.ID.String()] {
				t.Fatalf("event %s twice in the feed", c.Event.ID)
			}
			seen[c.Event.ID.String()] = true
		}
	}
	if len(seen) != writers*each+1 {
		t.Fatalf("feed has %d events", len(seen))
	}
}

func TestFeedWait(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, "")
	s := newSite(t, "paris", store, 1)
	done := make(chan error, 1)
	go func() { done <- store.Wait(ctx, 0) }()
	if _, err := s.CreateProject(ctx, "design", "", "tester"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := store.Wait(cctx, store.Last()); err != context.Canceled {
		t.Fatalf("wait on a cancelled context: %v", err)
	}
}

// TestReopenKeepsState checks that the projection, clock and chain survive a
// close and reopen, and that the site continues its chain.
func TestReopenKeepsState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, "paris", store, 1)
	s.CreateProject(ctx, "design", "", "tester")
	randomWrites(t, s, rand.New(rand.NewSource(1)), 50)
	before := dump(t, store, "design")
	p1, _ := s.Project(ctx, "design")
	store.Close()

	store = openStore(t, dir)
	s = newSite(t, "paris", store, 2)
	if got := dump(t, store, "design"); !bytes.Equal(got, before) {
		t.Fatal("projection changed across reopen")
	}
	p2, _ := s.Project(ctx, "design")
	if p2.Lamport != p1.Lamport || !p2.Vector.Equal(p1.Vector) {
		t.Fatalf("project %+v after reopen, want %+v", p2, p1)
	}
	if _, err := s.ApplyOne(ctx, "design", "tester", projections.Change{Path: "after.reopen", Data: json.RawMessage(`{"$type":"number","$value":2}`)}); err != nil {
		t.Fatal(err)
	}
	if got := store.Last(); got != uint64(p1.Counts.Events)+1 {
		t.Fatalf("feed at %d after reopen and one write, want %d", got, p1.Counts.Events+1)
	}
}

// TestCausalBufferIsDurable holds events whose predecessors are missing,
// restarts the store, then delivers the predecessors: the held events apply.
// A rebuild in between keeps them (they are not part of the projection).
func TestCausalBufferIsDurable(t *testing.T) {
	ctx := context.Background()
	origin := newSite(t, "paris", projections.NewMemory(), 1)
	origin.CreateProject(ctx, "design", "", "u")
	for i := 0; i < 5; i++ {
		if _, err := origin.ApplyOne(ctx, "design", "u", projections.Change{Path: fmt.Sprintf("t.n%d", i), Data: json.RawMessage(`{"$type":"number","$value":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	var evs []*events.Event
	origin.Storage().View(ctx, "design", func(r projections.Reader) error {
		return r.ScanEvents(events.Position{}, func(e *events.Event) error { evs = append(evs, e); return nil })
	})

	dir := t.TempDir()
	store, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, "lyon", store, 2)
	rc, err := s.Receive(ctx, "design", evs[3:]) // seq 4 and 5 of paris: 1..3 missing
	if err != nil || len(rc.Held) != 3 || len(rc.Applied) != 0 {
		t.Fatalf("receipt %+v %v", rc, err)
	}
	store.Close()

	store = openStore(t, dir)
	s = newSite(t, "lyon", store, 3)
	if held, _ := s.Pending(ctx, "design"); len(held) != 3 {
		t.Fatalf("after restart %d held, want 3", len(held))
	}
	if err := store.Rebuild(ctx, "design"); err != nil {
		t.Fatal(err)
	}
	rc, err = s.Receive(ctx, "design", evs[:3])
	if err != nil || len(rc.Applied) != 6 {
		t.Fatalf("receipt %+v %v", rc, err)
	}
	if held, _ := s.Pending(ctx, "design"); len(held) != 0 {
		t.Fatalf("still held %v", held)
	}
	p, _ := s.Project(ctx, "design")
	if p.Counts.Tokens != 5 || p.Vector["paris"] != 6 {
		t.Fatalf("project %+v", p)
	}
}

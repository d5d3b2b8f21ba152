// Package eventstest is the conformance suite of events.Log: the contract
// written as tests. Every Log implementation runs it (see Run).
package eventstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Harness gives the suite fresh logs.
type Harness struct {
	// Open returns a new, empty log. The suite closes nothing: cleanup is
	// the harness's job (t.Cleanup).
	Open func(t testing.TB) events.Log
	// Reopen closes l and opens the same log again, as after a restart. Nil
	// for logs that do not outlive their process.
	Reopen func(t testing.TB, l events.Log) events.Log
}

// Run runs every conformance test against the harness.
func Run(t *testing.T, h Harness) {
	t.Run("AppendAndRead", func(t *testing.T) { testAppendAndRead(t, h) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, h) })
	t.Run("RefusesAndIsAtomic", func(t *testing.T) { testRefuses(t, h) })
	t.Run("Parents", func(t *testing.T) { testParents(t, h) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, h) })
	if h.Reopen != nil {
		t.Run("Reopen", func(t *testing.T) { testReopen(t, h) })
	}
}

// Chain makes valid event chains for tests: each call to Next returns the
// next event of a site in a project, stamped with a deterministic clock.
type Chain struct {
	mu      sync.Mutex
	ids     *events.IDSource
	now     time.Time
	heads   map[[2]string]events.Head
	lamport map[string]uint64
}

// NewChain returns a chain generator seeded with seed.
func NewChain(seed int64) *Chain {
	return &Chain{
		ids:     events.NewIDSource(rand.New(rand.NewSource(seed))),
		now:     time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC),
		heads:   map[[2]string]events.Head{},
		lamport: map[string]uint64{},
	}
}

// Next returns the next token.set event of site in project, for entity
// (a new entity when entity is ""), with the given parents.
func (c *Chain) Next(project, site, entity string, parents ...*events.Event) *events.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	if entity == "" {
		entity = c.ids.New(c.now).String()
	}
	var pids []ulid.ULID
	l := c.lamport[project]
	for _, p := range parents {
		pids = append(pids, p.ID)
		if p.Lamport > l {
			l = p.Lamport
		}
	}
	l++
	c.lamport[project] = l
	path := fmt.Sprintf("t.e%s", entity[len(entity)-6:])
	d := events.Draft{
		Type: events.TokenSet, Entity: entity, Path: path, Parents: pids, Actor: "suite",
		Changes: events.Changes{
			{Field: "$type", Value: json.RawMessage(`"number"`)},
			{Field: "$value", Value: json.RawMessage(fmt.Sprint(l))},
			{Field: "path", Value: events.JSONString(path)},
		},
	}
	k := [2]string{project, site}
	e := events.Stamp(d, project, site, c.heads[k], l, c.ids.New(c.now), c.now)
	c.heads[k] = events.Head{Seq: e.Seq, Hash: e.Hash}
	return e
}

func mustAppend(t testing.TB, l events.Log, evs ...*events.Event) int {
	t.Helper()
	n, err := l.Append(context.Background(), evs...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return n
}

func scanAll(t testing.TB, l events.Log, project string) []*events.Event {
	t.Helper()
	var out []*events.Event
	if err := l.Scan(context.Background(), project, events.Position{}, func(e *events.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

func testAppendAndRead(t *testing.T, h Harness) {
	ctx := context.Background()
	l := h.Open(t)
	c := NewChain(1)
	a1 := c.Next("p1", "paris", "")
	b1 := c.Next("p1", "lyon", "")
	a2 := c.Next("p1", "paris", a1.Entity, a1)
	other := c.Next("p2", "paris", "")
	if n := mustAppend(t, l, a1, b1, a2); n != 3 {
		t.Fatalf("appended %d, want 3", n)
	}
	mustAppend(t, l, other)

	got := scanAll(t, l, "p1")
	if len(got) != 3 {
		t.Fatalf("scan p1: %d events, want 3", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Position().Compare(got[i].Position()) >= 0 {
			t.Fatalf("scan not in total order at %d", i)
		}
	}
	e, err := l.Event(ctx, "p1", a2.ID)
	if err != nil || e.Hash != a2.Hash {
		t.Fatalf("event by id: %v %v", e, err)
	}
	if _, err := l.Event(ctx, "p2", a2.ID); events.ErrorCode(err) != events.ENOTFOUND {
		t.Fatalf("event of another project: err=%v, want not found", err)
	}
	ent, _ := l.EntityEvents(ctx, "p1", a1.Entity)
	if len(ent) != 2 || ent[0].ID != a1.ID || ent[1].ID != a2.ID {
		t.Fatalf("entity events: %v", ent)
	}
	site, _ := l.SiteEvents(ctx, "p1", "paris", 1, 10)
	if len(site) != 1 || site[0].ID != a2.ID {
		t.Fatalf("site events after 1: %v", site)
	}
	v, _ := l.Vector(ctx, "p1")
	if !v.Equal(events.Vector{"paris": 2, "lyon": 1}) {
		t.Fatalf("vector %v", v)
	}
	if lam, _ := l.Lamport(ctx, "p1"); lam != a2.Lamport {
		t.Fatalf("lamport %d, want %d", lam, a2.Lamport)
	}
	if hd, _ := l.Head(ctx, "p1", "paris"); hd.Seq != 2 || hd.Hash != a2.Hash {
		t.Fatalf("head %+v", hd)
	}
	// Scan after a position.
	var rest []*events.Event
	l.Scan(ctx, "p1", got[0].Position(), func(e *events.Event) error { rest = append(rest, e); return nil })
	if len(rest) != 2 || rest[0].ID != got[1].ID {
		t.Fatalf("scan after first: %d events", len(rest))
	}
	// Stop a scan early.
	n := 0
	l.Scan(ctx, "p1", events.Position{}, func(*events.Event) error { n++; return events.StopScan })
	if n != 1 {
		t.Fatalf("StopScan: %d calls", n)
	}
}

func testIdempotent(t *testing.T, h Harness) {
	l := h.Open(t)
	c := NewChain(2)
	a1 := c.Next("p", "paris", "")
	a2 := c.Next("p", "paris", "")
	mustAppend(t, l, a1, a2)
	if n := mustAppend(t, l, a1, a2, a1); n != 0 {
		t.Fatalf("re-append added %d events", n)
	}
	a3 := c.Next("p", "paris", "")
	if n := mustAppend(t, l, a2, a3, a3); n != 1 {
		t.Fatalf("mixed append added %d, want 1", n)
	}
	if got := len(scanAll(t, l, "p")); got != 3 {
		t.Fatalf("%d events, want 3", got)
	}
}

func testRefuses(t *testing.T, h Harness) {
	ctx := context.Background()
	l := h.Open(t)
	c := NewChain(3)
	a1, a2, a3 := c.Next("p", "paris", ""), c.Next("p", "paris", ""), c.Next("p", "paris", "")
	mustAppend(t, l, a1)

	var gap *events.GapError
	if _, err := l.Append(ctx, a3); !errors.As(err, &gap) || gap.Have != 1 || gap.Want != 3 {
		t.Fatalf("gap: err=%v", err)
	}
	// Atomic: a valid event followed by a refused one appends neither.
	bad := *a3
	bad.Actor = "mallory"
	var chainErr *events.ChainError
	if _, err := l.Append(ctx, a2, &bad); !errors.As(err, &chainErr) {
		t.Fatalf("edited event: err=%v, want ChainError", err)
	}
	if got := len(scanAll(t, l, "p")); got != 1 {
		t.Fatalf("a refused append left %d events, want 1", got)
	}
	// A fork: another event claiming seq 2 after seq 2 is in.
	mustAppend(t, l, a2)
	fork := NewChain(3)
	fork.Next("p", "paris", "")
	f2 := fork.Next("p", "paris", a1.Entity) // different content, same seq and prevHash
	if f2.ID == a2.ID {
		t.Fatal("fork generator produced the same event")
	}
	if _, err := l.Append(ctx, f2); !errors.As(err, &chainErr) {
		t.Fatalf("fork: err=%v, want ChainError", err)
	}
	// A broken prevHash.
	forged := *a3
	forged.PrevHash = events.Hash{1}
	forged.Hash = forged.ComputeHash()
	if _, err := l.Append(ctx, &forged); !errors.As(err, &chainErr) {
		t.Fatalf("forged prevHash: err=%v, want ChainError", err)
	}
	// Structurally invalid.
	inv := *a3
	inv.Site = "Not A Site"
	inv.Hash = inv.ComputeHash()
	if _, err := l.Append(ctx, &inv); events.ErrorCode(err) != events.EINVALID {
		t.Fatalf("invalid site: err=%v", err)
	}
	// Two projects in one call.
	q1 := c.Next("q", "paris", "")
	if _, err := l.Append(ctx, a3, q1); err == nil {
		t.Fatal("append across projects succeeded")
	}
	if got := len(scanAll(t, l, "p")); got != 2 {
		t.Fatalf("%d events after refusals, want 2", got)
	}
}

func testParents(t *testing.T, h Harness) {
	ctx := context.Background()
	l := h.Open(t)
	c := NewChain(4)
	root := c.Next("p", "paris", "")
	child := c.Next("p", "lyon", root.Entity, root)
	var gap *events.GapError
	if _, err := l.Append(ctx, child); !errors.As(err, &gap) || len(gap.Parents) != 1 || gap.Parents[0] != root.ID {
		t.Fatalf("missing parent: err=%v", err)
	}
	// Parent earlier in the same call is enough.
	if n := mustAppend(t, l, root, child); n != 2 {
		t.Fatalf("appended %d", n)
	}
	// A child whose Lamport time is not above its parent's is refused.
	bad := c.Next("p", "oslo", root.Entity, child)
	bad.Lamport = child.Lamport
	bad.Hash = bad.ComputeHash()
	var chainErr *events.ChainError
	if _, err := l.Append(ctx, bad); !errors.As(err, &chainErr) {
		t.Fatalf("lamport not above parent: err=%v", err)
	}
	if lam, _ := l.Lamport(ctx, "p"); lam != child.Lamport {
		t.Fatalf("lamport %d, want %d", lam, child.Lamport)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	l := h.Open(t)
	c := NewChain(5)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		site := fmt.Sprintf("site-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.Append(context.Background(), c.Next("p", site, "")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent append: %v", err)
	}
	v, _ := l.Vector(context.Background(), "p")
	if v.Total() != writers*each || len(v) != writers {
		t.Fatalf("vector %v, want %d sites of %d", v, writers, each)
	}
	if got := len(scanAll(t, l, "p")); got != writers*each {
		t.Fatalf("%d events, want %d", got, writers*each)
	}
}

func testReopen(t *testing.T, h Harness) {
	ctx := context.Background()
	l := h.Open(t)
	c := NewChain(6)
	a1 := c.Next("p", "paris", "")
	a2 := c.Next("p", "paris", a1.Entity, a1)
	b1 := c.Next("p", "lyon", "")
	mustAppend(t, l, a1, a2, b1)
	l = h.Reopen(t, l)
	if hd, _ := l.Head(ctx, "p", "paris"); hd.Seq != 2 || hd.Hash != a2.Hash {
		t.Fatalf("head after reopen %+v", hd)
	}
	if lam, _ := l.Lamport(ctx, "p"); lam != b1.Lamport {
		t.Fatalf("lamport after reopen %d, want %d", lam, b1.Lamport)
	}
	if n := mustAppend(t, l, a2); n != 0 {
		t.Fatal("dedup lost across reopen")
	}
	a3 := c.Next("p", "paris", a2.Entity, a2)
	if n := mustAppend(t, l, a3); n != 1 {
		t.Fatal("chain did not continue after reopen")
	}
	if got := len(scanAll(t, l, "p")); got != 4 {
		t.Fatalf("%d events after reopen, want 4", got)
	}
}

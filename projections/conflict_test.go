package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
)

// pair is two sites sharing project "p", each with its own clock.
type pair struct {
	t          *testing.T
	a, b       *simSite
	clockA     *fakeClock
	clockB     *fakeClock
	offA, offB time.Duration
}

func newPair(t *testing.T) *pair {
	t.Helper()
	start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	p := &pair{t: t, clockA: &fakeClock{t: start}, clockB: &fakeClock{t: start}}
	mk := func(id string, c *fakeClock, off *time.Duration, seed int64) *simSite {
		store := projections.NewMemory()
		s, err := projections.NewSite(projections.SiteConfig{ID: id, Storage: store,
			Now: func() time.Time { return c.Now().Add(*off) }, Rand: rand.New(rand.NewSource(seed))})
		if err != nil {
			t.Fatal(err)
		}
		return &simSite{Site: s, store: store}
	}
	// "lyon" sorts before "paris": on equal Lamport times paris wins.
	p.a = mk("paris", p.clockA, &p.offA, 1)
	p.b = mk("lyon", p.clockB, &p.offB, 2)
	if _, err := p.a.CreateProject(context.Background(), "p", "P", "alice"); err != nil {
		t.Fatal(err)
	}
	p.exchange()
	return p
}

// exchange delivers each site's events to the other and returns what the
// last delivery reported.
func (p *pair) exchange() *projections.Receipt {
	p.t.Helper()
	var rc *projections.Receipt
	for _, x := range [][2]*simSite{{p.a, p.b}, {p.b, p.a}} {
		var err error
		rc, err = x[1].Receive(context.Background(), "p", allEvents(p.t, x[0].store, "p"))
		if err != nil {
			p.t.Fatal(err)
		}
	}
	if !bytes.Equal(dump(p.t, p.a.store, "p"), dump(p.t, p.b.store, "p")) {
		p.t.Fatal("sites differ after exchange")
	}
	return rc
}

func (p *pair) put(s *simSite, path, data string) *projections.Result {
	p.t.Helper()
	r, err := s.ApplyOne(context.Background(), "p", s.ID()+"-user", projections.Change{Path: path, Data: json.RawMessage(data)})
	if err != nil {
		p.t.Fatalf("%s put %s: %v", s.ID(), path, err)
	}
	return r
}

func (p *pair) del(s *simSite, path string) {
	p.t.Helper()
	if _, err := s.ApplyOne(context.Background(), "p", s.ID()+"-user", projections.Change{Op: projections.OpDelete, Path: path}); err != nil {
		p.t.Fatalf("%s delete %s: %v", s.ID(), path, err)
	}
}

// only returns the one open conflict, checking its kind, on both sites.
func (p *pair) only(kind string) *projections.Conflict {
	p.t.Helper()
	ca, _ := p.a.Conflicts(context.Background(), "p")
	cb, _ := p.b.Conflicts(context.Background(), "p")
	ja, _ := json.Marshal(ca)
	jb, _ := json.Marshal(cb)
	if !bytes.Equal(ja, jb) {
		p.t.Fatalf("sites list different conflicts:\n%s\n%s", ja, jb)
	}
	var found *projections.Conflict
	for _, c := range ca {
		if c.Kind == kind {
			if found != nil && found.Path == c.Path {
				continue
			}
			found = c
		}
	}
	if found == nil {
		p.t.Fatalf("no %s conflict among %s", kind, ja)
	}
	return found
}

func (p *pair) none() {
	p.t.Helper()
	for _, s := range []*simSite{p.a, p.b} {
		if cs, _ := s.Conflicts(context.Background(), "p"); len(cs) != 0 {
			j, _ := json.Marshal(cs)
			p.t.Fatalf("%s still has conflicts: %s", s.ID(), j)
		}
	}
}

func (p *pair) token(s *simSite, path string) *projections.Token {
	p.t.Helper()
	tok, err := s.Token(context.Background(), "p", path)
	if err != nil {
		p.t.Fatalf("%s token %s: %v", s.ID(), path, err)
	}
	return tok
}

func (p *pair) resolve(s *simSite, c *projections.Conflict, res projections.Resolution) *projections.Resolved {
	p.t.Helper()
	r, err := s.Resolve(context.Background(), "p", s.ID()+"-user", c.ID, res)
	if err != nil {
		p.t.Fatalf("resolve %s %s: %v", c.Kind, c.ID, err)
	}
	p.exchange()
	p.none()
	return r
}

func TestConflictKinds(t *testing.T) {
	ctx := context.Background()
	t.Run("value", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		ra := p.put(p.a, "color.x", `{"$type":"color","$value":"#111111"}`)
		rb := p.put(p.b, "color.x", `{"$type":"color","$value":"#222222"}`)
		p.exchange()
		c := p.only(projections.ConflictValue)
		if c.Field != "$value" || len(c.Candidates) != 2 || c.Winner != *ra.Event {
			t.Fatalf("conflict %+v, want $value with winner %s (paris wins the tie)", c, ra.Event)
		}
		if tok := p.token(p.b, "color.x"); string(tok.Value) != `"#111111"` || !tok.Conflicted {
			t.Fatalf("projection shows %s (conflicted %v), want the winner #111111", tok.Value, tok.Conflicted)
		}
		// Settle for the loser, on the other site.
		p.resolve(p.a, c, projections.Resolution{Pick: rb.Event})
		if tok := p.token(p.a, "color.x"); string(tok.Value) != `"#222222"` || tok.Conflicted {
			t.Fatalf("after resolve: %s conflicted=%v", tok.Value, tok.Conflicted)
		}
		// A candidate that is not one is refused; a resolved id is gone.
		if _, err := p.a.Resolve(ctx, "p", "x", c.ID, projections.Resolution{Value: json.RawMessage(`"#333333"`)}); events.ErrorCode(err) != events.ENOTFOUND {
			t.Fatalf("resolving a closed conflict: %v", err)
		}
	})
	t.Run("different fields merge", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		p.put(p.a, "color.x", `{"$type":"color","$value":"#111111"}`)
		p.put(p.b, "color.x", `{"$type":"color","$value":"#000000","$description":"Ink"}`)
		p.exchange()
		p.none()
		if tok := p.token(p.b, "color.x"); string(tok.Value) != `"#111111"` || string(tok.Description) != `"Ink"` {
			t.Fatalf("merged token %s / %s", tok.Value, tok.Description)
		}
	})
	t.Run("same value is no conflict", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		p.put(p.a, "color.x", `{"$type":"color","$value":"#123456"}`)
		p.put(p.b, "color.x", `{"$type":"color","$value":"#123456"}`)
		p.exchange()
		p.none()
	})
	t.Run("delete-update", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		p.del(p.a, "color.x")
		rb := p.put(p.b, "color.x", `{"$type":"color","$value":"#ffffff"}`)
		p.exchange()
		c := p.only(projections.ConflictDeleteUpdate)
		if _, err := p.a.Token(ctx, "p", "color.x"); events.ErrorCode(err) != events.ENOTFOUND {
			t.Fatalf("the delete (paris) wins the tie; token still there: %v", err)
		}
		if _, err := p.a.Resolve(ctx, "p", "u", c.ID, projections.Resolution{Value: json.RawMessage(`"x"`)}); events.ErrorCode(err) != events.EINVALID {
			t.Fatalf("value for a delete-update: %v", err)
		}
		p.resolve(p.b, c, projections.Resolution{Pick: rb.Event})
		if tok := p.token(p.a, "color.x"); string(tok.Value) != `"#ffffff"` {
			t.Fatalf("kept token %s", tok.Value)
		}
	})
	t.Run("path-collision", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.y", `{"$type":"color","$value":"#aaaaaa"}`)
		p.put(p.b, "color.y", `{"$type":"color","$value":"#bbbbbb"}`)
		p.exchange()
		c := p.only(projections.ConflictPathCollision)
		if len(c.Candidates) != 2 || c.Candidates[0].Entity == c.Candidates[1].Entity {
			t.Fatalf("collision %+v", c)
		}
		keep := c.Candidates[0] // the loser by total order
		p.resolve(p.a, c, projections.Resolution{Pick: &keep.Event})
		if tok := p.token(p.b, "color.y"); tok.ID != keep.Entity || string(tok.Value) != string(keep.Value) {
			t.Fatalf("kept %s %s, want %s %s", tok.ID, tok.Value, keep.Entity, keep.Value)
		}
	})
	t.Run("dangling-alias", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.base", `{"$type":"color","$value":"#010203"}`)
		p.put(p.a, "color.other", `{"$type":"color","$value":"#040506"}`)
		p.exchange()
		p.del(p.a, "color.base")
		p.put(p.b, "color.alias", `{"$value":"{color.base}"}`)
		p.exchange()
		c := p.only(projections.ConflictDanglingAlias)
		if c.Path != "color.alias" || c.Detail == "" {
			t.Fatalf("dangling %+v", c)
		}
		if tok := p.token(p.a, "color.alias"); tok.ResolvedValue != nil {
			t.Fatalf("a dangling alias resolves to %s", tok.ResolvedValue)
		}
		if _, err := p.a.Resolve(ctx, "p", "u", c.ID, projections.Resolution{Value: json.RawMessage(`"{color.nowhere}"`)}); events.ErrorCode(err) != events.EINVALID {
			t.Fatalf("a value that still dangles: %v", err)
		}
		p.resolve(p.a, c, projections.Resolution{Value: json.RawMessage(`"{color.other}"`)})
		if tok := p.token(p.b, "color.alias"); string(tok.ResolvedValue) != `"#040506"` {
			t.Fatalf("resolved alias %s", tok.ResolvedValue)
		}
	})
	t.Run("alias-cycle", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "x", `{"$type":"color","$value":"#ffffff"}`)
		p.put(p.a, "y", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		p.put(p.a, "x", `{"$type":"color","$value":"{y}"}`)
		p.put(p.b, "y", `{"$type":"color","$value":"{x}"}`)
		p.exchange()
		c := p.only(projections.ConflictAliasCycle)
		if cs, _ := p.a.Conflicts(ctx, "p"); len(cs) != 2 {
			t.Fatalf("want a cycle conflict on each member, got %d", len(cs))
		}
		if _, err := p.a.Resolve(ctx, "p", "u", c.ID, projections.Resolution{Value: json.RawMessage(`"#123456"`)}); err != nil {
			t.Fatal(err)
		}
		p.exchange()
		p.none()
	})
	t.Run("invalid-value", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "t", `{"$type":"dimension","$value":"4px"}`)
		p.exchange()
		p.put(p.a, "t", `{"$type":"fontFamily","$value":"4px"}`)                   // writes $type only
		p.put(p.b, "t", `{"$type":"dimension","$value":{"value":1,"unit":"rem"}}`) // writes $value only
		p.exchange()
		c := p.only(projections.ConflictInvalidValue)
		if len(c.Candidates) != 2 || c.Detail == "" {
			t.Fatalf("invalid-value %+v", c)
		}
		p.resolve(p.b, c, projections.Resolution{Value: json.RawMessage(`"Inter"`)})
		if tok := p.token(p.a, "t"); string(tok.Type) != `"fontFamily"` || string(tok.Value) != `"Inter"` {
			t.Fatalf("token %s %s", tok.Type, tok.Value)
		}
	})
	t.Run("project name", func(t *testing.T) {
		a, b := &simSite{}, &simSite{}
		for i, s := range []*simSite{a, b} {
			store := projections.NewMemory()
			site := newSite(t, []string{"paris", "lyon"}[i], store, int64(i))
			s.Site, s.store = site, store
			site.CreateProject(ctx, "shared", []string{"Paris name", "Lyon name"}[i], "u")
		}
		a.Receive(ctx, "shared", allEvents(t, b.store, "shared"))
		cs, _ := a.Conflicts(ctx, "shared")
		if len(cs) != 1 || cs[0].Kind != projections.ConflictValue || cs[0].Field != "name" {
			t.Fatalf("concurrent project creations: %+v", cs)
		}
		if _, err := a.Resolve(ctx, "shared", "u", cs[0].ID, projections.Resolution{Value: json.RawMessage(`"One name"`)}); err != nil {
			t.Fatal(err)
		}
		b.Receive(ctx, "shared", allEvents(t, a.store, "shared"))
		if p, _ := b.Project(ctx, "shared"); p.Name != "One name" || p.Counts.Conflicts != 0 {
			t.Fatalf("project %+v", p)
		}
	})
}

func TestResolveRefusals(t *testing.T) {
	ctx := context.Background()
	p := newPair(t)
	p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
	p.exchange()
	p.put(p.a, "color.x", `{"$type":"color","$value":"#111111"}`)
	p.put(p.b, "color.x", `{"$type":"color","$value":"#222222"}`)
	p.exchange()
	c := p.only(projections.ConflictValue)
	before := dump(t, p.a.store, "p")
	bogus := c.Winner
	bogus[15] ^= 1
	for name, tc := range map[string]struct {
		res  projections.Resolution
		code string
	}{
		"neither":         {projections.Resolution{}, events.EMALFORMED},
		"both":            {projections.Resolution{Pick: &c.Winner, Value: json.RawMessage(`"#333333"`)}, events.EMALFORMED},
		"not a candidate": {projections.Resolution{Pick: &bogus}, events.EINVALID},
		"invalid value":   {projections.Resolution{Value: json.RawMessage(`"not a color"`)}, events.EINVALID},
		"malformed":       {projections.Resolution{Value: json.RawMessage(`{`)}, events.EMALFORMED},
	} {
		if _, err := p.a.Resolve(ctx, "p", "u", c.ID, tc.res); events.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	if _, err := p.a.Resolve(ctx, "p", "u", "0000", projections.Resolution{Pick: &c.Winner}); events.ErrorCode(err) != events.ENOTFOUND {
		t.Errorf("unknown conflict: %v", err)
	}
	if !bytes.Equal(before, dump(t, p.a.store, "p")) {
		t.Fatal("refused resolutions changed the projection")
	}
}

// TestSkewFlags drives each clock-skew flag with injected clocks, and checks
// that none changes a winner: the same edits with and without skew end in
// the same values.
func TestSkewFlags(t *testing.T) {
	ctx := context.Background()
	hasFlag := func(flags []string, f string) bool {
		for _, x := range flags {
			if x == f {
				return true
			}
		}
		return false
	}
	run := func(t *testing.T, offLyon time.Duration) (*pair, *projections.Receipt) {
		p := newPair(t)
		p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		p.offB = offLyon
		p.put(p.a, "color.x", `{"$type":"color","$value":"#111111"}`)
		p.put(p.b, "color.x", `{"$type":"color","$value":"#222222"}`)
		rc := p.exchange() // the last delivery is lyon's events to paris
		return p, rc
	}

	t.Run("wall clock disagrees with the total order", func(t *testing.T) {
		p, _ := run(t, time.Hour) // lyon loses the tie but wrote "later"
		c := p.only(projections.ConflictValue)
		if !hasFlag(c.Flags, projections.FlagWallOrder) {
			t.Fatalf("flags %v, want %s", c.Flags, projections.FlagWallOrder)
		}
		if tok := p.token(p.a, "color.x"); string(tok.Value) != `"#111111"` {
			t.Fatalf("skew changed the winner: %s", tok.Value)
		}
	})
	t.Run("no skew, no flag, same winner", func(t *testing.T) {
		p, rc := run(t, 0)
		c := p.only(projections.ConflictValue)
		if len(c.Flags) != 0 || len(rc.Flags) != 0 {
			t.Fatalf("flags without skew: %v %v", c.Flags, rc.Flags)
		}
		if tok := p.token(p.a, "color.x"); string(tok.Value) != `"#111111"` {
			t.Fatalf("winner %s", tok.Value)
		}
	})
	t.Run("ahead of the receiver, and drift", func(t *testing.T) {
		_, rc := run(t, time.Minute)
		var ahead, drift bool
		for _, f := range rc.Flags {
			ahead = ahead || f.Flag == projections.FlagAheadOfReceiver
			drift = drift || f.Flag == projections.FlagClockDrift
		}
		if !ahead || drift {
			t.Fatalf("a minute ahead: flags %v, want ahead-of-receiver only", rc.Flags)
		}
		p, rc := run(t, 2*time.Hour)
		drift = false
		for _, f := range rc.Flags {
			drift = drift || f.Flag == projections.FlagClockDrift
		}
		if !drift {
			t.Fatalf("two hours ahead: flags %v, want clock-drift", rc.Flags)
		}
		if sk := p.a.Skews(); len(sk) != 1 || sk[0].Site != "lyon" || !sk[0].Drift {
			t.Fatalf("skews %+v", sk)
		}
	})
	t.Run("wall time before a causal ancestor", func(t *testing.T) {
		p := newPair(t)
		p.put(p.a, "color.x", `{"$type":"color","$value":"#000000"}`)
		p.exchange()
		p.offB = -10 * time.Minute // lyon's clock runs behind
		p.put(p.b, "color.x", `{"$type":"color","$value":"#444444"}`)
		rc, err := p.a.Receive(ctx, "p", allEvents(t, p.b.store, "p"))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range rc.Flags {
			found = found || f.Flag == projections.FlagWallBeforeAncestor
		}
		if !found {
			t.Fatalf("flags %v, want %s", rc.Flags, projections.FlagWallBeforeAncestor)
		}
		if tok := p.token(p.a, "color.x"); string(tok.Value) != `"#444444"` {
			t.Fatalf("the causally later write must stand whatever its wall time: %s", tok.Value)
		}
	})
}

func TestCausalBufferAndAnalysis(t *testing.T) {
	ctx := context.Background()
	p := newPair(t)
	for i := 0; i < 3; i++ {
		p.put(p.a, "color.x", `{"$type":"color","$value":"#00000`+string(rune('0'+i))+`"}`)
	}
	evs := allEvents(t, p.a.store, "p")
	last := evs[len(evs)-1]
	// The last event alone waits for its predecessors, and says so.
	rc, err := p.b.Receive(ctx, "p", []*events.Event{last})
	if err != nil || len(rc.Held) != 1 || len(rc.Applied) != 0 {
		t.Fatalf("receipt %+v %v", rc, err)
	}
	held, _ := p.b.Pending(ctx, "p")
	if len(held) != 1 || held[0].Event != last.ID || held[0].WaitingFor == "" {
		t.Fatalf("pending %+v", held)
	}
	// The analysis of the rest says what would happen, and changes nothing.
	before := dump(t, p.b.store, "p")
	a, err := p.b.Analyze(ctx, "p", evs)
	if err != nil {
		t.Fatal(err)
	}
	if a.Counts[projections.ChangeNew] != 1 || a.Events.New != 3 || a.Events.Duplicates != 1 || len(a.Entities) != 1 || a.Entities[0].Path != "color.x" {
		t.Fatalf("analysis %+v", a)
	}
	if !bytes.Equal(before, dump(t, p.b.store, "p")) {
		t.Fatal("an analysis changed the store")
	}
	// Delivering the rest applies everything, the held event included.
	rc, err = p.b.Receive(ctx, "p", evs[:len(evs)-1])
	if err != nil || len(rc.Applied) != 3 {
		t.Fatalf("receipt %+v %v", rc, err)
	}
	if held, _ := p.b.Pending(ctx, "p"); len(held) != 0 {
		t.Fatalf("still held %+v", held)
	}
	if tok := p.token(p.b, "color.x"); string(tok.Value) != `"#000002"` {
		t.Fatalf("value %s", tok.Value)
	}
	// An analysis of concurrent edits predicts the conflict.
	p.put(p.a, "color.x", `{"$type":"color","$value":"#aaaaaa"}`)
	p.put(p.b, "color.x", `{"$type":"color","$value":"#bbbbbb"}`)
	a, err = p.b.Analyze(ctx, "p", allEvents(t, p.a.store, "p"))
	if err != nil || a.Conflicts[projections.ConflictValue] != 1 || a.Counts[projections.ChangeUpdated] != 1 {
		t.Fatalf("analysis of a conflicting merge %+v %v", a, err)
	}
	// A forged event is refused and reported; the rest applies.
	forged := *evs[1]
	forged.Actor = "mallory"
	q := newPair(t)
	rc, err = q.b.Receive(ctx, "p", []*events.Event{&forged})
	if err != nil || len(rc.Refused) != 1 {
		t.Fatalf("forged: %+v %v", rc, err)
	}
}

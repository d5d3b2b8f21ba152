package projections_test

import (
	"context"
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/oklog/ulid/v2"
)

// fakeClock is an injected wall clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { c.t = c.t.Add(time.Millisecond); return c.t }

func newSite(t testing.TB, id string, store projections.Storage, seed int64) *projections.Site {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	s, err := projections.NewSite(projections.SiteConfig{ID: id, Storage: store, Now: clock.Now, Rand: rand.New(rand.NewSource(seed))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(path, data string) projections.Change {
	return projections.Change{Op: projections.OpPut, Path: path, Data: json.RawMessage(data)}
}

func mustApply(t testing.TB, s *projections.Site, project string, cs ...projections.Change) []*projections.Result {
	t.Helper()
	res, err := s.Apply(context.Background(), project, "tester", cs)
	if err != nil {
		t.Fatalf("apply %v: %v", cs, err)
	}
	return res
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := events.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestSiteTokensLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newSite(t, "paris", projections.NewMemory(), 1)
	if _, err := s.CreateProject(ctx, "design", "Design", "tester"); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateProject(ctx, "design", "Again", "tester")
	wantCode(t, err, events.ECONFLICT)

	mustApply(t, s, "design",
		put("color.base.blue", `{"$type":"color","$value":"#0000ff","$description":"Blue"}`),
		put("color.brand", `{"$value":"{color.base.blue}"}`),
		put("space.small", `{"$type":"dimension","$value":{"value":4,"unit":"px"}}`),
		put("border.focus", `{"$type":"border","$value":{"color":"{color.brand}","width":"2px","style":"solid"}}`),
	)
	tok, err := s.Token(ctx, "design", "color.brand")
	if err != nil {
		t.Fatal(err)
	}
	if string(tok.ResolvedValue) != `"#0000ff"` || tok.Conflicted || tok.Lamport != 3 {
		t.Fatalf("brand: resolved=%s conflicted=%v lamport=%d", tok.ResolvedValue, tok.Conflicted, tok.Lamport)
	}
	border, _ := s.Token(ctx, "design", "border.focus")
	if !strings.Contains(string(border.ResolvedValue), `"color":"#0000ff"`) {
		t.Fatalf("border resolved=%s", border.ResolvedValue)
	}

	// An update writes only what changed.
	res, err := s.ApplyOne(ctx, "design", "tester", put("color.base.blue", `{"$type":"color","$value":"#0000ee","$description":"Blue"}`))
	if err != nil {
		t.Fatal(err)
	}
	hist, _ := s.History(ctx, "design", events.KindToken, "color.base.blue")
	if len(hist) != 2 || len(hist[1].Changes) != 1 || hist[1].Changes[0].Field != "$value" {
		t.Fatalf("history=%d events, last changes %v", len(hist), hist[len(hist)-1].Changes)
	}
	if res.Token.Rev != hist[1].ID.String() || hist[1].Parents[0] != hist[0].ID {
		t.Fatalf("rev=%s parents=%v", res.Token.Rev, hist[1].Parents)
	}
	// Same data again: no event.
	res, _ = s.ApplyOne(ctx, "design", "tester", put("color.base.blue", `{"$type":"color","$value":"#0000ee","$description":"Blue"}`))
	if res.Event != nil {
		t.Fatalf("an unchanged put made event %s", res.Event)
	}
	brand, _ := s.Token(ctx, "design", "color.brand")
	if string(brand.ResolvedValue) != `"#0000ee"` {
		t.Fatalf("alias did not follow: %s", brand.ResolvedValue)
	}

	// Stale If-Match.
	c := put("color.base.blue", `{"$type":"color","$value":"#000000"}`)
	c.IfMatch = hist[0].ID.String()
	_, err = s.ApplyOne(ctx, "design", "tester", c)
	wantCode(t, err, events.EPRECONDITION)

	// Referenced tokens cannot be deleted or renamed away; the batch leaves no trace.
	before, _ := s.Project(ctx, "design")
	_, err = s.Apply(ctx, "design", "tester", []projections.Change{
		put("color.other", `{"$type":"color","$value":"#111111"}`),
		{Op: projections.OpDelete, Path: "color.base.blue"},
	})
	wantCode(t, err, events.ECONFLICT)
	after, _ := s.Project(ctx, "design")
	if after.Counts != before.Counts || after.Lamport != before.Lamport {
		t.Fatalf("refused batch changed the project: %+v -> %+v", before, after)
	}
	// Renaming both in one batch keeps references intact.
	mustApply(t, s, "design",
		projections.Change{Op: projections.OpRename, Path: "color.base.blue", To: "color.base.navy"},
		put("color.brand", `{"$value":"{color.base.navy}"}`),
		put("border.focus", `{"$type":"border","$value":{"color":"{color.base.navy}","width":"2px","style":"solid"}}`),
	)
	navy, err := s.Token(ctx, "design", "color.base.navy")
	if err != nil || navy.ID != hist[0].Entity {
		t.Fatalf("rename lost the id: %v %v", navy, err)
	}

	// Invalid data.
	for _, c := range []projections.Change{
		put("bad..path", `{"$type":"color","$value":"#fff"}`),
		put("color.x", `{"$type":"colour","$value":"#fff"}`),
		put("color.x", `{"$type":"color","$value":"blue"}`),
		put("color.x", `{"$value":"#fff"}`),
		put("color.x", `{"$type":"color","$value":"{color.missing}"}`),
		put("color.x", `{"$type":"dimension","$value":"{color.base.navy}"}`),
		put("color.x", `{"$type":"color","$value":"#fff","$bogus":1}`),
	} {
		_, err := s.ApplyOne(ctx, "design", "tester", c)
		wantCode(t, err, events.EINVALID)
	}
	// Cycles are refused.
	mustApply(t, s, "design", put("a", `{"$type":"color","$value":"#fff"}`), put("b", `{"$value":"{a}"}`))
	_, err = s.ApplyOne(ctx, "design", "tester", put("a", `{"$value":"{b}"}`))
	wantCode(t, err, events.EINVALID)

	// As of an earlier Lamport time.
	old, _, err := s.Tokens(ctx, "design", projections.Query{Prefix: "color"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 2 || old[0].Path != "color.base.blue" || string(old[0].Value) != `"#0000ff"` {
		t.Fatalf("as of 3: %+v", old)
	}
	// Type filter and pagination.
	page, next, _ := s.Tokens(ctx, "design", projections.Query{Type: "color", Limit: 2}, 0)
	if len(page) != 2 || next == "" {
		t.Fatalf("page=%d next=%q", len(page), next)
	}
	rest, next2, _ := s.Tokens(ctx, "design", projections.Query{Type: "color", After: next, Limit: 10}, 0)
	if len(rest) == 0 || next2 != "" || rest[0].Path <= page[1].Path {
		t.Fatalf("second page %v next=%q", rest, next2)
	}
}

func TestSiteComponents(t *testing.T) {
	ctx := context.Background()
	s := newSite(t, "paris", projections.NewMemory(), 2)
	s.CreateProject(ctx, "design", "", "tester")
	mustApply(t, s, "design", put("color.brand", `{"$type":"color","$value":"#ff0000"}`))
	c := projections.Change{Kind: "component", Path: "Button", Data: json.RawMessage(`{"description":"A button","props":{"size":{"type":"string"}},"variants":["primary"],"tokens":["color.brand"]}`)}
	res, err := s.ApplyOne(ctx, "design", "tester", c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Component == nil || res.Component.Name != "Button" || string(res.Component.Tokens) != `["color.brand"]` {
		t.Fatalf("component %+v", res.Component)
	}
	_, err = s.ApplyOne(ctx, "design", "tester", projections.Change{Op: "delete", Path: "color.brand"})
	wantCode(t, err, events.ECONFLICT)
	bad := projections.Change{Kind: "component", Path: "Card", Data: json.RawMessage(`{"tokens":["color.none"]}`)}
	_, err = s.ApplyOne(ctx, "design", "tester", bad)
	wantCode(t, err, events.EINVALID)
	p, _ := s.Project(ctx, "design")
	if p.Counts.Tokens != 1 || p.Counts.Components != 1 || p.Counts.Events != 3 {
		t.Fatalf("counts %+v", p.Counts)
	}
}

// TestHoldWrites: a held site makes no event (writes, project creation,
// conflict resolution all fail with the hold's error) but still receives
// events made elsewhere; released, it writes again after them.
func TestHoldWrites(t *testing.T) {
	ctx := context.Background()
	paris := newSite(t, "paris", projections.NewMemory(), 1)
	lyon := newSite(t, "lyon", projections.NewMemory(), 2)
	if _, err := lyon.CreateProject(ctx, "design", "Design", "tester"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, lyon, "design", put("a.b", `{"$type":"number","$value":1}`))
	held := events.Errorf(events.EUNAVAILABLE, "restored from a backup: catching up")
	paris.HoldWrites(held)
	if _, err := paris.CreateProject(ctx, "other", "Other", "tester"); events.ErrorCode(err) != events.EUNAVAILABLE {
		t.Fatalf("create project while held: %v", err)
	}
	evs, err := lyon.Events(ctx, "design", ulid.ULID{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := paris.Receive(ctx, "design", evs); err != nil || len(rc.Applied) != len(evs) {
		t.Fatalf("receive while held: %+v %v", rc, err)
	}
	if _, err := paris.Apply(ctx, "design", "tester", []projections.Change{put("a.c", `{"$type":"number","$value":2}`)}); events.ErrorCode(err) != events.EUNAVAILABLE {
		t.Fatalf("write while held: %v", err)
	}
	if paris.WritesHeld() != held {
		t.Fatal("WritesHeld does not return the hold's error")
	}
	paris.HoldWrites(nil)
	res := mustApply(t, paris, "design", put("a.c", `{"$type":"number","$value":2}`))
	if res[0].Event == nil {
		t.Fatal("no event after the release")
	}
	p, _ := paris.Project(ctx, "design")
	if p.Vector["paris"] != 1 || p.Vector["lyon"] != uint64(len(evs)) {
		t.Fatalf("vector after release: %v", p.Vector)
	}
}

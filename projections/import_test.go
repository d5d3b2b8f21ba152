package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
)

// itemsOf returns a project's tokens as import items, as an export writes
// them (id, rev, fields).
func itemsOf(t *testing.T, s *projections.Site, project string) []projections.Item {
	t.Helper()
	var items []projections.Item
	err := s.Snapshot(context.Background(), project, projections.Query{}, projections.Visitor{Token: func(tk *projections.Token) error {
		f := map[string]json.RawMessage{}
		for name, v := range map[string]json.RawMessage{"$type": tk.Type, "$value": tk.Value, "$description": tk.Description} {
			if v != nil {
				f[name] = v
			}
		}
		items = append(items, projections.Item{Kind: events.KindToken, Path: tk.Path, ID: tk.ID, Rev: tk.Rev, Fields: f})
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func TestImportItems(t *testing.T) {
	ctx := context.Background()
	s := newSite(t, "paris", projections.NewMemory(), 1)
	s.CreateProject(ctx, "design", "", "u")
	mustApply(t, s, "design",
		put("color.x", `{"$type":"color","$value":"#ff0000"}`),
		put("color.y", `{"$type":"color","$value":"#00ff00"}`),
		put("color.alias", `{"$value":"{color.y}"}`))
	exported := itemsOf(t, s, "design")

	t.Run("a copy keeps ids and values", func(t *testing.T) {
		res, err := s.Import(ctx, "copy", "importer", nil, exported, projections.ImportOptions{CreateName: "Copy"})
		if err != nil || res.Created != 3 {
			t.Fatalf("import %+v %v", res, err)
		}
		a, _, _ := s.Tokens(ctx, "design", projections.Query{}, 0)
		b, _, _ := s.Tokens(ctx, "copy", projections.Query{}, 0)
		for i := range a {
			if a[i].ID != b[i].ID || string(a[i].Value) != string(b[i].Value) || string(a[i].ResolvedValue) != string(b[i].ResolvedValue) {
				t.Fatalf("copy differs at %s: %+v vs %+v", a[i].Path, a[i], b[i])
			}
		}
		// Importing the same again changes nothing.
		res, _ = s.Import(ctx, "copy", "importer", nil, exported, projections.ImportOptions{})
		if res.Events != 0 || res.Unchanged != 3 {
			t.Fatalf("re-import %+v", res)
		}
	})

	t.Run("a round trip through a tool merges with edits made meanwhile", func(t *testing.T) {
		edited := append([]projections.Item(nil), exported...)
		for i := range edited {
			if edited[i].Path == "color.x" {
				f := map[string]json.RawMessage{}
				for k, v := range edited[i].Fields {
					f[k] = v
				}
				f["$value"] = json.RawMessage(`"#0000ff"`) // the tool changed the value
				edited[i].Fields = f
			}
		}
		// Meanwhile, here, someone described the token.
		mustApply(t, s, "design", put("color.x", `{"$type":"color","$value":"#ff0000","$description":"Alarm"}`))
		if _, err := s.Import(ctx, "design", "tool", nil, edited, projections.ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		tok, _ := s.Token(ctx, "design", "color.x")
		if string(tok.Value) != `"#0000ff"` || string(tok.Description) != `"Alarm"` || tok.Conflicted {
			t.Fatalf("merged token %s / %s conflicted=%v", tok.Value, tok.Description, tok.Conflicted)
		}
		// The same field changed on both sides since the export: a conflict.
		mustApply(t, s, "design", put("color.y", `{"$type":"color","$value":"#111111"}`))
		for i := range edited {
			if edited[i].Path == "color.y" {
				edited[i].Fields = map[string]json.RawMessage{"$type": json.RawMessage(`"color"`), "$value": json.RawMessage(`"#222222"`)}
			}
		}
		if _, err := s.Import(ctx, "design", "tool", nil, edited, projections.ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		cs, _ := s.Conflicts(ctx, "design")
		if len(cs) != 1 || cs[0].Path != "color.y" || cs[0].Field != "$value" {
			t.Fatalf("conflicts %+v", cs)
		}
	})

	t.Run("replace makes the project equal to the items", func(t *testing.T) {
		s.CreateProject(ctx, "r", "", "u")
		mustApply(t, s, "r", put("keep", `{"$type":"number","$value":1}`), put("gone", `{"$type":"number","$value":2}`))
		items := []projections.Item{{Kind: events.KindToken, Path: "keep", Fields: map[string]json.RawMessage{"$type": json.RawMessage(`"number"`), "$value": json.RawMessage(`5`)}},
			{Kind: events.KindToken, Path: "new", Fields: map[string]json.RawMessage{"$type": json.RawMessage(`"number"`), "$value": json.RawMessage(`6`)}}}
		before := dump(t, s.Storage(), "r")
		a, err := s.AnalyzeImport(ctx, "r", "u", nil, items, projections.ImportOptions{Replace: true})
		if err != nil || a.Counts["new"] != 1 || a.Counts["updated"] != 1 || a.Counts["deleted"] != 1 {
			t.Fatalf("analysis %+v %v", a, err)
		}
		if !bytes.Equal(before, dump(t, s.Storage(), "r")) {
			t.Fatal("the dry run changed the project")
		}
		res, err := s.Import(ctx, "r", "u", nil, items, projections.ImportOptions{Replace: true})
		if err != nil || res.Deleted != 1 || res.Created != 1 || res.Updated != 1 {
			t.Fatalf("replace %+v %v", res, err)
		}
		toks, _, _ := s.Tokens(ctx, "r", projections.Query{}, 0)
		if len(toks) != 2 || toks[0].Path != "keep" || string(toks[0].Value) != "5" || toks[1].Path != "new" {
			t.Fatalf("after replace %+v", toks)
		}
	})

	t.Run("a snapshot that breaks references is refused whole", func(t *testing.T) {
		s.CreateProject(ctx, "refs", "", "u")
		items := []projections.Item{{Kind: events.KindToken, Path: "a", Fields: map[string]json.RawMessage{"$value": json.RawMessage(`"{missing}"`)}}}
		if _, err := s.Import(ctx, "refs", "u", nil, items, projections.ImportOptions{}); events.ErrorCode(err) != events.EINVALID {
			t.Fatalf("dangling alias in an import: %v", err)
		}
		if p, _ := s.Project(ctx, "refs"); p.Counts.Events != 1 {
			t.Fatalf("a refused import left %d events", p.Counts.Events)
		}
	})
}

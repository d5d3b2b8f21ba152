package projections_test

import (
	"context"
	"testing"

	"github.com/dss-sync/dss-sync/projections"
)

// TestReferenceSpellings: a reference to a group's own token is stored as
// "{g}" however it was written, still resolves, and a file snapshot spells
// it "{g.$root}" exactly where the file writes g as its group's $root: when
// tokens of the selection lie under g (a prefix or type filter can leave
// none), in whole values and nested in composites alike.
func TestReferenceSpellings(t *testing.T) {
	ctx := context.Background()
	s := newSite(t, "paris", projections.NewMemory(), 1)
	if _, err := s.CreateProject(ctx, "design", "Design", "tester"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, "design",
		put("color.accent", `{"$type":"color","$value":"#ff6600"}`),
		put("color.accent.light", `{"$type":"color","$value":"#ffcc99"}`),
		put("color.solo", `{"$type":"color","$value":"#000000"}`),
		put("color.a", `{"$value":"{color.accent}"}`),
		put("color.b", `{"$value":"{color.accent.$root}"}`),
		put("color.c", `{"$value":"{color.solo.$root}"}`),
		put("color.d", `{"$value":"{color.accent.light}"}`),
		put("size.line", `{"$type":"dimension","$value":{"value":1,"unit":"px"}}`),
		put("border.focus", `{"$type":"border","$value":{"color":"{color.accent.$root}","width":"{size.line}","style":"solid"}}`),
	)
	stored := map[string]string{"color.a": `"{color.accent}"`, "color.b": `"{color.accent}"`, "color.c": `"{color.solo}"`,
		"color.d": `"{color.accent.light}"`, "border.focus": `{"color":"{color.accent}","style":"solid","width":"{size.line}"}`}
	for p, want := range stored {
		tok, err := s.Token(ctx, "design", p)
		if err != nil {
			t.Fatal(err)
		}
		if string(tok.Value) != want {
			t.Errorf("%s stored as %s, want %s", p, tok.Value, want)
		}
	}
	if tok, _ := s.Token(ctx, "design", "color.b"); string(tok.ResolvedValue) != `"#ff6600"` {
		t.Errorf("color.b resolves to %s", tok.ResolvedValue)
	}

	file := func(q projections.Query) map[string]string {
		got := map[string]string{}
		err := s.Snapshot(ctx, "design", q, projections.Visitor{FileReferences: true, Token: func(tok *projections.Token) error {
			got[tok.Path] = string(tok.Value)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	all := file(projections.Query{})
	for p, want := range map[string]string{"color.a": `"{color.accent.$root}"`, "color.b": `"{color.accent.$root}"`, "color.c": `"{color.solo}"`,
		"color.d": `"{color.accent.light}"`, "border.focus": `{"color":"{color.accent.$root}","style":"solid","width":"{size.line}"}`} {
		if all[p] != want {
			t.Errorf("file: %s is %s, want %s", p, all[p], want)
		}
	}
	// Outside the selection, a target is named as in a whole export.
	if got := file(projections.Query{Type: "border"})["border.focus"]; got != `{"color":"{color.accent.$root}","style":"solid","width":"{size.line}"}` {
		t.Errorf("border-only file: %s", got)
	}
	// In the selection without its children, accent is a plain token.
	mustApply(t, s, "design", put("mono.accent", `{"$type":"color","$value":"#111111"}`),
		put("mono.accent.dim", `{"$type":"dimension","$value":{"value":1,"unit":"px"}}`),
		put("mono.ref", `{"$value":"{mono.accent}"}`))
	if got := file(projections.Query{Prefix: "mono", Type: "color"})["mono.ref"]; got != `"{mono.accent}"` {
		t.Errorf("colors-only file: %s, want the plain spelling (mono.accent.dim is not in it)", got)
	}
	if got := file(projections.Query{Prefix: "mono"})["mono.ref"]; got != `"{mono.accent.$root}"` {
		t.Errorf("mono file: %s", got)
	}
	// A snapshot without FileReferences gives the stored spelling.
	var plain string
	s.Snapshot(ctx, "design", projections.Query{Prefix: "color.b"}, projections.Visitor{Token: func(tok *projections.Token) error {
		plain = string(tok.Value)
		return nil
	}})
	if plain != `"{color.accent}"` {
		t.Errorf("plain snapshot: %s", plain)
	}
}

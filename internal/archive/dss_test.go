package archive_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/archive"
	"github.com/dss-sync/dss-sync/projections"
)

var signer ed25519.PrivateKey

func init() { _, signer, _ = ed25519.GenerateKey(rand.New(rand.NewSource(42))) }

// sourceSite returns a site with a project of tokens (aliases, composites,
// a token that is also a group) and components.
func sourceSite(t testing.TB) *projections.Site {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s, _ := projections.NewSite(projections.SiteConfig{ID: "paris", Storage: projections.NewMemory(),
		Rand: rand.New(rand.NewSource(1)), Now: func() time.Time { now = now.Add(time.Millisecond); return now }})
	if _, err := s.CreateProject(ctx, "design", "Design", "alice"); err != nil {
		t.Fatal(err)
	}
	changes := []projections.Change{
		{Path: "color.accent", Data: json.RawMessage(`{"$type":"color","$value":"#ff0000","$description":"Accent","$extensions":{"com.figma":{"id":"1:2"}}}`)},
		{Path: "color.accent.light", Data: json.RawMessage(`{"$type":"color","$value":"#ff8080"}`)},
		{Path: "color.brand", Data: json.RawMessage(`{"$value":"{color.accent}"}`)},
		{Path: "space.s", Data: json.RawMessage(`{"$type":"dimension","$value":{"value":4,"unit":"px"},"$deprecated":"use space.sm"}`)},
		{Path: "border.focus", Data: json.RawMessage(`{"$type":"border","$value":{"color":"{color.brand}","width":"2px","style":"solid"}}`)},
		{Kind: "component", Path: "Button", Data: json.RawMessage(`{"description":"A button","props":{"size":{"enum":["s","m"]}},"variants":["primary"],"tokens":["color.brand","space.s"]}`)},
	}
	for i := 0; i < 20; i++ {
		changes = append(changes, projections.Change{Path: fmt.Sprintf("n.t%02d", i), Data: json.RawMessage(fmt.Sprintf(`{"$type":"number","$value":%d}`, i))})
	}
	if _, err := s.Apply(ctx, "design", "alice", changes); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyOne(ctx, "design", "bob", projections.Change{Path: "n.t00", Data: json.RawMessage(`{"$type":"number","$value":100}`)}); err != nil {
		t.Fatal(err)
	}
	return s
}

func exportOf(t testing.TB, s *projections.Site, opt archive.ExportOptions) []byte {
	t.Helper()
	if opt.Key == nil {
		opt.Key = signer
	}
	var b bytes.Buffer
	if _, err := archive.Export(context.Background(), s, "design", opt, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func check(t testing.TB, b []byte) (*archive.Report, *archive.Input) {
	t.Helper()
	return archive.Check(bytes.NewReader(b), int64(len(b)), archive.ImportLimits{}, nil)
}

func records(t testing.TB, in *archive.Input, opt archive.RecordOptions) ([]*events.Event, []projections.Item) {
	t.Helper()
	var evs []*events.Event
	var items []projections.Item
	err := in.Records(context.Background(), opt, func(r archive.Record) error {
		if r.Event != nil {
			evs = append(evs, r.Event)
		} else {
			items = append(items, *r.Item)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs, items
}

func tokensOf(t testing.TB, s *projections.Site, project string) string {
	t.Helper()
	var b strings.Builder
	s.Snapshot(context.Background(), project, projections.Query{}, projections.Visitor{
		Token: func(tk *projections.Token) error {
			fmt.Fprintf(&b, "%s %s %s %s %s %s %s %s\n", tk.ID, tk.Path, tk.Type, tk.Value, tk.Description, tk.Deprecated, tk.Extensions, tk.ResolvedValue)
			return nil
		},
		Component: func(c *projections.Component) error {
			fmt.Fprintf(&b, "%s %s %s %s %s %s\n", c.ID, c.Name, c.Description, c.Props, c.Variants, c.Tokens)
			return nil
		},
	})
	return b.String()
}

func TestExportChecksAndReplays(t *testing.T) {
	ctx := context.Background()
	src := sourceSite(t)
	b := exportOf(t, src, archive.ExportOptions{History: true})
	rep, in := check(t, b)
	if !rep.Valid || in == nil {
		j, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("our own export does not check:\n%s", j)
	}
	if rep.Counts.Tokens != 25 || rep.Counts.Components != 1 || rep.Counts.Events != 28 || rep.Signer != events.KeyID(signer.Public().(ed25519.PublicKey)) {
		t.Fatalf("report %+v", rep)
	}
	// Exporting again without changes gives the same entries.
	b2 := exportOf(t, src, archive.ExportOptions{History: true})
	entries := func(b []byte) map[string]string {
		zr, _ := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		out := map[string]string{}
		for _, f := range zr.File {
			if f.Name == archive.ManifestName {
				continue // exportedAt differs
			}
			r, _ := f.Open()
			c, _ := io.ReadAll(r)
			out[f.Name] = string(c)
		}
		return out
	}
	e1, e2 := entries(b), entries(b2)
	for name := range e1 {
		if e1[name] != e2[name] {
			t.Fatalf("%s differs between two exports", name)
		}
	}

	// The history replays into an empty site: the same projection.
	dst, _ := projections.NewSite(projections.SiteConfig{ID: "lyon", Storage: projections.NewMemory()})
	evs, items := records(t, in, archive.RecordOptions{History: true, Revs: true})
	if len(evs) != 28 || len(items) != 26 {
		t.Fatalf("%d events, %d items", len(evs), len(items))
	}
	if _, err := dst.Import(ctx, "design", "importer", evs, items, projections.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := tokensOf(t, dst, "design"), tokensOf(t, src, "design"); got != want {
		t.Fatalf("replayed projection differs:\n--- got\n%s--- want\n%s", got, want)
	}
	// The snapshot alone, into another project: a copy with the same ids.
	_, items = records(t, in, archive.RecordOptions{})
	if _, err := dst.Import(ctx, "copy", "importer", nil, items, projections.ImportOptions{CreateName: "Copy"}); err != nil {
		t.Fatal(err)
	}
	if got, want := tokensOf(t, dst, "copy"), tokensOf(t, src, "design"); got != want {
		t.Fatalf("copy differs:\n--- got\n%s--- want\n%s", got, want)
	}
	if p, _ := dst.Project(ctx, "copy"); p.Vector["lyon"] != p.Counts.Events {
		t.Fatalf("a copy's history is the importing site's: %+v", p.Vector)
	}
}

func TestDTCGExportImports(t *testing.T) {
	ctx := context.Background()
	src := sourceSite(t)
	var b bytes.Buffer
	n, err := archive.ExportDTCG(ctx, src, "design", "", "", &b)
	if err != nil || n != 25 {
		t.Fatalf("export %d %v", n, err)
	}
	if !strings.Contains(b.String(), `"$root"`) || !strings.Contains(b.String(), `"org.dss-sync"`) || !strings.Contains(b.String(), `"com.figma"`) {
		t.Fatalf("document lacks $root, identity or user extensions:\n%s", b.String())
	}
	rep, in := check(t, b.Bytes())
	if !rep.Valid || rep.Kind != archive.KindDTCG || rep.Counts.Tokens != 25 {
		j, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("%s", j)
	}
	_, items := records(t, in, archive.RecordOptions{Revs: true})
	// A round trip into the same project changes nothing.
	res, err := src.Import(ctx, "design", "tool", nil, items, projections.ImportOptions{})
	if err != nil || res.Events != 0 {
		t.Fatalf("round trip: %+v %v", res, err)
	}
	// Filtered: only the color group, and only colors.
	b.Reset()
	if n, _ := archive.ExportDTCG(ctx, src, "design", "color", "color", &b); n != 3 {
		t.Fatalf("filtered export: %d tokens", n)
	}
}

// zipOf builds an archive from name/content pairs (in order).
func zipOf(files ...string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i+1 < len(files); i += 2 {
		w, _ := zw.Create(files[i])
		w.Write([]byte(files[i+1]))
	}
	zw.Close()
	return b.Bytes()
}

// rewrite returns an archive with one entry's content replaced (manifest
// unchanged: its hashes no longer match).
func rewrite(t *testing.T, b []byte, name string, edit func(string) string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range zr.File {
		r, _ := f.Open()
		c, _ := io.ReadAll(r)
		s := string(c)
		if f.Name == name {
			s = edit(s)
		}
		files = append(files, f.Name, s)
	}
	return zipOf(files...)
}

func TestCheckRefuses(t *testing.T) {
	src := sourceSite(t)
	good := exportOf(t, src, archive.ExportOptions{History: true})
	_, other, _ := ed25519.GenerateKey(rand.New(rand.NewSource(9)))
	for name, tc := range map[string]struct {
		b     []byte
		stage string
		want  string
	}{
		"not an archive":   {[]byte("hello"), archive.StageArchive, "neither"},
		"zip slip":         {zipOf("../manifest.json", "{}"), archive.StageArchive, ".."},
		"edited tokens":    {rewrite(t, good, archive.TokensName, func(s string) string { return strings.Replace(s, "#ff0000", "#00ff00", 1) }), archive.StageManifest, "altered"},
		"edited signature": {rewrite(t, good, archive.ManifestName, func(s string) string { return strings.Replace(s, `"name": "Design"`, `"name": "Mine"`, 1) }), archive.StageManifest, "signature"},
		"future version":   {rewrite(t, good, archive.ManifestName, func(s string) string { return strings.Replace(s, `"formatVersion": 1`, `"formatVersion": 2`, 1) }), archive.StageSchema, "newer"},
		"not a manifest":   {zipOf(archive.ManifestName, `{"hello":1}`, archive.TokensName, "{}"), archive.StageSchema, "does not describe"},
		"removed events":   {rewrite(t, good, archive.EventsName, func(s string) string { return strings.SplitN(s, "\n", 2)[1] }), archive.StageManifest, "altered"},
	} {
		rep, in := check(t, tc.b)
		if rep.Valid || in != nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		st := rep.Stage(tc.stage)
		if st.OK || !strings.Contains(strings.Join(st.Errors, "|"), tc.want) {
			j, _ := json.MarshalIndent(rep, "", " ")
			t.Errorf("%s: want stage %s to say %q:\n%s", name, tc.stage, tc.want, j)
		}
	}
	// A valid signature by a key the site does not trust.
	b := exportOf(t, src, archive.ExportOptions{History: true, Key: other})
	rep, _ := archive.Check(bytes.NewReader(b), int64(len(b)), archive.ImportLimits{}, func(id string) bool {
		return id == events.KeyID(signer.Public().(ed25519.PublicKey))
	})
	if rep.Valid || !strings.Contains(strings.Join(rep.Stage(archive.StageManifest).Errors, ""), "does not trust") {
		t.Fatalf("untrusted signer: %+v", rep.Stage(archive.StageManifest))
	}
}

func TestCheckDTCGProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		doc, stage, want string
		valid            bool
	}{
		"alias cycle":    {`{"a":{"$value":"{b}"},"b":{"$value":"{a}"}}`, archive.StageReferential, "loop", false},
		"dangling alias": {`{"a":{"$value":"{nowhere}"}}`, archive.StageReferential, "must exist", true},
		"bad value":      {`{"a":{"$type":"color","$value":"blue"}}`, archive.StageStructure, "color", false},
		"deep nesting":   {strings.Repeat(`{"g":`, 200) + `{"$type":"number","$value":1}` + strings.Repeat("}", 200), archive.StageStructure, "deeper", false},
		"duplicate ids":  {`{"a":{"$type":"number","$value":1,"$extensions":{"org.dss-sync":{"id":"01M817QNM3ZW908PVKS1Q4ZYAZ"}}},"b":{"$type":"number","$value":2,"$extensions":{"org.dss-sync":{"id":"01M817QNM3ZW908PVKS1Q4ZYAZ"}}}}`, archive.StageStructure, "same id", false},
		"invalid utf8":   {"{\"a\xff\":{\"$type\":\"number\",\"$value\":1}}", archive.StageStructure, "UTF-8", false},
	} {
		rep, _ := check(t, []byte(tc.doc))
		st := rep.Stage(tc.stage)
		all := strings.Join(append(append([]string{}, st.Errors...), st.Warnings...), "|")
		if rep.Valid != tc.valid || !strings.Contains(all, tc.want) {
			j, _ := json.MarshalIndent(rep, "", " ")
			t.Errorf("%s: valid=%v, want %v and %q in stage %s:\n%s", name, rep.Valid, tc.valid, tc.want, tc.stage, j)
		}
	}
}

func TestFormatZeroMigrates(t *testing.T) {
	tokens := `{"tokens":[{"path":"color.brand","type":"color","value":"#ff0000","description":"Brand"},{"path":"color.link","value":"{color.brand}"}]}`
	comps := `{"components":[{"name":"Link","description":"A link","tokens":["color.link"]}]}`
	sum := sha256Hex(tokens + comps)
	b := zipOf(archive.ManifestName, `{"project":"legacy","name":"Legacy","exportedAt":"2024-01-01T00:00:00Z","exportHash":"`+sum+`"}`,
		archive.TokensName, tokens, archive.ComponentsName, comps)
	rep, in := check(t, b)
	if !rep.Valid || rep.FormatVersion != 0 || rep.Counts.Tokens != 2 || rep.Counts.Components != 1 || len(rep.Stage(archive.StageSchema).Warnings) == 0 {
		j, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("%s", j)
	}
	_, items := records(t, in, archive.RecordOptions{})
	if len(items) != 3 || items[0].Path != "color.brand" || items[2].Kind != events.KindComponent {
		t.Fatalf("items %+v", items)
	}
	s, _ := projections.NewSite(projections.SiteConfig{ID: "lyon", Storage: projections.NewMemory()})
	if _, err := s.Import(context.Background(), "legacy", "u", nil, items, projections.ImportOptions{CreateName: "Legacy"}); err != nil {
		t.Fatal(err)
	}
	tok, _ := s.Token(context.Background(), "legacy", "color.link")
	if string(tok.ResolvedValue) != `"#ff0000"` {
		t.Fatalf("migrated alias resolves to %s", tok.ResolvedValue)
	}
	// Altered: the export hash no longer matches.
	b = zipOf(archive.ManifestName, `{"project":"legacy","name":"Legacy","exportedAt":"2024-01-01T00:00:00Z","exportHash":"`+sum+`"}`,
		archive.TokensName, strings.Replace(tokens, "ff0000", "00ff00", 1), archive.ComponentsName, comps)
	if rep, _ := check(t, b); rep.Valid || rep.Stage(archive.StageManifest).OK {
		t.Fatalf("an altered format-0 archive checks: %+v", rep.Stage(archive.StageManifest))
	}
}

// TestFormatZeroDuplicatePath: a format-0 list naming one path twice is
// refused (the DTCG layout cannot, its keys being unique).
func TestFormatZeroDuplicatePath(t *testing.T) {
	tokens := `{"tokens":[{"path":"a.b","type":"number","value":1},{"path":"a.c","type":"number","value":2},{"path":"a.b","type":"number","value":3}]}`
	comps := `{"components":[]}`
	b := zipOf(archive.ManifestName, `{"project":"legacy","name":"Legacy","exportedAt":"2024-01-01T00:00:00Z","exportHash":"`+sha256Hex(tokens+comps)+`"}`,
		archive.TokensName, tokens, archive.ComponentsName, comps)
	rep, in := check(t, b)
	st := rep.Stage(archive.StageStructure)
	if rep.Valid || in != nil || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "a.b appears twice") {
		t.Fatalf("%+v", st)
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestRecordsCachedOrReadAgain: the records Check keeps (under
// CacheBytes) are exactly those read again from the input when nothing is
// kept, in the same order, with revs dropped alike.
func TestRecordsCachedOrReadAgain(t *testing.T) {
	src := sourceSite(t)
	var dtcgDoc bytes.Buffer
	if _, err := archive.ExportDTCG(context.Background(), src, "design", "", "", &dtcgDoc); err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{
		"archive": exportOf(t, src, archive.ExportOptions{History: true}),
		"dtcg":    dtcgDoc.Bytes(),
	}
	dump := func(in *archive.Input, opt archive.RecordOptions) string {
		evs, items := records(t, in, opt)
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "event %s %x\n", e.ID, e.Hash)
		}
		for _, it := range items {
			f, _ := json.Marshal(it.Fields)
			fmt.Fprintf(&b, "item %s %s %s %q %s\n", it.Kind, it.Path, it.ID, it.Rev, f)
		}
		return b.String()
	}
	for name, b := range inputs {
		for _, opt := range []archive.RecordOptions{{History: true, Revs: true}, {}} {
			_, cached := archive.Check(bytes.NewReader(b), int64(len(b)), archive.ImportLimits{}, nil)
			_, reread := archive.Check(bytes.NewReader(b), int64(len(b)), archive.ImportLimits{CacheBytes: -1}, nil)
			if cached == nil || reread == nil {
				t.Fatalf("%s does not check", name)
			}
			got, want := dump(cached, opt), dump(reread, opt)
			if got != want || want == "" {
				t.Fatalf("%s %+v: cached records differ from records read again:\n--- cached\n%s--- read again\n%s", name, opt, got, want)
			}
			if n := cached.RecordCount(opt); n != strings.Count(got, "\n") {
				t.Fatalf("%s: RecordCount says %d, Records yields %d", name, n, strings.Count(got, "\n"))
			}
			if again := dump(cached, opt); again != got {
				t.Fatalf("%s: a second replay of the cache differs", name)
			}
		}
	}
	// A budget too small for the input keeps nothing, and still yields all.
	b := inputs["archive"]
	_, small := archive.Check(bytes.NewReader(b), int64(len(b)), archive.ImportLimits{CacheBytes: 2000}, nil)
	_, reread := archive.Check(bytes.NewReader(b), int64(len(b)), archive.ImportLimits{CacheBytes: -1}, nil)
	opt := archive.RecordOptions{History: true, Revs: true}
	if got, want := dump(small, opt), dump(reread, opt); got != want {
		t.Fatalf("over budget: records differ:\n%s\n%s", got, want)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
)

// cli runs a command of the binary in-process and returns its exit status
// and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var so, se strings.Builder
	code := run(context.Background(), args, &so, &se, env(nil))
	return code, so.String(), se.String()
}

func tokenList(t *testing.T, m *Main, key, project string) string {
	t.Helper()
	var page struct{ Tokens []json.RawMessage }
	if got := call(t, m.HTTPURL(), key, "GET", "/v1/projects/"+project+"/tokens?limit=1000", "", &page); got != 200 {
		t.Fatalf("list tokens of %s: %d", project, got)
	}
	b, _ := json.Marshal(page.Tokens)
	return string(b)
}

func seed(t *testing.T, m *Main, key string, n int) {
	t.Helper()
	call(t, m.HTTPURL(), key, "POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	var changes []string
	for i := 0; i < n; i++ {
		changes = append(changes, fmt.Sprintf(`{"path":"g%d.t%05d","data":{"$type":"color","$value":"#%06x"}}`, i%10, i, i))
	}
	changes = append(changes, `{"path":"color.brand","data":{"$value":"{g0.t00000}"}}`,
		`{"kind":"component","path":"Button","data":{"description":"Primary","tokens":["color.brand"]}}`)
	if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects/design/changes", `{"changes":[`+strings.Join(changes, ",")+`]}`, nil); got != 200 {
		t.Fatalf("seed: %d", got)
	}
}

func TestExportImportBetweenSites(t *testing.T) {
	tmp := t.TempDir()
	dirA, dirB := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	a, b := MustRunMain(t, dirA, "paris"), MustRunMain(t, dirB, "lyon")
	keyA, keyB := adminKey(t, dirA), adminKey(t, dirB)
	seed(t, a, keyA, 50)

	file := filepath.Join(tmp, "design.dss")
	if code, _, se := cli(t, "export", "design", "-o", file, "--server", a.HTTPURL(), "--data-dir", dirA); code != 0 {
		t.Fatalf("export: %d %s", code, se)
	}
	if code, out, se := cli(t, "analyze", file); code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("analyze: %d %s %s", code, out, se)
	}
	if code, _, se := cli(t, "audit", "verify", file); code != 0 {
		t.Fatalf("audit verify of an archive: %d %s", code, se)
	}
	// A dry run says what would happen, and changes nothing.
	code, out, se := cli(t, "import", file, "--project", "design", "--dry-run", "--server", b.HTTPURL(), "--data-dir", dirB)
	if code != 0 || !strings.Contains(out, `"new": 52`) {
		t.Fatalf("dry run: %d %s %s", code, out, se)
	}
	if got := call(t, b.HTTPURL(), keyB, "GET", "/v1/projects/design", "", nil); got != 404 {
		t.Fatalf("a dry run created the project: %d", got)
	}
	// The import brings the history: the same projection, byte for byte.
	if code, out, se := cli(t, "import", file, "--project", "design", "--server", b.HTTPURL(), "--data-dir", dirB); code != 0 || !strings.Contains(out, `"succeeded"`) {
		t.Fatalf("import: %d %s %s", code, out, se)
	}
	if tokenList(t, a, keyA, "design") != tokenList(t, b, keyB, "design") {
		t.Fatal("the imported project differs from the exported one")
	}
	// A DTCG export imports too, as a copy into another project.
	dtcgFile := filepath.Join(tmp, "design.tokens.json")
	if code, _, se := cli(t, "export", "design", "-o", dtcgFile, "--format", "dtcg", "--server", a.HTTPURL(), "--data-dir", dirA); code != 0 {
		t.Fatalf("dtcg export: %d %s", code, se)
	}
	if code, out, se := cli(t, "import", dtcgFile, "--project", "copy", "--server", b.HTTPURL(), "--data-dir", dirB); code != 0 {
		t.Fatalf("dtcg import: %d %s %s", code, out, se)
	}
	var tok struct{ ResolvedValue string }
	call(t, b.HTTPURL(), keyB, "GET", "/v1/projects/copy/tokens/color.brand", "", &tok)
	if tok.ResolvedValue != "#000000" {
		t.Fatalf("copied alias resolves to %q", tok.ResolvedValue)
	}
	// The exports and imports are in /metrics.
	ma := scrape(t, &testSite{t: t, m: a, key: keyA})
	mb := scrape(t, &testSite{t: t, m: b, key: keyB})
	for _, want := range []string{`dss_export_duration_seconds_count{format="dss"} 1`, `dss_export_duration_seconds_count{format="dtcg"} 1`, `dss_export_bytes_count{format="dss"} 1`} {
		if !strings.Contains(ma, want) {
			t.Errorf("paris's /metrics lacks %s", want)
		}
	}
	// A job's end is observed once it is over, which may follow the answer.
	waitFor(t, 5*time.Second, "lyon's import metrics", func() (bool, string) {
		mb = scrape(t, &testSite{t: t, m: b, key: keyB})
		for _, want := range []string{`dss_imports_total{outcome="dry-run"} 1`, `dss_imports_total{outcome="submitted"} 2`, `dss_import_duration_seconds_count{state="succeeded"} 2`, `dss_import_bytes_count 3`} {
			if !strings.Contains(mb, want) {
				return false, want + " missing:\n" + grepLines(mb, "dss_import")
			}
		}
		return true, ""
	})
	// A tampered archive is refused with the report, and changes nothing.
	raw, _ := os.ReadFile(file)
	bad := filepath.Join(tmp, "bad.dss")
	os.WriteFile(bad, append(raw[:len(raw)/2:len(raw)/2], raw[len(raw)/2+10:]...), 0o600)
	code, out, _ = cli(t, "import", bad, "--project", "other", "--server", b.HTTPURL(), "--data-dir", dirB)
	if code != 1 || !strings.Contains(out, `"stages"`) {
		t.Fatalf("tampered archive: %d %s", code, out)
	}
	if code, _, _ := cli(t, "analyze", bad); code != 1 {
		t.Fatal("analyze accepted a tampered archive")
	}
}

// TestImportJobSurvivesRestart: a large import is answered 202 and runs as
// a job; the site stops before the job runs, its JetStream store is lost,
// and after a restart the job is republished from its spooled input and
// completes.
func TestImportJobSurvivesRestart(t *testing.T) {
	tmp := t.TempDir()
	dirA, dirB := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	a := MustRunMain(t, dirA, "paris")
	keyA := adminKey(t, dirA)
	seed(t, a, keyA, 3000)
	file := filepath.Join(tmp, "design.dss")
	if code, _, se := cli(t, "export", "design", "-o", file, "--server", a.HTTPURL(), "--data-dir", dirA); code != 0 {
		t.Fatalf("export: %d %s", code, se)
	}

	cfg, _ := loadConfig([]string{"--data-dir", dirB, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--site", "lyon"}, env(nil))
	b := &Main{Config: *cfg, Logger: slog.New(slog.DiscardHandler), holdJobs: true}
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.archives.syncRecords = 0 // every import becomes a job
	keyB := adminKey(t, dirB)
	body, _ := os.ReadFile(file)
	req := strings.NewReader(string(body))
	res, err := b.archives.Import(context.Background(), importReq("design", req))
	if err != nil || res.Status != 202 {
		t.Fatalf("import: %+v %v", res, err)
	}
	b.Close(context.Background())
	os.RemoveAll(filepath.Join(dirB, "jetstream"))

	b = MustRunMain(t, dirB, "lyon")
	job := res.Body.(*api.Job)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var j api.Job
		call(t, b.HTTPURL(), keyB, "GET", "/v1/jobs/"+job.ID, "", &j)
		if j.State == "succeeded" {
			break
		}
		if j.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("the job did not complete after the restart: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tokenList(t, a, keyA, "design") != tokenList(t, b, keyB, "design") {
		t.Fatal("the resumed import differs from the export")
	}
	// The spooled input goes once the outcome is saved (so a stop between
	// the two cannot lose it): wait for it, then check a restart sweeps an
	// input left by such a stop.
	tmpDir := filepath.Join(dirB, "tmp")
	for entries, _ := os.ReadDir(tmpDir); len(entries) > 0; entries, _ = os.ReadDir(tmpDir) {
		if time.Now().After(deadline) {
			t.Fatalf("left in tmp: %s", entries[0].Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Close(context.Background())
	orphan := filepath.Join(tmpDir, "import-orphan")
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	MustRunMain(t, dirB, "lyon")
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("a spooled input no job needs survived a restart: %v", err)
	}
}

func importReq(project string, body *strings.Reader) api.ImportRequest {
	return api.ImportRequest{Project: project, Actor: "test", Body: body, ContentType: "application/zip", Strategy: "merge"}
}

// TestImportEmpty: an empty DTCG document replaces a project with nothing
// (every token and component deleted, the deletions in the log), merges as
// a no-op into an existing project, and creates a new project empty.
func TestImportEmpty(t *testing.T) {
	dir := t.TempDir()
	m := MustRunMain(t, dir, "paris")
	key := adminKey(t, dir)
	seed(t, m, key, 5)

	var res struct{ State string }
	if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects/fresh/import", `{}`, &res); got != 200 || res.State != "succeeded" {
		t.Fatalf("empty merge into a new project: %d %+v", got, res)
	}
	if got := call(t, m.HTTPURL(), key, "GET", "/v1/projects/fresh", "", nil); got != 200 {
		t.Fatalf("the empty import created no project: %d", got)
	}
	if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects/design/import", `{}`, &res); got != 200 || res.State != "succeeded" {
		t.Fatalf("empty merge: %d %+v", got, res)
	}
	if tokenList(t, m, key, "design") == "[]" {
		t.Fatal("an empty merge deleted tokens")
	}
	if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects/design/import?strategy=replace", `{}`, &res); got != 200 || res.State != "succeeded" {
		t.Fatalf("empty replace: %d %+v", got, res)
	}
	if got := tokenList(t, m, key, "design"); got != "[]" {
		t.Fatalf("after an empty replace the project still holds %s", got)
	}
	var comps struct{ Components []json.RawMessage }
	call(t, m.HTTPURL(), key, "GET", "/v1/projects/design/components", "", &comps)
	if len(comps.Components) != 0 {
		t.Fatalf("after an empty replace the project still holds components %s", comps.Components)
	}
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// npmToolsFiles are the files of testdata/npm that make up the installed
// tools: the pinned packages, their lock, the Style Dictionary script and
// the Terrazzo configuration.
var npmToolsFiles = []string{"package.json", "package-lock.json", "build.mjs", "terrazzo.config.mjs"}

// dtcgToolsTimeout bounds each outside command: the first npm ci downloads
// the packages, later runs find them in the cache.
const dtcgToolsTimeout = 5 * time.Minute

// dtcgToolsSeed holds a token of each of the 13 types of DTCG 2025.10, in
// their 2025.10 object forms (inside composites too), with aliases (whole
// values and composite sub-values, a chain of two, one without a $type of
// its own, ones to a group's own token, spelled either way), a group's own token ($root in the
// file) with a sibling that sorts between it and its children, descriptions,
// a deprecation, and a component (which a DTCG export leaves out). Group
// $type inheritance is not seeded: the service keeps tokens, not groups, so
// every exported token carries its own $type or is an alias.
var dtcgToolsSeed = []string{
	// color
	`{"path":"color.base.blue","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[0,0.4,1],"alpha":1,"hex":"#0066ff"},"$description":"Brand blue"}}`,
	`{"path":"color.base.red","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[1,0,0],"alpha":1}}}`,
	`{"path":"color.base.shade","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[0,0,0],"alpha":0.25}}}`,
	`{"path":"color.base.green","data":{"$type":"color","$value":{"colorSpace":"oklch","components":[0.7,0.15,150]}}}`,
	`{"path":"color.brand","data":{"$value":"{color.base.blue}","$description":"The brand color, an alias without a type of its own"}}`,
	`{"path":"color.text","data":{"$type":"color","$value":"{color.brand}"}}`,
	`{"path":"color.old","data":{"$type":"color","$value":"{color.base.red}","$deprecated":"use color.brand"}}`,
	// A token that is also a group: its group's $root token in the file.
	`{"path":"color.accent","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[1,0.4,0],"alpha":1}}}`,
	`{"path":"color.accent.light","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[1,0.8,0.6],"alpha":1}}}`,
	`{"path":"color.highlight","data":{"$type":"color","$value":"{color.accent.$root}"}}`,
	// The same token named by its path: the file must say "$root" (6.2).
	`{"path":"color.highlight2","data":{"$value":"{color.accent}"}}`,
	// "$root" of a token without children: the file must name it plainly.
	`{"path":"color.solo","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[0.2,0.4,0.6],"alpha":1}}}`,
	`{"path":"color.soloref","data":{"$value":"{color.solo.$root}"}}`,
	// '-' sorts before '.': this sibling comes between color.accent and its
	// children in path order.
	`{"path":"color.accent-dark","data":{"$type":"color","$value":{"colorSpace":"srgb","components":[0.6,0.2,0],"alpha":1}}}`,
	// dimension
	`{"path":"space.small","data":{"$type":"dimension","$value":{"value":4,"unit":"px"}}}`,
	`{"path":"space.large","data":{"$type":"dimension","$value":{"value":1.5,"unit":"rem"}}}`,
	`{"path":"space.gap","data":{"$type":"dimension","$value":"{space.small}"}}`,
	// duration
	`{"path":"time.fast","data":{"$type":"duration","$value":{"value":200,"unit":"ms"}}}`,
	`{"path":"time.none","data":{"$type":"duration","$value":{"value":0,"unit":"ms"}}}`,
	// fontFamily
	`{"path":"font.family.body","data":{"$type":"fontFamily","$value":["Inter","Helvetica Neue","sans-serif"]}}`,
	`{"path":"font.family.mono","data":{"$type":"fontFamily","$value":"Menlo"}}`,
	// fontWeight
	`{"path":"font.weight.bold","data":{"$type":"fontWeight","$value":700}}`,
	`{"path":"font.weight.regular","data":{"$type":"fontWeight","$value":"regular"}}`,
	// cubicBezier
	`{"path":"easing.standard","data":{"$type":"cubicBezier","$value":[0.2,0,0,1]}}`,
	// number
	`{"path":"number.ratio","data":{"$type":"number","$value":1.25}}`,
	// strokeStyle
	`{"path":"stroke.dashed","data":{"$type":"strokeStyle","$value":"dashed"}}`,
	`{"path":"stroke.custom","data":{"$type":"strokeStyle","$value":{"dashArray":[{"value":2,"unit":"px"},{"value":4,"unit":"px"}],"lineCap":"round"}}}`,
	// border
	`{"path":"border.focus","data":{"$type":"border","$value":{"color":"{color.brand}","width":{"value":2,"unit":"px"},"style":"solid"},"$description":"Focus ring"}}`,
	// transition
	`{"path":"motion.fade","data":{"$type":"transition","$value":{"duration":"{time.fast}","delay":"{time.none}","timingFunction":"{easing.standard}"}}}`,
	`{"path":"motion.slide","data":{"$type":"transition","$value":{"duration":{"value":0.3,"unit":"s"},"delay":{"value":50,"unit":"ms"},"timingFunction":[0.4,0,0.2,1]}}}`,
	// shadow
	`{"path":"shadow.card","data":{"$type":"shadow","$value":{"color":"{color.base.shade}","offsetX":{"value":0,"unit":"px"},"offsetY":{"value":2,"unit":"px"},"blur":{"value":4,"unit":"px"},"spread":{"value":0,"unit":"px"}}}}`,
	`{"path":"shadow.layered","data":{"$type":"shadow","$value":[{"color":{"colorSpace":"srgb","components":[0,0,0],"alpha":0.5},"offsetX":{"value":0,"unit":"px"},"offsetY":{"value":1,"unit":"px"},"blur":{"value":2,"unit":"px"},"spread":{"value":0,"unit":"px"}},{"color":"{color.base.shade}","offsetX":{"value":0,"unit":"px"},"offsetY":{"value":0,"unit":"px"},"blur":{"value":1,"unit":"px"},"spread":{"value":1,"unit":"px"},"inset":true}]}}`,
	// gradient
	`{"path":"gradient.hero","data":{"$type":"gradient","$value":[{"color":"{color.brand}","position":0},{"color":{"colorSpace":"srgb","components":[1,1,1],"alpha":1},"position":1}]}}`,
	// typography
	`{"path":"typography.body","data":{"$type":"typography","$value":{"fontFamily":"{font.family.body}","fontSize":{"value":16,"unit":"px"},"fontWeight":"{font.weight.regular}","letterSpacing":{"value":0,"unit":"px"},"lineHeight":1.5}}}`,
	// A component, which uses tokens but is not one.
	`{"kind":"component","path":"Button","data":{"description":"Primary action","tokens":["color.brand","border.focus"]}}`,
}

// TestDTCGExportWithOutsideTools proves a DTCG export is a DTCG file as
// other tools read it, not only as dss-sync reads it back: a project holding
// every DTCG 2025.10 type, with aliases, is exported with the CLI; Style
// Dictionary builds it into CSS and JavaScript whose values are checked
// (aliases resolved, object-form colors, dimensions and durations written as
// CSS, composites as shorthands), and Terrazzo's `tz check`, with its rules
// for every type on, must find no error. The tools are pinned in
// testdata/npm and installed once into the user's cache. The test skips,
// saying why, only when npm is not installed.
func TestDTCGExportWithOutsideTools(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skipf("npm unavailable (%v): Style Dictionary and Terrazzo checks not run", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("npm is installed but node is not: %v", err)
	}
	tools := installNPMTools(t, npm)

	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	m := MustRunMain(t, dir, "paris")
	key := adminKey(t, dir)
	if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	var res any
	if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects/design/changes", `{"changes":[`+strings.Join(dtcgToolsSeed, ",")+`]}`, &res); got != 200 {
		t.Fatalf("seed: %d %v", got, res)
	}
	file := filepath.Join(tmp, "design.tokens.json")
	if code, _, se := cli(t, "export", "design", "-o", file, "--format", "dtcg", "--server", m.HTTPURL(), "--data-dir", dir); code != 0 {
		t.Fatalf("dtcg export: exit %d: %s", code, se)
	}
	exported, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	// Style Dictionary builds it, and the values come out as CSS would have
	// them: aliases resolved (a chain, one without a $type, one to a $root
	// token, ones inside composites), object-form colors, dimensions and
	// durations written as CSS, composites as shorthands.
	out := filepath.Join(tmp, "sd")
	if b, err := runTool(t, tools, node, filepath.Join(tools, "build.mjs"), file, out); err != nil {
		t.Fatalf("Style Dictionary rejected the export: %v\n%s\nthe export:\n%s", err, b, exported)
	}
	css, err := os.ReadFile(filepath.Join(out, "variables.css"))
	if err != nil {
		t.Fatalf("Style Dictionary wrote no CSS: %v", err)
	}
	for _, want := range []string{
		"--color-base-blue: #0066ff; /** Brand blue */",
		"--color-base-red: #ff0000;",
		"--color-base-shade: rgba(0, 0, 0, 0.25);",
		"--color-base-green: #", // oklch, mapped to sRGB
		"--color-brand: #0066ff; /** The brand color, an alias without a type of its own */",
		"--color-text: #0066ff;",
		"--color-old: #ff0000;",
		"--color-accent-root: #ff6600;",
		"--color-accent-light: #ffcc99;",
		"--color-accent-dark: #993300;",
		"--color-highlight: #ff6600;",
		"--color-highlight2: #ff6600;",
		"--color-soloref: #336699;",
		"--space-small: 4px;",
		"--space-large: 1.5rem;",
		"--space-gap: 4px;",
		"--time-fast: 200ms;",
		"--font-family-body: Inter, 'Helvetica Neue', sans-serif;",
		"--font-family-mono: Menlo;",
		"--font-weight-bold: 700;",
		"--easing-standard: cubic-bezier(0.2, 0, 0, 1);",
		"--number-ratio: 1.25;",
		"--stroke-dashed: dashed;",
		"--stroke-custom: dashed;", // the fallback of a dashArray style (9.3.3)
		"--border-focus: 2px solid #0066ff; /** Focus ring */",
		"--motion-fade: 200ms cubic-bezier(0.2, 0, 0, 1) 0ms;",
		"--motion-slide: 0.3s cubic-bezier(0.4, 0, 0.2, 1) 50ms;",
		"--shadow-card: 0px 2px 4px 0px rgba(0, 0, 0, 0.25);",
		"inset 0px 0px 1px 1px rgba(0, 0, 0, 0.25);", // the second of shadow.layered
		"--gradient-hero-1-color: #0066ff;",
		"--gradient-hero-2-position: 1;",
		"--typography-body-font-family: Inter, 'Helvetica Neue', sans-serif;",
		"--typography-body-font-size: 16px;",
		"--typography-body-letter-spacing: 0px;",
		"--typography-body-line-height: 1.5;",
	} {
		if !strings.Contains(string(css), want) {
			t.Errorf("the CSS lacks %q", want)
		}
	}
	if strings.Contains(string(css), "[object Object]") || strings.Contains(strings.ToLower(string(css)), "button") {
		t.Error("the CSS holds a value Style Dictionary could not write, or the component")
	}
	js, err := os.ReadFile(filepath.Join(out, "tokens.js"))
	if err != nil {
		t.Fatalf("Style Dictionary wrote no JavaScript: %v", err)
	}
	for _, want := range []string{
		`export const ColorBrand = "#0066ff";`,
		`export const ColorAccentRoot = "#ff6600";`,
		`export const SpaceSmall = "4px";`,
		`export const FontFamilyBody = ["Inter", "Helvetica Neue", "sans-serif"];`,
		`export const NumberRatio = 1.25;`,
	} {
		if !strings.Contains(string(js), want) {
			t.Errorf("the JavaScript lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("Style Dictionary's CSS:\n%s\nits JavaScript:\n%s\nthe export:\n%s", css, js, exported)
	}

	// Terrazzo checks it, with the rules that validate every type on.
	if b, err := runTool(t, tools, npm, "exec", "--offline", "--", "tz", "check", "--config", "terrazzo.config.mjs", file); err != nil {
		t.Fatalf("tz check rejected the export: %v\n%s\nthe export:\n%s", err, b, exported)
	}
}

// runTool runs a command in dir with dtcgToolsTimeout and returns its
// combined output.
func runTool(t *testing.T, dir, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dtcgToolsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// installNPMTools installs the packages of testdata/npm, with npm ci, into a
// directory of the user's cache named by the hash of npmToolsFiles, and
// returns that directory. A later run finds it there. The install happens in
// a temporary directory renamed into place once complete, so concurrent
// test processes never see half an install: the first rename wins, and the
// others use its result.
func installNPMTools(t *testing.T, npm string) string {
	t.Helper()
	h := sha256.New()
	contents := make([][]byte, len(npmToolsFiles))
	for i, name := range npmToolsFiles {
		b, err := os.ReadFile(filepath.Join("testdata", "npm", name))
		if err != nil {
			t.Fatalf("the pinned npm tools: %v", err)
		}
		contents[i] = b
		h.Write([]byte(name + "\x00"))
		h.Write(b)
		h.Write([]byte{0})
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "dss-sync-npm-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return dir
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("npm tools cache: %v", err)
	}
	tmp, err := os.MkdirTemp(cache, "dss-sync-npm-*.tmp")
	if err != nil {
		t.Fatalf("npm tools cache: %v", err)
	}
	defer os.RemoveAll(tmp) // nothing left once renamed into place
	for i, name := range npmToolsFiles {
		if err := os.WriteFile(filepath.Join(tmp, name), contents[i], 0o644); err != nil {
			t.Fatalf("npm tools cache: %v", err)
		}
	}
	start := time.Now()
	if b, err := runTool(t, tmp, npm, "ci", "--no-audit", "--no-fund"); err != nil {
		t.Fatalf("npm ci of testdata/npm in %s: %v\n%s", tmp, err, b)
	}
	t.Logf("installed the npm tools into %s in %v", dir, time.Since(start).Round(time.Millisecond))
	if err := os.Rename(tmp, dir); err != nil {
		// Another test process installed the same files first: use its copy.
		if _, serr := os.Stat(filepath.Join(dir, "node_modules")); serr != nil {
			t.Fatalf("npm tools cache: %v", errors.Join(err, serr))
		}
	}
	return dir
}

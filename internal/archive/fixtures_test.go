package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/archive fixtures")

// maxFixtureBytes bounds every committed fixture.
const maxFixtureBytes = 200 << 10

// fixture is one hostile archive: how to build it, and how it is refused.
type fixture struct {
	name  string // file name under testdata/archive/hostile, without .dss
	stage string // "open": Open refuses it; "read": Open accepts it and reading an entry fails
	want  string // a substring of the refusal
	build func(t testing.TB) []byte
}

func (f fixture) wantLine() string { return f.stage + ": " + f.want + "\n" }

// fixtures lists every hostile archive committed under testdata/archive/hostile.
var fixtures = []fixture{
	{"slip-dotdot", "open", `".." path element`, one(zent{name: "../x", body: []byte("x")})},
	{"slip-absolute", "open", "absolute path", one(zent{name: "/abs", body: []byte("x")})},
	{"slip-backslash", "open", `".." path element`, one(zent{name: `a\..\b`, body: []byte("x")})},
	{"slip-drive", "open", "absolute path", one(zent{name: `C:\manifest.json`, body: []byte("x")})},
	{"backslash", "open", "backslash in the name", one(zent{name: `sub\tokens.json`, body: []byte("{}")})},
	{"subfolder", "open", "inside a folder", one(zent{name: "sub/manifest.json", body: []byte("{}")})},
	{"dir-slash", "open", "is a directory", one(zent{name: "tokens/"})},
	{"dir-mode", "open", "is a directory", one(zent{name: ComponentsName, mode: fs.ModeDir | 0o755})},
	{"symlink", "open", "is a symbolic link", one(zent{name: ManifestName, mode: fs.ModeSymlink | 0o777, body: []byte("/etc/passwd")})},
	{"fifo", "open", "is not a regular file", one(zent{name: EventsName, mode: fs.ModeNamedPipe | 0o644})},
	{"hidden", "open", "hidden name", one(zent{name: ".manifest.json", body: []byte("{}")})},
	{"unknown", "open", "unknown entry name", one(zent{name: "payload.exe", body: []byte("MZ")})},
	{"name-control", "open", "control characters", one(zent{name: "manifest.json\x00.exe", body: []byte("{}")})},
	{"duplicate", "open", "appears more than once", func(t testing.TB) []byte {
		return buildZip(t, zent{name: ManifestName, body: []byte(`{"a":1}`)}, zent{name: ManifestName, body: []byte(`{"a":2}`)})
	}},
	{"encrypted", "open", "is encrypted", one(zent{name: TokensName, flags: 1, body: []byte("{}")})},
	{"method", "open", "compression method 14", one(zent{name: TokensName, raw: true, method: 14, body: []byte("LZMA?"), csize: 5, usize: 5})},
	{"truncated", "open", "truncated", func(t testing.TB) []byte {
		b := buildMinimal(t)
		return b[:len(b)/2]
	}},
	{"notzip", "open", "looks like JSON", func(testing.TB) []byte {
		return []byte(`{"format":1,"tokens":{"color":{"$value":"#fff"}}}` + "\n")
	}},
	{"empty", "open", "empty (0 bytes)", func(testing.TB) []byte { return []byte{} }},
	{"bomb-declared", "open", "declared uncompressed size 2147483648", func(t testing.TB) []byte {
		comp, crc := deflatedZeros(t, 1000)
		return buildZip(t, zent{name: EventsName, raw: true, method: zip.Deflate, body: comp, crc: crc, csize: uint64(len(comp)), usize: 2 << 30})
	}},
	{"bomb-lying", "read", "more than its declared size of 10000 bytes", func(t testing.TB) []byte {
		// 50 MB of zeros whose central directory claims 10,000 bytes: the
		// declared ratio is below 1, so only reading can catch it.
		comp, crc := deflatedZeros(t, 50<<20)
		return buildZip(t, zent{name: EventsName, raw: true, method: zip.Deflate, body: comp, crc: crc, csize: uint64(len(comp)), usize: 10000})
	}},
	{"high-ratio", "open", "compression ratio", func(t testing.TB) []byte {
		// 1 MiB of zeros, honestly declared, compresses about 1000:1.
		return buildZip(t, zent{name: TokensName, body: make([]byte, 1<<20)})
	}},
	{"too-many", "open", "too many entries: 17", func(t testing.TB) []byte {
		var ents []zent
		for i := range 17 {
			ents = append(ents, zent{name: fmt.Sprintf("f%02d.json", i), body: []byte("{}")})
		}
		return buildZip(t, ents...)
	}},
	{"overlap", "open", "overlaps the data", func(t testing.TB) []byte {
		// Two central records pointing at the same local header and data.
		b := buildZip(t, zent{name: TokensName, body: []byte(`{"x":1}`)}, zent{name: ComponentsName, body: []byte(`{"x":1}`)})
		recs := centralRecords(t, b)
		put32(b, recs[1]+cdHeaderOff, 0)
		return b
	}},
	{"past-end", "open", "extends past the end", func(t testing.TB) []byte {
		b := buildZip(t, zent{name: TokensName, body: []byte(`{"x":1}`)})
		put32(b, centralRecords(t, b)[0]+cdCSize, 0x7fff0000)
		return b
	}},
	{"crc-mismatch", "read", "checksum mismatch", func(t testing.TB) []byte {
		b := buildZip(t, zent{name: TokensName, body: []byte(`{"x":1}`)})
		rec := centralRecords(t, b)[0]
		put32(b, rec+cdCRC, 0xdeadbeef)
		return b
	}},
	{"crc-zero", "read", "checksum mismatch", func(t testing.TB) []byte {
		// A CRC of 0 makes archive/zip skip its check (no data descriptor).
		body := []byte(`{"x":1}`)
		return buildZip(t, zent{name: TokensName, raw: true, method: zip.Store, body: body, crc: 0, csize: uint64(len(body)), usize: uint64(len(body))})
	}},
	{"descriptor-mismatch", "read", "data descriptor records", func(t testing.TB) []byte {
		b := buildZip(t, zent{name: TokensName, body: []byte(`{"x":1}`)})
		i := bytes.Index(b, []byte("PK\x07\x08"))
		if i < 0 || bytes.Count(b, []byte("PK\x07\x08")) != 1 {
			t.Fatal("want exactly one data descriptor")
		}
		put32(b, i+4, 0x12345678)
		return b
	}},
	{"corrupt-deflate", "read", "compressed data is corrupt", one(zent{name: TokensName, raw: true, method: zip.Deflate, body: []byte{0xff, 0xff, 0xff, 0xff}, crc: 1, csize: 4, usize: 10})},
	{"short-entry", "read", "ends after 7 bytes but its header declares 100", func(t testing.TB) []byte {
		body := []byte(`{"x":1}`)
		comp := deflated(t, body)
		return buildZip(t, zent{name: TokensName, raw: true, method: zip.Deflate, body: comp, crc: crc32.ChecksumIEEE(body), csize: uint64(len(comp)), usize: 100})
	}},
}

// one builds a zip of a single entry.
func one(e zent) func(t testing.TB) []byte {
	return func(t testing.TB) []byte { return buildZip(t, e) }
}

// TestFixtures checks that every committed hostile fixture is refused, at the
// stage and with the message its .want file names, and that the valid one is
// accepted. With -update it first rewrites them all.
func TestFixtures(t *testing.T) {
	if *update {
		writeFixtures(t)
	}
	files, err := filepath.Glob(filepath.Join(hostileDir, "*.dss"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".dss"))
	}
	for _, fx := range fixtures {
		if !slices.Contains(names, fx.name) {
			t.Errorf("fixture %s.dss is missing; run go test ./internal/archive -run TestFixtures -update", fx.name)
		}
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".dss")
		t.Run(name, func(t *testing.T) {
			b := readFile(t, file)
			if len(b) > maxFixtureBytes {
				t.Errorf("fixture is %d bytes, want at most %d", len(b), maxFixtureBytes)
			}
			stage, want := readWant(t, strings.TrimSuffix(file, ".dss")+".want")
			if i := slices.IndexFunc(fixtures, func(f fixture) bool { return f.name == name }); i < 0 {
				t.Errorf("fixture is not in the table of fixtures_test.go")
			} else if got := stage + ": " + want + "\n"; got != fixtures[i].wantLine() {
				t.Errorf(".want: got %q, the table says %q", got, fixtures[i].wantLine())
			}
			checkRefused(t, b, stage, want)
		})
	}
	t.Run("valid/minimal", func(t *testing.T) {
		b := readFile(t, minimalDSS)
		if !bytes.Equal(b, buildMinimal(t)) {
			t.Errorf("minimal.dss differs from what the Writer writes now; run with -update")
		}
		r := mustOpen(t, b)
		if err := readEntries(r); err != nil {
			t.Fatalf("reading minimal.dss: got %v, want no error", err)
		}
	})
}

// TestFixturesInsecurePathGodebug checks that GODEBUG=zipinsecurepath=0,
// which makes archive/zip return ErrInsecurePath alongside a usable reader,
// changes nothing: every fixture gets the same problems.
func TestFixturesInsecurePathGodebug(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(hostileDir, "*.dss"))
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, f := range files {
		b := readFile(t, f)
		_, err := openBytes(b, Limits{})
		before[f] = fmt.Sprint(err)
	}
	t.Setenv("GODEBUG", "zipinsecurepath=0")
	slip := readFile(t, filepath.Join(hostileDir, "slip-dotdot.dss"))
	if _, err := zip.NewReader(bytes.NewReader(slip), int64(len(slip))); !errors.Is(err, zip.ErrInsecurePath) {
		t.Fatalf("zip.NewReader with zipinsecurepath=0: got %v, want ErrInsecurePath (the setting did not take)", err)
	}
	for _, f := range files {
		b := readFile(t, f)
		_, err := openBytes(b, Limits{})
		if got := fmt.Sprint(err); got != before[f] {
			t.Errorf("%s: with zipinsecurepath=0 got %q, without %q", filepath.Base(f), got, before[f])
		}
	}
}

// checkRefused opens b and, if stage is "read", reads every entry, and checks
// the refusal comes at that stage with want in its text.
func checkRefused(t *testing.T, b []byte, stage, want string) {
	t.Helper()
	r, err := openBytes(b, Limits{})
	switch stage {
	case "open":
		wantRefusal(t, err, want)
		if len(Problems(err)) == 0 {
			t.Errorf("Problems: got none, want at least one")
		}
	case "read":
		if err != nil {
			t.Fatalf("Open: got %v, want the archive accepted (it must be caught while reading)", err)
		}
		wantRefusal(t, readEntries(r), want)
	default:
		t.Fatalf("unknown stage %q", stage)
	}
}

// readWant reads a .want file: one line, "open: substring" or "read: substring".
func readWant(t *testing.T, path string) (stage, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("every fixture needs a .want file: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	stage, want, ok := strings.Cut(line, ": ")
	if !ok || want == "" {
		t.Fatalf("%s: got %q, want \"open: substring\" or \"read: substring\"", path, line)
	}
	return stage, want
}

// writeFixtures rewrites every fixture, removing hostile ones no longer listed.
func writeFixtures(t *testing.T) {
	t.Helper()
	for _, d := range []string{hostileDir, validDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(hostileDir, "*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, fx := range fixtures {
		b := fx.build(t)
		if len(b) > maxFixtureBytes {
			t.Fatalf("%s: %d bytes, more than %d", fx.name, len(b), maxFixtureBytes)
		}
		base := filepath.Join(hostileDir, fx.name)
		if err := os.WriteFile(base+".dss", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".want", []byte(fx.wantLine()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(minimalDSS, buildMinimal(t), 0o644); err != nil {
		t.Fatal(err)
	}
}

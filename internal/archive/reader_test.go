package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestOpenMinimal(t *testing.T) {
	r := mustOpen(t, readFile(t, minimalDSS))
	want := []string{ComponentsName, EventsName, ManifestName, TokensName}
	if got := r.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names: got %q, want %q", got, want)
	}
	for _, n := range Names {
		if !r.Has(n) {
			t.Errorf("Has(%q): got false, want true", n)
		}
	}
	if r.Has("other.json") {
		t.Errorf(`Has("other.json"): got true, want false`)
	}
	names := r.Names()
	names[0] = "changed"
	if got := r.Names()[0]; got != ComponentsName {
		t.Errorf("Names shares its slice with the Reader: got %q after changing the copy", got)
	}
}

func TestOpenWithoutOptionalEntry(t *testing.T) {
	b := buildZip(t, zent{name: ManifestName, body: []byte("{}")}, zent{name: TokensName, body: []byte("{}")}, zent{name: ComponentsName, body: []byte("[]")})
	r := mustOpen(t, b)
	if r.Has(EventsName) {
		t.Errorf("Has(events): got true, want false")
	}
	if _, err := r.Entry(EventsName); err == nil {
		t.Errorf("Entry(events): got no error, want one")
	} else {
		wantRefusal(t, err, "no such entry")
	}
}

func TestOpenAllowed(t *testing.T) {
	b := readFile(t, minimalDSS)
	_, err := Open(bytes.NewReader(b), int64(len(b)), []string{ManifestName, TokensName, ComponentsName}, Limits{})
	wantRefusal(t, err, "events.ndjson: unknown entry name; allowed names are components.json, manifest.json, tokens.json")
	if _, err := Open(bytes.NewReader(b), int64(len(b)), []string{}, Limits{}); err == nil {
		t.Errorf("Open with an empty allowed list: got no error, want every name refused")
	}
}

func TestOpenLimits(t *testing.T) {
	b := readFile(t, minimalDSS)
	cases := []struct {
		name string
		lim  Limits
		want string
	}{
		{"archive size", Limits{MaxArchiveBytes: 100}, fmt.Sprintf("the archive is %d bytes, more than the limit of 100 bytes", len(b))},
		{"entries", Limits{MaxEntries: 3}, "too many entries: 4, at most 3 are allowed"},
		{"entry size", Limits{MaxEntryBytes: 20}, "declared uncompressed size 30 bytes is more than the limit of 20 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openBytes(b, c.lim)
			wantRefusal(t, err, c.want)
		})
	}
	t.Run("ratio of a compressible entry", func(t *testing.T) {
		z := buildZip(t, zent{name: ManifestName, body: bytes.Repeat([]byte(" "), 1000)}, zent{name: TokensName, body: []byte("{}")}, zent{name: ComponentsName, body: []byte("[]")})
		_, err := openBytes(z, Limits{MaxRatio: 10})
		wantRefusal(t, err, "declared compression ratio")
	})
	t.Run("negative means default", func(t *testing.T) {
		if _, err := openBytes(b, Limits{MaxArchiveBytes: -1, MaxEntryBytes: -1, MaxRatio: -1, MaxEntries: -1}); err != nil {
			t.Fatalf("got %v, want no error", err)
		}
	})
}

func TestLimitsDefaults(t *testing.T) {
	got := Limits{}.withDefaults()
	want := Limits{MaxArchiveBytes: 1 << 30, MaxEntryBytes: 1 << 30, MaxRatio: 200, MaxEntries: 16}
	if got != want || DefaultLimits != want {
		t.Fatalf("defaults: got %+v (DefaultLimits %+v), want %+v", got, DefaultLimits, want)
	}
	got = Limits{MaxRatio: 7}.withDefaults()
	if got.MaxRatio != 7 || got.MaxEntries != 16 {
		t.Fatalf("Limits{MaxRatio: 7}: got %+v, want MaxRatio 7 and defaults elsewhere", got)
	}
}

func TestOpenReportsEveryProblem(t *testing.T) {
	b := buildZip(t,
		zent{name: "../evil", body: []byte("x")},
		zent{name: ManifestName, flags: 1, body: []byte("{}")},
		zent{name: TokensName, mode: fs.ModeSymlink | 0o777, body: []byte("/etc/passwd")},
		zent{name: ComponentsName, raw: true, method: 12, body: []byte("BZh"), csize: 3, usize: 3},
		zent{name: ManifestName, body: []byte("{}")},
	)
	_, err := openBytes(b, Limits{})
	probs := Problems(err)
	var got []string
	for _, p := range probs {
		got = append(got, p.Field+" | "+strings.SplitN(p.Msg, ";", 2)[0])
	}
	want := []string{
		`../evil | ".." path element (zip slip)`,
		"manifest.json | is encrypted",
		"tokens.json | is a symbolic link",
		"components.json | uses compression method 12",
		"manifest.json | appears more than once in the central directory",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Problems:\ngot  %q\nwant %q", got, want)
	}
	var first *Error
	if !errors.As(err, &first) || first != probs[0] {
		t.Errorf("errors.As: got %v, want the first problem", first)
	}
	if !strings.HasPrefix(err.Error(), "archive: 5 problems:\n\tarchive: ../evil: ") {
		t.Errorf("Error(): got %q, want it to list the 5 problems", err.Error())
	}
}

func TestProblems(t *testing.T) {
	if got := Problems(nil); got != nil {
		t.Errorf("Problems(nil): got %v, want nil", got)
	}
	if got := Problems(io.EOF); got != nil {
		t.Errorf("Problems(io.EOF): got %v, want nil", got)
	}
	if got := Problems(&Error{Msg: "x"}); got != nil {
		t.Errorf("Problems(*Error not from Open): got %v, want nil", got)
	}
	_, err := openBytes([]byte("not a zip"), Limits{})
	probs := Problems(fmt.Errorf("wrapped: %w", err))
	if len(probs) != 1 || probs[0].Field != "" || !strings.Contains(probs[0].Msg, "not a zip archive") {
		t.Errorf("Problems(wrapped Open error): got %v, want the one archive-wide problem", probs)
	}
	probs[0] = nil
	if Problems(err)[0] == nil {
		t.Errorf("Problems shares its slice with the error")
	}
}

func TestErrorString(t *testing.T) {
	cases := []struct {
		err  *Error
		want string
	}{
		{&Error{Msg: "the file is empty"}, "archive: the file is empty"},
		{&Error{Field: "tokens.json", Msg: "is encrypted"}, "archive: tokens.json: is encrypted"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestDisplayName(t *testing.T) {
	cases := []struct{ name, want string }{
		{"tokens.json", "tokens.json"},
		{"../x", "../x"},
		{"", `""`},
		{"a\nb", `"a\nb"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{" lead", `" lead"`},
		{`say "hi"`, `"say \"hi\""`},
		{strings.Repeat("a", 100), `"` + strings.Repeat("a", 64) + `"… (100 bytes)`},
	}
	for _, c := range cases {
		if got := displayName(c.name); got != c.want {
			t.Errorf("displayName(%q): got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNameProblem(t *testing.T) {
	allow := map[string]bool{}
	for _, n := range Names {
		allow[n] = true
	}
	cases := []struct {
		name string
		mode fs.FileMode
		want string // "" means accepted
	}{
		{ManifestName, 0o644, ""},
		{"", 0o644, "empty name"},
		{"/etc/passwd", 0o644, "absolute path"},
		{`\windows`, 0o644, "absolute path"},
		{"c:x", 0o644, "absolute path"},
		{"..", 0o644, `".." path element`},
		{`..\x`, 0o644, `".." path element`},
		{"a/../b", 0o644, `".." path element`},
		{`a\b`, 0o644, "backslash"},
		{"dir/", 0o755 | fs.ModeDir, "is a directory"},
		{"dir", 0o755 | fs.ModeDir, "is a directory"},
		{"a/b", 0o644, "inside a folder"},
		{".", 0o644, "hidden name"},
		{".tokens.json", 0o644, "hidden name"},
		{"tokens.json\r", 0o644, "control characters"},
		{"manifest.json\u200b", 0o644, "control characters"},
		{"MANIFEST.JSON", 0o644, "unknown entry name"},
		{"a..b", 0o644, "unknown entry name"},
	}
	for _, c := range cases {
		got := nameProblem(c.name, c.mode, allow, Names)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("nameProblem(%q): got %q, want %q", c.name, got, c.want)
		}
	}
}

// failingReaderAt fails every read with a disk error.
type failingReaderAt struct{}

var errDisk = errors.New("disk on fire")

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errDisk }

func TestOpenReaderFailure(t *testing.T) {
	_, err := Open(failingReaderAt{}, 1000, nil, Limits{})
	if !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want it to wrap the source's error", err)
	}
	var ae *Error
	if errors.As(err, &ae) || Problems(err) != nil {
		t.Errorf("got an *Error for a failing source, want a plain wrapped error")
	}
}

func TestOpenSizeLargerThanData(t *testing.T) {
	// A caller that passes a size larger than the data: reads past the end
	// come back short, and the body is refused, not read out of bounds.
	b := readFile(t, minimalDSS)
	_, err := Open(bytes.NewReader(b), int64(len(b))+5000, nil, Limits{})
	wantRefusal(t, err, "ends before the")
}

func TestOpenArgs(t *testing.T) {
	_, err := Open(nil, 10, nil, Limits{})
	wantRefusal(t, err, "no archive")
	_, err = Open(bytes.NewReader(nil), -1, nil, Limits{})
	wantRefusal(t, err, "invalid archive size -1")
}

func TestOpenNotZip(t *testing.T) {
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"json", []byte(`  [1,2,3]`), "looks like JSON text"},
		{"text", []byte("hello, world\n"), "looks like text"},
		{"binary", []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0}, "no zip signature"},
		{"end record only", []byte("PK\x05\x06"), "not a zip archive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openBytes(c.body, Limits{})
			wantRefusal(t, err, c.want)
		})
	}
}

func TestOpenEmptyZip(t *testing.T) {
	r := mustOpen(t, buildZip(t))
	if got := r.Names(); len(got) != 0 {
		t.Fatalf("Names: got %q, want none", got)
	}
}

// TestOpenHugeCentralDirectory checks that a central directory of many tiny
// records is refused while it is parsed, with memory bounded by the read
// budget rather than by the archive's size.
func TestOpenHugeCentralDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 40,000-entry zip")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 40000 {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprint(i % 10), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := openBytes(b, Limits{})
	runtime.ReadMemStats(&after)
	wantRefusal(t, err, "central directory is too large")
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4<<20); got > limit {
		t.Errorf("Open allocated %d bytes for a %d-byte directory, want at most %d", got, len(b), limit)
	}
	// With a budget as large as the archive, archive/zip reads it all.
	if _, err := openBytes(b, Limits{MaxEntries: 50000}); err == nil || !strings.Contains(err.Error(), "unknown entry name") {
		t.Errorf("with MaxEntries 50000: got %.200v, want the names refused", err)
	}
}

func TestOpenDeclaredRatioZeroCompressed(t *testing.T) {
	// Bytes from nothing: a compressed size of 0 for a non-empty entry.
	b := buildZip(t, zent{name: TokensName, raw: true, method: zip.Deflate, csize: 0, usize: 10})
	_, err := openBytes(b, Limits{})
	wantRefusal(t, err, "declared compression ratio (10 bytes from 0)")
}

func TestOpenStoredSizesDisagree(t *testing.T) {
	b := buildZip(t, zent{name: TokensName, raw: true, method: zip.Store, body: []byte("{}"), csize: 2, usize: 3})
	_, err := openBytes(b, Limits{})
	wantRefusal(t, err, "is stored uncompressed but declares 2 compressed and 3 uncompressed bytes")
}

func TestRatioBound(t *testing.T) {
	cases := []struct {
		csize uint64
		ratio int64
		want  uint64
	}{
		{0, 200, 0},
		{10, 200, 2000},
		{1 << 62, 200, 1<<64 - 1},
	}
	for _, c := range cases {
		if got := ratioBound(c.csize, c.ratio); got != c.want {
			t.Errorf("ratioBound(%d, %d): got %d, want %d", c.csize, c.ratio, got, c.want)
		}
	}
}

func TestBoundedReaderAt(t *testing.T) {
	src := &boundedReaderAt{r: bytes.NewReader([]byte("0123456789")), size: 6}
	buf := make([]byte, 4)
	cases := []struct {
		off     int64
		wantN   int
		wantErr error
		want    string
	}{
		{0, 4, nil, "0123"},
		{4, 2, io.EOF, "45"},
		{6, 0, io.EOF, ""},
		{100, 0, io.EOF, ""},
		{-1, 0, errOutOfRange, ""},
	}
	for _, c := range cases {
		n, err := src.ReadAt(buf, c.off)
		if n != c.wantN || err != c.wantErr || string(buf[:n]) != c.want {
			t.Errorf("ReadAt(off %d): got %d %v %q, want %d %v %q", c.off, n, err, buf[:n], c.wantN, c.wantErr, c.want)
		}
	}
	src.budgeted, src.budget = true, 5
	if _, err := src.ReadAt(buf, 0); err != nil {
		t.Fatalf("within budget: got %v", err)
	}
	if _, err := src.ReadAt(buf, 0); err != errBudget || !src.over {
		t.Fatalf("past the budget: got %v (over %v), want errBudget", err, src.over)
	}
}

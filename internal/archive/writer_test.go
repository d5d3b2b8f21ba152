package archive

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// sampleContent is a larger set of entries than minimalContent: the events
// entry spans many deflate blocks.
func sampleContent() map[string][]byte {
	var events bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&events, `{"seq":%d,"type":"token.update","path":"color.c%d","value":"#%06x"}`+"\n", i, i%97, i*7919%0xffffff)
	}
	return map[string][]byte{
		ManifestName:   []byte(`{"format":1}`),
		TokensName:     []byte(`{"color":{"primary":{"$value":"#0055ff"}}}`),
		ComponentsName: []byte(`[]`),
		EventsName:     events.Bytes(),
	}
}

// writeArchive writes content with a Writer, in Names order, writing each
// entry in chunks of chunk bytes.
func writeArchive(t *testing.T, content map[string][]byte, chunk int) ([]byte, map[string]FileInfo) {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(onlyWriter{&buf})
	for _, n := range Names {
		fw, err := w.Create(n)
		if err != nil {
			t.Fatalf("Create(%s): %v", n, err)
		}
		for b := content[n]; len(b) > 0; {
			k := min(chunk, len(b))
			if _, err := fw.Write(b[:k]); err != nil {
				t.Fatalf("write %s: %v", n, err)
			}
			b = b[k:]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes(), w.Files()
}

// onlyWriter hides every method but Write, as an HTTP response would.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

func TestWriterRoundTrip(t *testing.T) {
	content := sampleContent()
	b, files := writeArchive(t, content, 1000)
	if len(files) != len(Names) {
		t.Fatalf("Files: got %d entries, want %d", len(files), len(Names))
	}
	r := mustOpen(t, b)
	for _, n := range Names {
		e, err := r.Entry(n)
		if err != nil {
			t.Fatalf("Entry(%s): %v", n, err)
		}
		got, err := io.ReadAll(e)
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		if !bytes.Equal(got, content[n]) {
			t.Errorf("%s: content differs after the round trip", n)
		}
		sum := sha256.Sum256(content[n])
		want := FileInfo{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content[n]))}
		if files[n] != want {
			t.Errorf("Files()[%s]: got %+v, want %+v", n, files[n], want)
		}
		if s := e.Sum(); hex.EncodeToString(s[:]) != files[n].SHA256 || e.Size() != files[n].Size {
			t.Errorf("%s: the reader's sum and size (%x, %d) differ from the writer's %+v", n, s, e.Size(), files[n])
		}
	}
}

func TestWriterDeterministic(t *testing.T) {
	content := sampleContent()
	a, _ := writeArchive(t, content, 1000)
	b, _ := writeArchive(t, content, 333) // other write sizes, same bytes
	if !bytes.Equal(a, b) {
		t.Fatalf("two writes of the same content differ (%d and %d bytes)", len(a), len(b))
	}
}

func TestWriterHeaders(t *testing.T) {
	b, _ := writeArchive(t, sampleContent(), 1<<20)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range zr.File {
		got = append(got, f.Name)
		if f.Method != zip.Deflate {
			t.Errorf("%s: method %d, want Deflate", f.Name, f.Method)
		}
		if f.Mode() != 0o644 {
			t.Errorf("%s: mode %v, want -rw-r--r--", f.Name, f.Mode())
		}
		if want := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC); !f.Modified.Equal(want) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, want)
		}
		if f.Flags&encryptionFlags != 0 {
			t.Errorf("%s: flags %#x", f.Name, f.Flags)
		}
	}
	if strings.Join(got, ",") != strings.Join(Names, ",") {
		t.Errorf("entries: got %q, want %q in the order written", got, Names)
	}
}

func TestWriterFilesDuringWrite(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	fw, _ := w.Create(ManifestName)
	io.WriteString(fw, "{}")
	if got := w.Files(); len(got) != 0 {
		t.Errorf("Files while the first entry is written: got %v, want none yet", got)
	}
	w.Create(TokensName)
	files := w.Files()
	if len(files) != 1 || files[ManifestName].Size != 2 {
		t.Errorf("Files after the next Create: got %v, want manifest.json of 2 bytes", files)
	}
	files[ManifestName] = FileInfo{}
	if w.Files()[ManifestName].Size != 2 {
		t.Errorf("Files shares its map with the Writer")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	empty := sha256.Sum256(nil)
	if got := w.Files()[TokensName]; got != (FileInfo{SHA256: hex.EncodeToString(empty[:]), Size: 0}) {
		t.Errorf("empty entry: got %+v", got)
	}
}

func TestWriterRefusals(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, c := range []struct{ name, want string }{
		{"other.json", "other.json: not an entry of a version-1 archive"},
		{"../manifest.json", "not an entry"},
		{"", `"": not an entry`},
	} {
		_, err := w.Create(c.name)
		wantRefusal(t, err, c.want)
	}
	first, err := w.Create(ManifestName)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Create(ManifestName)
	wantRefusal(t, err, "manifest.json: created twice")
	if _, err := w.Create(TokensName); err != nil {
		t.Fatal(err)
	}
	_, err = first.Write([]byte("late"))
	wantRefusal(t, err, "manifest.json: write after the entry was finished")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = w.Create(ComponentsName)
	wantRefusal(t, err, "Create after Close")
	wantRefusal(t, w.Close(), "closed twice")
	// The refusals left the archive intact.
	r := mustOpen(t, buf.Bytes())
	if got := strings.Join(r.Names(), ","); got != "manifest.json,tokens.json" {
		t.Errorf("Names: got %q", got)
	}
}

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

var errFull = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errFull
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterErrorsAreSticky(t *testing.T) {
	w := NewWriter(&failAfter{n: 10})
	fw, err := w.Create(EventsName)
	if err != nil {
		t.Fatal(err) // archive/zip buffers the header
	}
	// Enough incompressible-ish data to force the buffers out.
	data := []byte(sampleContent()[EventsName])
	_, err = fw.Write(data)
	if err == nil {
		err = w.Close()
	}
	if !errors.Is(err, errFull) {
		t.Fatalf("got %v, want the writer's error", err)
	}
	if _, err := w.Create(TokensName); !errors.Is(err, errFull) {
		t.Errorf("Create after a failure: got %v, want the same error", err)
	}
	if err := w.Close(); !errors.Is(err, errFull) {
		t.Errorf("Close after a failure: got %v, want the same error", err)
	}
}

package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Where the committed fixtures live, from this package's folder.
var (
	hostileDir = filepath.Join("..", "..", "testdata", "archive", "hostile")
	validDir   = filepath.Join("..", "..", "testdata", "archive", "valid")
	minimalDSS = filepath.Join(validDir, "minimal.dss")
)

// minimalContent is what testdata/archive/valid/minimal.dss holds.
var minimalContent = map[string]string{
	ManifestName:   `{"format":1,"project":"demo"}` + "\n",
	TokensName:     `{"color":{"primary":{"$type":"color","$value":"#0055ff"}}}` + "\n",
	ComponentsName: `[{"name":"Button"}]` + "\n",
	EventsName:     `{"seq":1,"type":"project.create"}` + "\n",
}

// buildMinimal writes minimalContent with a Writer, in Names order.
func buildMinimal(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, n := range Names {
		fw, err := w.Create(n)
		if err != nil {
			t.Fatalf("Create(%s): %v", n, err)
		}
		if _, err := io.WriteString(fw, minimalContent[n]); err != nil {
			t.Fatalf("write %s: %v", n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// zent describes one entry for buildZip.
type zent struct {
	name  string
	body  []byte      // content; with raw, the bytes written as they are
	mode  fs.FileMode // 0 means 0644
	flags uint16
	store bool // Store instead of Deflate (not raw)

	raw          bool // CreateRaw with the fields below
	method       uint16
	crc          uint32
	csize, usize uint64
}

// buildZip writes a zip with archive/zip's Writer, which lets a test say
// things (names, modes, flags, sizes) that this package's Writer refuses to.
func buildZip(t testing.TB, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.name, Modified: modTime, Flags: e.flags}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		fh.SetMode(mode)
		var w io.Writer
		var err error
		if e.raw {
			fh.Method = e.method
			fh.CRC32 = e.crc
			fh.CompressedSize64 = e.csize
			fh.UncompressedSize64 = e.usize
			w, err = zw.CreateRaw(fh)
		} else {
			fh.Method = zip.Deflate
			if e.store {
				fh.Method = zip.Store
			}
			w, err = zw.CreateHeader(fh)
		}
		if err != nil {
			t.Fatalf("create %q: %v", e.name, err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatalf("write %q: %v", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("close zip: %v", err)
	}
	return buf.Bytes()
}

// deflated returns b compressed with Deflate at the best compression.
func deflated(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// deflatedZeros compresses n zero bytes, streaming, and returns the
// compressed bytes and the CRC-32 of the n zeros.
func deflatedZeros(t testing.TB, n int64) ([]byte, uint32) {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	h := crc32.NewIEEE()
	if _, err := io.CopyN(io.MultiWriter(fw, h), zeros{}, n); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), h.Sum32()
}

// Offsets inside a central directory file header.
const (
	cdFlags     = 8
	cdCRC       = 16
	cdCSize     = 20
	cdUSize     = 24
	cdHeaderOff = 42
)

// centralRecords returns the offsets of the central directory records of a
// well-formed zip (one written by buildZip), in order.
func centralRecords(t testing.TB, b []byte) []int {
	t.Helper()
	end := bytes.LastIndex(b, []byte("PK\x05\x06"))
	if end < 0 {
		t.Fatal("no end of central directory record")
	}
	count := int(binary.LittleEndian.Uint16(b[end+10:]))
	off := int(binary.LittleEndian.Uint32(b[end+16:]))
	var recs []int
	for range count {
		if string(b[off:off+4]) != "PK\x01\x02" {
			t.Fatalf("no central directory record at %d", off)
		}
		recs = append(recs, off)
		n := int(binary.LittleEndian.Uint16(b[off+28:]))
		m := int(binary.LittleEndian.Uint16(b[off+30:]))
		k := int(binary.LittleEndian.Uint16(b[off+32:]))
		off += dirHeaderLen + n + m + k
	}
	return recs
}

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }

// openBytes opens b with lim and the default names.
func openBytes(b []byte, lim Limits) (*Reader, error) {
	return Open(bytes.NewReader(b), int64(len(b)), nil, lim)
}

// readFile reads a fixture.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// mustOpen opens b with the default limits, failing the test on an error.
func mustOpen(t testing.TB, b []byte) *Reader {
	t.Helper()
	r, err := openBytes(b, Limits{})
	if err != nil {
		t.Fatalf("Open: got %v, want no error", err)
	}
	return r
}

// wantRefusal checks that err is a refusal whose text holds want.
func wantRefusal(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("got %T %v, want an *archive.Error", err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("got %q, want it to contain %q", err.Error(), want)
	}
}

// readEntries opens every entry of r and reads it to the end, returning the
// first error.
func readEntries(r *Reader) error {
	for _, n := range r.Names() {
		e, err := r.Entry(n)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, e)
		e.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

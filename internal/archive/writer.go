package archive

import (
	"archive/zip"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// modTime is the modification time of every entry a Writer writes, so that
// equal content gives equal bytes.
var modTime = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// FileInfo is what a [Writer] records of each entry it wrote.
type FileInfo struct {
	SHA256 string `json:"sha256"` // SHA256 is the SHA-256 of the uncompressed content, lower-case hex.
	Size   int64  `json:"size"`   // Size is the uncompressed size in bytes.
}

// Writer writes an archive streaming, with no seeking, so the output may be
// an HTTP response: entries one after another, Deflate-compressed, each with
// a fixed modification time (2000-01-01 UTC) and regular file mode 0644, so
// that equal content gives equal bytes. It records the SHA-256 and size of
// each entry. It is not safe for concurrent use. Any error is sticky: once a
// call fails, later calls fail too.
type Writer struct {
	zw     *zip.Writer
	cur    *entryWriter
	files  map[string]FileInfo
	names  map[string]bool // every name created, the current one included
	err    error
	closed bool
}

// NewWriter returns a Writer writing an archive to w. Close must be called to
// complete the archive; it does not close w.
//
// Entries are deflated at flate.BestSpeed: on the JSON an export holds it is
// about three times as fast as the default level for archives about a
// third larger, and an export is streamed to a client as it is made.
func NewWriter(w io.Writer) *Writer {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	return &Writer{zw: zw, files: map[string]FileInfo{}, names: map[string]bool{}}
}

// entryWriter is what Create returns: it hashes and counts the uncompressed
// bytes on their way to the compressor.
type entryWriter struct {
	w      *Writer
	name   string
	zw     io.Writer
	sha    hash.Hash
	n      int64
	closed bool
}

func (e *entryWriter) Write(p []byte) (int, error) {
	if e.closed {
		return 0, &Error{Field: e.name, Msg: "write after the entry was finished (by the next Create, or Close)"}
	}
	if e.w.err != nil {
		return 0, e.w.err
	}
	n, err := e.zw.Write(p)
	e.sha.Write(p[:n])
	e.n += int64(n)
	if err != nil {
		e.w.err = err
	}
	return n, err
}

// finish records the current entry, if any; the zip writer completes it on
// the next CreateHeader or Close.
func (w *Writer) finish() {
	if w.cur == nil {
		return
	}
	w.cur.closed = true
	w.files[w.cur.name] = FileInfo{SHA256: hex.EncodeToString(w.cur.sha.Sum(nil)), Size: w.cur.n}
	w.cur = nil
}

// Create finishes the previous entry, if any, and starts the entry name,
// returning the writer for its content. name must be one of [Names], and may
// be created only once.
func (w *Writer) Create(name string) (io.Writer, error) {
	switch {
	case w.err != nil:
		return nil, w.err
	case w.closed:
		return nil, &Error{Field: displayName(name), Msg: "Create after Close"}
	case !slices.Contains(Names, name):
		return nil, &Error{Field: displayName(name), Msg: "not an entry of a version-1 archive; the names are " + strings.Join(sortedCopy(Names), ", ")}
	case w.names[name]:
		return nil, &Error{Field: name, Msg: "created twice; each entry may be written only once"}
	}
	w.finish()
	fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modTime}
	fh.SetMode(0o644)
	zw, err := w.zw.CreateHeader(fh)
	if err != nil {
		w.err = err
		return nil, err
	}
	w.names[name] = true
	w.cur = &entryWriter{w: w, name: name, zw: zw, sha: sha256.New()}
	return w.cur, nil
}

// Files returns what was written so far, by entry name: the entries
// finished by a later Create or by Close, not the one being written. The map
// is the caller's to keep.
func (w *Writer) Files() map[string]FileInfo {
	return maps.Clone(w.files)
}

// Close finishes the last entry and writes the central directory. It does
// not close the underlying writer. Closing twice is an error.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return &Error{Msg: "Writer closed twice"}
	}
	w.closed = true
	w.finish()
	if err := w.zw.Close(); err != nil {
		w.err = err
		return err
	}
	return nil
}

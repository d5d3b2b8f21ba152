package archive

import (
	"archive/zip"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// dataDescriptorSignature optionally starts a data descriptor.
const dataDescriptorSignature = 0x08074b50

// EntryReader streams one entry's uncompressed bytes, checking them as they
// come (see [Reader.Entry]). It is not safe for concurrent use.
type EntryReader struct {
	field    string        // the entry name, as shown in errors
	src      io.Reader     // the uncompressed bytes
	inflater io.ReadCloser // src when the entry is deflated, to be closed
	desc     io.Reader     // the data descriptor, if the entry has one

	declared   uint64 // uncompressed size, from the central directory
	csize      uint64 // compressed size, from the central directory
	wantCRC    uint32 // CRC-32, from the central directory
	maxBytes   uint64 // Limits.MaxEntryBytes
	ratioBytes uint64 // Limits.MaxRatio × csize
	maxRatio   int64
	limit      uint64 // the least of declared, maxBytes and ratioBytes

	crc hash.Hash32
	sha hash.Hash
	n   int64
	err error // sticky: io.EOF once the whole entry was read and checked
}

// Entry opens the entry name for a streaming read. The sizes the archive
// declares are not trusted: the returned reader counts the bytes it actually
// decompresses and fails with an [*Error] as soon as they pass
// Limits.MaxEntryBytes, Limits.MaxRatio × the compressed size, or the declared
// uncompressed size, whichever is least, so a zip bomb is stopped while
// reading, with memory bounded, never after inflating it. At EOF it checks that
// the entry had exactly its declared size, that its CRC-32 matches the central
// directory, and that its data descriptor (if any) agrees; the error replaces
// io.EOF if not. It computes the SHA-256 and size of the bytes it returned.
// The caller should Close it.
func (r *Reader) Entry(name string) (*EntryReader, error) {
	e, ok := r.entries[name]
	if !ok {
		return nil, &Error{Field: displayName(name), Msg: "no such entry in the archive"}
	}
	f := e.f
	// The compressed bytes are read from the data offset Open checked, not
	// from a second look at the local header (as File.OpenRaw would do), so a
	// source that changes under us cannot move them.
	raw := io.NewSectionReader(r.src, e.dataOff, int64(f.CompressedSize64))
	var desc io.Reader
	if f.Flags&dataDescriptorFlag != 0 {
		desc = io.NewSectionReader(r.src, e.dataOff+int64(f.CompressedSize64), descriptorMaxLen)
	}
	var src io.Reader = raw
	var inflater io.ReadCloser
	if f.Method == zip.Deflate {
		inflater = flate.NewReader(raw)
		src = inflater
	}
	return newEntryReader(name, src, inflater, desc, f.UncompressedSize64, f.CompressedSize64, f.CRC32, r.lim), nil
}

// newEntryReader builds an EntryReader over src, the uncompressed bytes of an
// entry with the given central directory values.
func newEntryReader(name string, src io.Reader, inflater io.ReadCloser, desc io.Reader, declared, csize uint64, crc uint32, lim Limits) *EntryReader {
	lim = lim.withDefaults()
	e := &EntryReader{
		field:      displayName(name),
		src:        src,
		inflater:   inflater,
		desc:       desc,
		declared:   declared,
		csize:      csize,
		wantCRC:    crc,
		maxBytes:   uint64(lim.MaxEntryBytes),
		ratioBytes: ratioBound(csize, lim.MaxRatio),
		maxRatio:   lim.MaxRatio,
		crc:        crc32.NewIEEE(),
		sha:        sha256.New(),
	}
	e.limit = min(e.declared, e.maxBytes, e.ratioBytes)
	return e
}

// Read reads up to len(p) uncompressed bytes of the entry. It returns bytes up
// to the entry's limit, never asks the decompressor for more than one byte
// beyond it, and returns an [*Error] (never the overrunning byte) as soon as
// that byte exists.
func (e *EntryReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Up to the limit, and then a single byte, which is enough to know it
	// was passed.
	switch room := e.limit - uint64(e.n); {
	case room == 0:
		p = p[:1]
	case uint64(len(p)) > room:
		p = p[:room]
	}
	k, err := e.src.Read(p)
	if k < 0 || k > len(p) {
		k, err = 0, io.ErrNoProgress
	}
	if got := uint64(e.n) + uint64(k); got > e.limit {
		e.fail(e.overrun(got))
		return 0, e.err
	}
	e.crc.Write(p[:k])
	e.sha.Write(p[:k])
	e.n += int64(k)
	switch {
	case err == nil:
		return k, nil
	case err == io.EOF:
		if ferr := e.finish(); ferr != nil {
			e.fail(ferr)
			return k, ferr
		}
		e.err = io.EOF
		return k, io.EOF
	}
	e.fail(e.readError(err))
	return k, e.err
}

// fail makes err sticky and releases the decompressor.
func (e *EntryReader) fail(err error) {
	e.err = err
	if e.inflater != nil {
		e.inflater.Close()
	}
}

// overrun explains which bound got bytes passed.
func (e *EntryReader) overrun(got uint64) *Error {
	var msg string
	switch {
	case got > e.maxBytes:
		msg = fmt.Sprintf("decompresses to more than the limit of %d bytes", e.maxBytes)
	case got > e.ratioBytes:
		msg = fmt.Sprintf("decompresses to more than %d times its %d compressed bytes; possible zip bomb", e.maxRatio, e.csize)
	default:
		msg = fmt.Sprintf("decompresses to more than its declared size of %d bytes; the archive lies about its sizes (zip bomb) or is corrupt", e.declared)
	}
	return &Error{Field: e.field, Msg: msg}
}

// finish checks a completely read entry.
func (e *EntryReader) finish() error {
	if uint64(e.n) != e.declared {
		return &Error{Field: e.field, Msg: fmt.Sprintf("ends after %d bytes but its header declares %d; the archive is truncated or corrupt", e.n, e.declared)}
	}
	// archive/zip skips this check when the recorded CRC is 0; the CRC-32 of
	// the bytes read is compared here whatever the record says.
	if got := e.crc.Sum32(); got != e.wantCRC {
		return &Error{Field: e.field, Msg: fmt.Sprintf("checksum mismatch: the content has CRC-32 %08x, the archive records %08x; the archive is corrupt", got, e.wantCRC)}
	}
	if e.desc != nil {
		// As archive/zip reads it: an optional signature, then the CRC-32
		// and two 32-bit sizes, which are ignored (their width is ambiguous;
		// the central directory's are used).
		var b [12]byte
		if _, err := io.ReadFull(e.desc, b[:4]); err != nil {
			return e.readError(err)
		}
		off := 4 // no signature: b[:4] is the CRC-32
		if binary.LittleEndian.Uint32(b[:4]) == dataDescriptorSignature {
			off = 0 // read the CRC-32 over the signature
		}
		if _, err := io.ReadFull(e.desc, b[off:12]); err != nil {
			return e.readError(err)
		}
		crc := binary.LittleEndian.Uint32(b[:4])
		if crc != e.wantCRC {
			return &Error{Field: e.field, Msg: fmt.Sprintf("its data descriptor records CRC-32 %08x but the central directory records %08x; the archive is corrupt", crc, e.wantCRC)}
		}
	}
	return nil
}

// readError turns a failure of the decompressor or of the source into an
// *Error when the archive is at fault, or a wrapped error when the source is.
func (e *EntryReader) readError(err error) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.As(err, &corrupt):
		return &Error{Field: e.field, Msg: "its compressed data is corrupt (" + corrupt.Error() + ")"}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, errOutOfRange):
		return &Error{Field: e.field, Msg: "its data ends early; the archive is truncated or corrupt"}
	case errors.Is(err, io.ErrNoProgress):
		return &Error{Field: e.field, Msg: "its data cannot be read"}
	}
	return fmt.Errorf("archive: %s: reading: %w", e.field, err)
}

// Close releases the entry's decompressor. Reads after Close fail; Sum and
// Size still report what was read.
func (e *EntryReader) Close() error {
	if e.err == nil || e.err == io.EOF {
		e.fail(&Error{Field: e.field, Msg: "read after Close"})
	}
	return nil
}

// Sum returns the SHA-256 of the uncompressed bytes returned so far; after
// EOF, that of the whole entry.
func (e *EntryReader) Sum() [32]byte {
	var s [32]byte
	e.sha.Sum(s[:0])
	return s
}

// Size returns how many uncompressed bytes Read has returned so far.
func (e *EntryReader) Size() int64 { return e.n }

// ReadAll reads the entry name completely into memory and checks it as
// [Reader.Entry] does; it is meant for small entries such as the manifest.
// It refuses an entry that declares, or turns out to have, more than max
// bytes; a max of zero or less means Limits.MaxEntryBytes.
func (r *Reader) ReadAll(name string, max int64) ([]byte, error) {
	if max <= 0 {
		max = r.lim.MaxEntryBytes
	}
	e, ok := r.entries[name]
	if !ok {
		return nil, &Error{Field: displayName(name), Msg: "no such entry in the archive"}
	}
	if d := e.f.UncompressedSize64; d > uint64(max) {
		return nil, &Error{Field: displayName(name), Msg: fmt.Sprintf("is %d bytes, more than the %d bytes accepted for it", d, max)}
	}
	er, err := r.Entry(name)
	if err != nil {
		return nil, err
	}
	defer er.Close()
	// The reader stops one byte past the declared size, itself at most max;
	// the buffer grows with what was really read, not with what is declared.
	data, err := io.ReadAll(io.LimitReader(er, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &Error{Field: displayName(name), Msg: fmt.Sprintf("is more than the %d bytes accepted for it", max)}
	}
	if er.err != io.EOF {
		// LimitReader stopped before the entry's EOF: impossible while the
		// declared size is at most max, kept as a guard.
		return nil, &Error{Field: displayName(name), Msg: "was not read to its end"}
	}
	return data, nil
}

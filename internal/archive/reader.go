package archive

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

// Sizes of zip records that bound what the central directory parse may read.
const (
	dirHeaderLen = 46 // central directory file header, without its variable fields
	// dirTailBudget covers what archive/zip reads before the central
	// directory: the search for the end record in the last 1 KiB and then the
	// last 65 KiB, the zip64 locator and end record, one probe header, and the
	// read-ahead of its bufio.Reader (4 KiB).
	dirTailBudget = 128 << 10
	// dirRecordBudget is what one allowed entry may spend, on average, on its
	// central directory record: name, extra fields and comment. A .dss entry
	// needs well under 100 bytes.
	dirRecordBudget = 8 << 10
	// descriptorMinLen is the smallest data descriptor: CRC-32 and two 32-bit
	// sizes, without the optional signature.
	descriptorMinLen = 12
	// descriptorMaxLen is the data descriptor as archive/zip reads it: with
	// its signature, and 32-bit sizes.
	descriptorMaxLen = 16
	// encryptionFlags are the general purpose flag bits that mean encryption:
	// bit 0 (encrypted), bit 6 (strong encryption), bit 13 (encrypted central
	// directory).
	encryptionFlags    = 1<<0 | 1<<6 | 1<<13
	dataDescriptorFlag = 1 << 3
)

var (
	errOutOfRange = errors.New("read outside the archive")
	errBudget     = errors.New("central directory read budget exhausted")
)

// Reader is an opened, structurally checked archive. Its methods may be
// called from several goroutines at once, as io.ReaderAt allows.
type Reader struct {
	src     *boundedReaderAt
	lim     Limits
	entries map[string]*entry
	names   []string
}

// entry is one accepted entry: its zip record and where its data lies.
type entry struct {
	f       *zip.File
	dataOff int64 // offset of the compressed data in the archive
}

// boundedReaderAt confines every read to [0, size) of the source, counts what
// is read against a budget while the central directory is parsed, and
// records the first real I/O error of the source during Open. After Open
// returns it is read-only, so concurrent entry reads do not race.
type boundedReaderAt struct {
	r    io.ReaderAt
	size int64

	opening  bool  // during Open: record ioErr
	budgeted bool  // during the central directory parse: count against budget
	budget   int64 // bytes the parse may still read
	over     bool  // the budget was exceeded
	ioErr    error // first error of r other than EOF
	// shortSource: r ended before size during Open
	shortSource bool
}

func (b *boundedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errOutOfRange
	}
	if off >= b.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	short := false
	if rest := b.size - off; int64(len(p)) > rest {
		p = p[:rest]
		short = true
	}
	if b.budgeted {
		if int64(len(p)) > b.budget {
			b.over = true
			return 0, errBudget
		}
		b.budget -= int64(len(p))
	}
	n, err := b.r.ReadAt(p, off)
	switch {
	case n > len(p) || n < 0:
		n, err = 0, fmt.Errorf("source ReaderAt returned %d bytes for a %d-byte read", n, len(p))
	case n < len(p) && (err == nil || err == io.EOF || err == io.ErrUnexpectedEOF):
		// The source ends before the size it was said to have.
		if b.opening {
			b.shortSource = true
		}
		return n, io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF && b.opening && b.ioErr == nil {
		b.ioErr = err
	}
	if short && err == nil {
		err = io.EOF
	}
	return n, err
}

// Open checks the structure of a zip archive read from r, which holds size
// bytes, against lim (zero fields meaning the defaults) and returns a Reader
// for it. Every entry name must be exactly one of allowed; a nil allowed means
// [Names]. The checks, and their order, are listed in the package
// documentation; Open reports every problem it found, which [Problems]
// returns from the error, and never decompresses an entry. A body that is not
// a zip, or is truncated, is an [*Error] like the others. Only a failure of r
// itself (other than a short read) is returned as a plain, wrapped error.
func Open(r io.ReaderAt, size int64, allowed []string, lim Limits) (*Reader, error) {
	lim = lim.withDefaults()
	if allowed == nil {
		allowed = Names
	}
	fail := func(msg string) (*Reader, error) {
		return nil, &openError{[]*Error{{Msg: msg}}}
	}
	switch {
	case r == nil:
		return fail("no archive to read")
	case size < 0:
		return fail(fmt.Sprintf("invalid archive size %d", size))
	case size == 0:
		return fail("the file is empty (0 bytes), not a zip archive")
	case size > lim.MaxArchiveBytes:
		return fail(fmt.Sprintf("the archive is %d bytes, more than the limit of %d bytes", size, lim.MaxArchiveBytes))
	}

	src := &boundedReaderAt{r: r, size: size, opening: true}
	defer func() { src.opening = false }()

	// The central directory parse of archive/zip reads records until it meets
	// one that is not a record, allocating each; bound it before it can count.
	src.budgeted = true
	src.budget = dirTailBudget + int64(lim.MaxEntries+1)*dirRecordBudget
	zr, err := zip.NewReader(src, size)
	src.budgeted = false
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		// Only with GODEBUG zipinsecurepath=0: zr is complete, and each
		// offending name is refused below with its own message.
		err = nil
	}
	if src.ioErr != nil {
		return nil, fmt.Errorf("archive: reading the archive: %w", src.ioErr)
	}
	if src.shortSource {
		return fail(shortMessage(size))
	}
	if err != nil && src.over {
		return fail(fmt.Sprintf("the central directory is too large: more than %d entries are allowed, or their records are oversized", lim.MaxEntries))
	}
	if err != nil {
		return fail(notZipMessage(src, err))
	}
	if n := len(zr.File); n > lim.MaxEntries {
		return fail(fmt.Sprintf("too many entries: %d, at most %d are allowed", n, lim.MaxEntries))
	}

	allow := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		allow[a] = true
	}
	var probs []*Error
	add := func(name, msg string) { probs = append(probs, &Error{Field: displayName(name), Msg: msg}) }

	type span struct {
		name       string
		start, end uint64
	}
	var spans []span
	seen := make(map[string]int, len(zr.File))
	rd := &Reader{src: src, lim: lim, entries: make(map[string]*entry, len(zr.File))}
	for _, f := range zr.File {
		name := f.Name
		if msg := nameProblem(name, f.Mode(), allow, allowed); msg != "" {
			add(name, msg)
		}
		if msg := modeProblem(f.Mode()); msg != "" {
			add(name, msg)
		}
		if seen[name]++; seen[name] == 2 {
			add(name, "appears more than once in the central directory; each entry may appear only once")
		}
		if f.Flags&encryptionFlags != 0 {
			add(name, "is encrypted; encrypted archives are not supported")
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			add(name, fmt.Sprintf("uses compression method %d; only Store (0) and Deflate (8) are supported", f.Method))
		}
		usize, csize := f.UncompressedSize64, f.CompressedSize64
		if usize > uint64(lim.MaxEntryBytes) {
			add(name, fmt.Sprintf("declared uncompressed size %d bytes is more than the limit of %d bytes", usize, lim.MaxEntryBytes))
		} else if usize > ratioBound(csize, lim.MaxRatio) {
			add(name, fmt.Sprintf("declared compression ratio (%d bytes from %d) is more than the limit of %d:1; possible zip bomb", usize, csize, lim.MaxRatio))
		}
		if f.Method == zip.Store && usize != csize {
			add(name, fmt.Sprintf("is stored uncompressed but declares %d compressed and %d uncompressed bytes", csize, usize))
		}
		// Where the data lies: archive/zip reads the local header to find it.
		dataOff, err := f.DataOffset()
		if src.ioErr != nil {
			return nil, fmt.Errorf("archive: reading the archive: %w", src.ioErr)
		}
		if src.shortSource {
			return fail(shortMessage(size))
		}
		if err != nil {
			add(name, "its local file header is missing or damaged; the archive is truncated or corrupt")
			continue
		}
		end, fits := dataEnd(dataOff, csize, f.Flags&dataDescriptorFlag != 0, size)
		if !fits {
			add(name, "its data extends past the end of the archive; the archive is truncated or corrupt")
			continue
		}
		spans = append(spans, span{name, uint64(dataOff), end})
		rd.entries[name] = &entry{f: f, dataOff: dataOff}
	}

	// Overlapping data: several entries inflating one shared kernel.
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	for i, last := 1, 0; i < len(spans); i++ {
		// last is the span reaching furthest so far.
		if spans[i].start < spans[last].end {
			add(spans[i].name, fmt.Sprintf("its data overlaps the data of %s; entries must not share bytes (overlapping-entry zip bomb)", displayName(spans[last].name)))
		}
		if spans[i].end > spans[last].end {
			last = i
		}
	}

	// An archive with any problem is refused whole.
	if len(probs) > 0 {
		return nil, &openError{probs}
	}
	for n := range rd.entries {
		rd.names = append(rd.names, n)
	}
	slices.Sort(rd.names)
	return rd, nil
}

// nameProblem returns why name is refused, or "" if it is one of allowed.
// Each kind of problem has its own message, tested in this order.
func nameProblem(name string, mode fs.FileMode, allow map[string]bool, allowed []string) string {
	isDir := strings.HasSuffix(name, "/") || mode&fs.ModeDir != 0
	switch {
	case name == "":
		return "the entry has an empty name"
	case isAbsolute(name):
		return "absolute path (zip slip); entry names must be plain file names"
	case hasDotDot(name):
		return `".." path element (zip slip); entry names must be plain file names`
	case strings.Contains(name, `\`):
		return `backslash in the name; entry names must be plain file names`
	case isDir:
		return "is a directory; only regular files are allowed"
	case strings.Contains(name, "/"):
		return "is inside a folder; entries must be at the top level of the archive"
	case strings.HasPrefix(name, "."):
		return `hidden name (starts with "."); entry names must be one of ` + strings.Join(sortedCopy(allowed), ", ")
	case !printable(name):
		return "the name contains control characters or invalid UTF-8"
	case !allow[name]:
		return "unknown entry name; allowed names are " + strings.Join(sortedCopy(allowed), ", ")
	}
	return ""
}

// modeProblem returns why a file mode is refused, or "". Directories are
// refused by nameProblem, which checks the mode as well as a trailing "/".
func modeProblem(mode fs.FileMode) string {
	switch t := mode.Type() &^ fs.ModeDir; {
	case t&fs.ModeSymlink != 0:
		return "is a symbolic link; only regular files are allowed"
	case t != 0:
		return fmt.Sprintf("is not a regular file (mode %v); only regular files are allowed", mode)
	}
	return ""
}

// isAbsolute reports a name rooted in either slash, or with a drive letter.
func isAbsolute(name string) bool {
	if name[0] == '/' || name[0] == '\\' {
		return true
	}
	if len(name) >= 2 && name[1] == ':' {
		c := name[0] | 0x20
		return c >= 'a' && c <= 'z'
	}
	return false
}

// hasDotDot reports a ".." element between slashes or backslashes.
func hasDotDot(name string) bool {
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return true
		}
	}
	return false
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// ratioBound returns ratio × csize, saturating at MaxUint64.
func ratioBound(csize uint64, ratio int64) uint64 {
	hi, lo := bits.Mul64(csize, uint64(ratio))
	if hi != 0 {
		return math.MaxUint64
	}
	return lo
}

// dataEnd returns the end of an entry's compressed data (and of its data
// descriptor, if it has one) and whether that lies inside an archive of size
// bytes.
func dataEnd(dataOff int64, csize uint64, descriptor bool, size int64) (uint64, bool) {
	if dataOff < 0 || dataOff > size {
		return 0, false
	}
	room := uint64(size - dataOff)
	need := csize
	if descriptor {
		if need > math.MaxUint64-descriptorMinLen {
			return 0, false
		}
		need += descriptorMinLen
	}
	if need > room {
		return 0, false
	}
	return uint64(dataOff) + need, true
}

// shortMessage explains a source that ends before its size.
func shortMessage(size int64) string {
	return fmt.Sprintf("the archive ends before the %d bytes it was said to hold; it was truncated in transfer", size)
}

// notZipMessage explains why archive/zip could not read the body at all.
func notZipMessage(src *boundedReaderAt, err error) string {
	var head [8]byte
	n, _ := src.ReadAt(head[:], 0)
	h := head[:n]
	switch {
	case strings.HasPrefix(string(h), "PK\x03\x04"):
		if errors.Is(err, zip.ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "truncated or damaged zip archive: its central directory is missing or incomplete"
		}
		return "damaged zip archive (" + strings.TrimPrefix(err.Error(), "zip: ") + ")"
	case looksLikeText(h):
		t := strings.TrimLeft(string(h), " \t\r\n\ufeff")
		if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			return "not a zip archive: the file looks like JSON text; a .dss file is a zip archive"
		}
		return "not a zip archive: the file looks like text; a .dss file is a zip archive"
	}
	return "not a zip archive: no zip signature found"
}

func looksLikeText(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b[:len(b)-min(len(b), 3)]) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// Has reports whether the archive holds the entry name.
func (r *Reader) Has(name string) bool {
	_, ok := r.entries[name]
	return ok
}

// Names returns the names of the archive's entries, sorted. The slice is the
// caller's to keep.
func (r *Reader) Names() []string {
	return slices.Clone(r.names)
}

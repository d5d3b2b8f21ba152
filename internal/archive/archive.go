package archive

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Entry names of a .dss archive, format version 1.
const (
	// ManifestName is the entry describing the archive and its other entries.
	ManifestName = "manifest.json"
	// TokensName is the entry holding the design tokens.
	TokensName = "tokens.json"
	// ComponentsName is the entry holding the components.
	ComponentsName = "components.json"
	// EventsName is the optional entry holding the event log, one JSON value a line.
	EventsName = "events.ndjson"
)

// Names lists the entries a version-1 archive may hold. It is what [Writer]
// accepts, and what [Open] allows when its allowed argument is nil.
var Names = []string{ManifestName, TokensName, ComponentsName, EventsName}

// Limits bounds what [Open] and [Reader.Entry] accept. A zero (or negative)
// field means the default of [DefaultLimits].
type Limits struct {
	// MaxArchiveBytes bounds the whole zip file, as given to Open; default 1 GiB.
	MaxArchiveBytes int64
	// MaxEntryBytes bounds one entry, uncompressed, both as declared in the
	// central directory and as actually read; default 1 GiB.
	MaxEntryBytes int64
	// MaxRatio bounds the ratio of uncompressed to compressed bytes of one
	// entry, both as declared and as actually read (the bytes decompressed
	// against the entry's compressed size, whose bytes Open checked lie
	// inside the archive and overlap no other entry's); default 200.
	MaxRatio int64
	// MaxEntries bounds the number of entries in the central directory; default 16.
	MaxEntries int
}

// DefaultLimits holds the limits used for every zero field of a [Limits].
var DefaultLimits = Limits{
	MaxArchiveBytes: 1 << 30,
	MaxEntryBytes:   1 << 30,
	MaxRatio:        200,
	MaxEntries:      16,
}

// withDefaults returns lim with every zero or negative field replaced by the
// default (of DefaultLimits, or of the built-in values if DefaultLimits itself
// was zeroed).
func (lim Limits) withDefaults() Limits {
	def := func(v, d, builtin int64) int64 {
		switch {
		case v > 0:
			return v
		case d > 0:
			return d
		}
		return builtin
	}
	return Limits{
		MaxArchiveBytes: def(lim.MaxArchiveBytes, DefaultLimits.MaxArchiveBytes, 1<<30),
		MaxEntryBytes:   def(lim.MaxEntryBytes, DefaultLimits.MaxEntryBytes, 1<<30),
		MaxRatio:        def(lim.MaxRatio, DefaultLimits.MaxRatio, 200),
		MaxEntries:      int(def(int64(lim.MaxEntries), int64(DefaultLimits.MaxEntries), 16)),
	}
}

// Error is every refusal of this package. Field is the entry name ("" for the
// archive as a whole), quoted when it holds characters unsafe to print and
// shortened when it is long; Msg is a reason a user can act on.
type Error struct{ Field, Msg string }

// Error returns "archive: " followed by the field and ": " (if any) and the message.
func (e *Error) Error() string {
	if e.Field == "" {
		return "archive: " + e.Msg
	}
	return "archive: " + e.Field + ": " + e.Msg
}

// openError is what Open returns: every problem it found.
type openError struct{ errs []*Error }

func (o *openError) Error() string {
	if len(o.errs) == 1 {
		return o.errs[0].Error()
	}
	var b strings.Builder
	b.WriteString("archive: ")
	b.WriteString(strconv.Itoa(len(o.errs)))
	b.WriteString(" problems:")
	for _, e := range o.errs {
		b.WriteString("\n\t")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find the first *Error and errors.Is see each one.
func (o *openError) Unwrap() []error {
	out := make([]error, len(o.errs))
	for i, e := range o.errs {
		out[i] = e
	}
	return out
}

// Problems returns all the Errors Open found, in the order it found them, when
// err came from [Open]; it returns nil for any other error, and for nil.
func Problems(err error) []*Error {
	var o *openError
	if !errors.As(err, &o) {
		return nil
	}
	return append([]*Error(nil), o.errs...)
}

// maxFieldBytes bounds how much of a hostile name goes into Error.Field.
const maxFieldBytes = 64

// displayName renders an entry name for Error.Field: as is when it is short,
// valid UTF-8 and printable; otherwise quoted (and shortened), so a hostile
// name can neither forge log lines nor drive a terminal.
func displayName(name string) string {
	if name == "" {
		return `""`
	}
	if len(name) > maxFieldBytes {
		return strconv.Quote(name[:maxFieldBytes]) + "… (" + strconv.Itoa(len(name)) + " bytes)"
	}
	if !printable(name) || strings.ContainsAny(name, `"`) || strings.TrimSpace(name) != name {
		return strconv.Quote(name)
	}
	return name
}

// printable reports whether s is valid UTF-8 made only of printable
// characters (spaces included).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

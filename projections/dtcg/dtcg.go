package dtcg

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RootSegment is the reserved name of a group's own token (DTCG 2025.10
// section 6.2): {"accent": {"$root": {...}, "light": {...}}}.
const RootSegment = "$root"

// Types lists the 13 token types of DTCG 2025.10 in a fixed order: the seven
// simple types of the format module's section 8 followed by the six composite
// types of section 9. Callers must not modify it; IsType does not consult it.
var Types = []string{
	"color", "dimension", "fontFamily", "fontWeight", "duration", "cubicBezier", "number",
	"strokeStyle", "border", "transition", "shadow", "gradient", "typography",
}

// typeID is the index of a type in Types.
type typeID uint8

const (
	tColor typeID = iota
	tDimension
	tFontFamily
	tFontWeight
	tDuration
	tCubicBezier
	tNumber
	tStrokeStyle
	tBorder
	tTransition
	tShadow
	tGradient
	tTypography
	tInvalid
)

// lookupType maps a $type string to its typeID (tInvalid when unknown).
// Type names are case-sensitive, as the spec requires.
func lookupType(t string) typeID {
	switch t {
	case "color":
		return tColor
	case "dimension":
		return tDimension
	case "fontFamily":
		return tFontFamily
	case "fontWeight":
		return tFontWeight
	case "duration":
		return tDuration
	case "cubicBezier":
		return tCubicBezier
	case "number":
		return tNumber
	case "strokeStyle":
		return tStrokeStyle
	case "border":
		return tBorder
	case "transition":
		return tTransition
	case "shadow":
		return tShadow
	case "gradient":
		return tGradient
	case "typography":
		return tTypography
	}
	return tInvalid
}

// IsType reports whether t is exactly (case-sensitively) one of the 13 type
// names listed in Types.
func IsType(t string) bool { return lookupType(t) != tInvalid }

// Error is the error returned by every function of this package (as *Error).
//
// Field locates the problem: for ValidateValue and References it is a path
// inside the value such as "$value.components[1]" (object keys that are not
// plain identifiers are written as ["key"]); for ParseDocument it is the dot
// path of the offending token or group, or "(document)" for problems that
// concern the document as a whole (syntax, size and nesting limits, invalid
// UTF-8). Msg is a human-readable reason. Any part of the input quoted in Msg
// is escaped and truncated, so messages are safe to log.
type Error struct {
	Field string
	Msg   string
}

// Error returns Field + ": " + Msg.
func (e *Error) Error() string { return e.Field + ": " + e.Msg }

// in prefixes the (relative) field of e with seg and returns e. It is used
// while an error propagates up through nested values, so that field paths are
// built only on the error path.
func (e *Error) in(seg string) *Error {
	e.Field = seg + e.Field
	return e
}

func newErr(field, msg string) *Error { return &Error{Field: field, Msg: msg} }

// asError converts a possibly nil *Error into an error without creating a
// non-nil interface holding a nil pointer.
func asError(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// Limits bounds what ValidateValue, References and ParseDocument will accept.
// A field that is zero or negative means "use the DefaultLimits value".
type Limits struct {
	// MaxDepth is the maximum nesting depth of JSON arrays and objects. For
	// ValidateValue and References it applies to the value itself (a scalar
	// has depth 0, {"a":[1]} has depth 2); for ParseDocument it applies to the
	// whole document, whose root object has depth 1. Values above 10000 are
	// treated as 10000.
	MaxDepth int
	// MaxStringBytes is the maximum decoded length in bytes of any JSON
	// string (object keys included). It also bounds the length of number
	// literals.
	MaxStringBytes int
	// MaxTokens is the maximum number of design tokens ParseDocument accepts.
	MaxTokens int
	// MaxBytes is the maximum size in bytes of the raw input.
	MaxBytes int64
}

// DefaultLimits are the limits ValidateValue and References always use, and
// the values ParseDocument substitutes for zero fields of its Limits.
var DefaultLimits = Limits{
	MaxDepth:       32,
	MaxStringBytes: 64 << 10,
	MaxTokens:      1_000_000,
	MaxBytes:       256 << 20,
}

// hardMaxDepth caps MaxDepth so that the recursive parsers can never exhaust
// the goroutine stack, whatever the caller configures.
const hardMaxDepth = 10000

// hardMaxValueBytes caps the size of one value given to the internal parser,
// whose offsets are int32.
const hardMaxValueBytes = 1<<31 - 1

func (l Limits) norm() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxDepth > hardMaxDepth {
		l.MaxDepth = hardMaxDepth
	}
	if l.MaxStringBytes <= 0 {
		l.MaxStringBytes = DefaultLimits.MaxStringBytes
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = DefaultLimits.MaxTokens
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	return l
}

const (
	maxSegmentBytes = 128
	maxPathSegments = 32
	maxPathBytes    = 512
	rootSegment     = RootSegment
)

// ValidateSegment checks one path segment, i.e. a token or group name. It must
// be non-empty, valid UTF-8 and at most 128 bytes long; it must not contain
// '{', '}' or '.' (which the alias syntax reserves), must not start with '$'
// (reserved for format properties) and must not contain control characters
// (C0, DEL or C1).
//
// The reserved token name "$root" is therefore rejected here; ValidatePath
// accepts it as the last segment of a path.
func ValidateSegment(s string) error { return asError(checkSegment(s)) }

func checkSegment(s string) *Error {
	if s == "" {
		return newErr("", "name must not be empty")
	}
	if len(s) > maxSegmentBytes {
		return newErr("", "name "+quote(s)+" is longer than "+strconv.Itoa(maxSegmentBytes)+" bytes")
	}
	if !utf8.ValidString(s) {
		return newErr("", "name is not valid UTF-8")
	}
	if s[0] == '$' {
		return newErr("", "name "+quote(s)+" must not start with '$' (reserved for format properties)")
	}
	for _, r := range s {
		switch {
		case r == '{' || r == '}' || r == '.':
			return newErr("", "name "+quote(s)+" must not contain '{', '}' or '.'")
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return newErr("", "name "+quote(s)+" must not contain control characters")
		}
	}
	return nil
}

// ValidatePath checks a dot-separated token path such as "color.base.blue":
// it must have between 1 and 32 segments, be at most 512 bytes long in total,
// and every segment must pass ValidateSegment, except that the last segment
// may be the reserved root-token name "$root" (DTCG 2025.10 section 6.2, e.g.
// "color.accent.$root").
func ValidatePath(p string) error { return asError(checkPath(p)) }

func checkPath(p string) *Error {
	if p == "" {
		return newErr("", "path must not be empty")
	}
	if len(p) > maxPathBytes {
		return newErr("", "path is longer than "+strconv.Itoa(maxPathBytes)+" bytes")
	}
	n := 0
	for rest := p; ; {
		seg, tail, more := strings.Cut(rest, ".")
		n++
		if n > maxPathSegments {
			return newErr("", "path has more than "+strconv.Itoa(maxPathSegments)+" segments")
		}
		if !(seg == rootSegment && !more) {
			if e := checkSegment(seg); e != nil {
				e.Msg = "path " + quote(p) + ": segment " + strconv.Itoa(n) + ": " + e.Msg
				return e
			}
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// aliasLike reports whether a decoded JSON string has the shape of a curly
// brace alias, "{...}". Only whole strings are aliases in DTCG.
func aliasLike(s []byte) bool {
	return len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}'
}

// checkAliasString validates a decoded alias-like string "{path}".
func checkAliasString(s []byte) *Error {
	inner := s[1 : len(s)-1]
	if len(inner) == 0 {
		return newErr("", "malformed alias \"{}\": the token path is empty")
	}
	if e := checkPath(string(inner)); e != nil {
		e.Msg = "malformed alias " + quoteBytes(s) + ": " + e.Msg
		return e
	}
	return nil
}

// ParseAlias reports whether v, a raw JSON value (surrounding whitespace
// allowed), is a whole-value alias: a JSON string of the form "{a.b.c}" whose
// inside is a path accepted by ValidatePath. It returns that path.
// Anything else, including a malformed alias, yields ok == false.
func ParseAlias(v json.RawMessage) (path string, ok bool) {
	lim := DefaultLimits
	if int64(len(v)) > lim.MaxBytes || !utf8.Valid(v) {
		return "", false
	}
	b := trimSpace(v)
	if len(b) < 4 || b[0] != '"' || b[1] != '{' && b[1] != '\\' {
		return "", false
	}
	p := getParser(b, lim)
	defer putParser(p)
	if p.parse() != nil || p.nodes[0].kind != kString {
		return "", false
	}
	s := p.str(0)
	if !aliasLike(s) || checkAliasString(s) != nil {
		return "", false
	}
	return string(s[1 : len(s)-1]), true
}

// References returns every token path referenced by a curly brace alias
// anywhere inside the raw JSON value v: the value itself when it is a
// whole-value alias, or any string nested in arrays and objects (a border's
// "color", a shadow's "offsetX", a gradient stop's "color", ...). Only whole
// strings of the form "{...}" are aliases; braces inside other text are not.
// Object keys are never references.
//
// The result is sorted and deduplicated, and nil when there are none. An
// error is returned when v is not valid JSON within DefaultLimits, or when a
// string has the shape of an alias but its path is malformed (e.g. "{a..b}",
// "{}", "{a.$b}").
func References(v json.RawMessage) ([]string, error) {
	lim := DefaultLimits
	if e := precheck(v, lim); e != nil {
		return nil, e
	}
	p := getParser(v, lim)
	defer putParser(p)
	if e := p.parse(); e != nil {
		return nil, e.in("$value")
	}
	var refs []string
	if e := p.collectRefs(0, &refs); e != nil {
		return nil, e.in("$value")
	}
	if len(refs) > 1 {
		slices.Sort(refs)
		refs = slices.Compact(refs)
	}
	return refs, nil
}

// collectRefs walks the subtree rooted at node i and appends alias paths.
func (p *parser) collectRefs(i int32, refs *[]string) *Error {
	n := &p.nodes[i]
	switch n.kind {
	case kString:
		s := p.str(i)
		if aliasLike(s) {
			if e := checkAliasString(s); e != nil {
				return e
			}
			*refs = append(*refs, string(s[1:len(s)-1]))
		}
	case kArray:
		idx := 0
		for c := i + 1; c < p.end(i); c = p.after(c) {
			if e := p.collectRefs(c, refs); e != nil {
				return e.in(indexSeg(idx))
			}
			idx++
		}
	case kObject:
		for k := i + 1; k < p.end(i); {
			v := k + 1
			if e := p.collectRefs(v, refs); e != nil {
				return e.in(p.keySeg(k))
			}
			k = p.after(v)
		}
	}
	return nil
}

// precheck applies the checks common to every entry point taking a raw value.
func precheck(v []byte, lim Limits) *Error {
	if int64(len(v)) > lim.MaxBytes || len(v) > hardMaxValueBytes {
		return newErr("$value", "value is larger than "+strconv.FormatInt(lim.MaxBytes, 10)+" bytes")
	}
	if !utf8.Valid(v) {
		return newErr("$value", "value is not valid UTF-8")
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// maxQuoted bounds how much of an input string is echoed in an error message.
const maxQuoted = 64

// quote returns s as a Go-quoted string, truncated to maxQuoted bytes on a
// rune boundary, so that error messages stay short and free of control
// characters.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

func quoteBytes(b []byte) string {
	if len(b) > maxQuoted+4 {
		b = b[:maxQuoted+4]
	}
	return quote(string(b))
}

// fieldSeg renders an object key as a field path segment: ".key" for plain
// identifiers, `["key"]` otherwise.
func fieldSeg(k string) string {
	if k == "" || len(k) > maxQuoted {
		return "[" + quote(k) + "]"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '$') {
			return "[" + quote(k) + "]"
		}
	}
	return "." + k
}

func indexSeg(i int) string { return "[" + strconv.Itoa(i) + "]" }

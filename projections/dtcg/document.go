package dtcg

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Token is one design token found in a DTCG document.
type Token struct {
	// Path is the token's full dot-separated path, e.g. "color.base.blue";
	// it always passes ValidatePath. A root token ends in ".$root".
	Path string
	// Type is the token's effective type: its own $type, or else the $type of
	// the nearest enclosing group that has one. It is empty only when neither
	// exists, which is accepted only when Value is a whole-value alias: the
	// spec then takes the type from the alias target, which the caller must
	// resolve. (When an alias token does inherit a group type, the caller
	// should still check it against the target's type.)
	Type string
	// Value is the token's $value, verbatim. It has passed ValidateValue for
	// Type (or ParseAlias when Type is empty).
	Value json.RawMessage
	// Description is the token's $description, or nil when absent.
	Description *string
	// Deprecated is the token's own $deprecated verbatim (true, false or a
	// string explanation), or nil when absent. A group's $deprecated is
	// validated but not copied onto its tokens.
	Deprecated json.RawMessage
	// Extensions is the token's $extensions object verbatim, or nil when
	// absent. It has been checked to be an object without duplicate keys.
	Extensions json.RawMessage
}

// ParseDocument reads a DTCG JSON document from r and calls fn for each
// design token, in document order.
//
// The document is read as a stream with json.Decoder.Token, never unmarshalled
// as a whole. While reading, ParseDocument enforces lim (zero fields take
// their DefaultLimits values): the total size (MaxBytes), the nesting depth of
// the whole document (MaxDepth, the root object being depth 1), the length of
// every string and number (MaxStringBytes) and the number of tokens
// (MaxTokens). It rejects:
//
//   - input that is not valid UTF-8 or not exactly one JSON object;
//   - duplicate keys within any object (including inside $extensions);
//   - group and token names that fail ValidateSegment ("$root" is allowed as
//     the name of a group's root token, which must then be a token), and
//     paths longer than ValidatePath allows;
//   - members of a group that are not objects;
//   - $-prefixed properties other than $value, $type, $description,
//     $deprecated and $extensions on tokens and groups ("$schema" is allowed,
//     and ignored, only at the root); "$extends" and "$ref" are rejected as
//     not supported;
//   - a $type that is not one of Types, a $description that is not a
//     string, a $deprecated that is neither a boolean nor a string, and
//     $extensions that is not an object;
//   - tokens nested inside a token (a token is a leaf), and a $value at the
//     document root;
//   - a token without an effective type whose value is not an alias, and
//     values that fail ValidateValue for the token's type.
//
// A group's $type may appear after the tokens that inherit it, since JSON
// objects are unordered; such tokens are held back until their type is
// known, so fn still sees tokens in document order.
//
// An error returned by fn stops parsing and is returned unchanged. Any other
// error is an *Error whose Field is the path of the offending token or group,
// or "(document)". As the document is streamed, fn may already have been
// called for some tokens when a later part of the document turns out to be
// invalid; callers should treat any error as a rejection of the whole
// document.
func ParseDocument(r io.Reader, lim Limits, fn func(Token) error) error {
	lim = lim.norm()
	if r == nil {
		return docErr("no input")
	}
	if fn == nil {
		fn = func(Token) error { return nil }
	}
	sr := &streamReader{r: r, lim: lim}
	d := &docParser{sr: sr, dec: json.NewDecoder(sr), lim: lim, fn: fn}
	return d.run()
}

const docField = "(document)"

func docErr(msg string) error { return &Error{Field: docField, Msg: msg} }

type frame struct {
	parent *frame
	path   string
	name   string
	segs   int
	isRoot bool

	keys    []string            // member names seen so far (small objects)
	keyMap  map[string]struct{} // member names, once there are many
	typ     string
	typSeen bool

	hasChildren bool
	isToken     bool
	value       json.RawMessage
	desc        *string
	deprecated  json.RawMessage
	extensions  json.RawMessage

	// waiting holds tokens below this group that have no type of their own
	// and are waiting to learn whether this group has a $type.
	waiting []*pendingTok
}

type pendingTok struct {
	tok      Token
	resolved bool
}

type docParser struct {
	sr  *streamReader
	dec *json.Decoder
	lim Limits
	fn  func(Token) error

	queue  []*pendingTok // tokens not yet passed to fn, in document order
	head   int
	tokens int
}

func (f *frame) field() string {
	if f.isRoot {
		return docField
	}
	return f.path
}

func (d *docParser) errAt(f *frame, msg string) error { return &Error{Field: f.field(), Msg: msg} }

// wrapAt reports a value-level error e (whose Field is relative to prop, e.g.
// "$value.components[1]") at frame f.
func (d *docParser) wrapAt(f *frame, e *Error) error {
	return &Error{Field: f.field(), Msg: e.Error()}
}

// decErr converts an error from the json.Decoder into an *Error, preferring
// the precise limit or encoding error recorded by the stream reader.
func (d *docParser) decErr(err error) error {
	if d.sr.err != nil {
		return d.sr.err
	}
	if d.sr.readErr != nil {
		return docErr("reading input: " + d.sr.readErr.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return docErr("invalid JSON: unexpected end of input")
	}
	return docErr("invalid JSON: " + err.Error() + " (near byte offset " + strconv.FormatInt(d.dec.InputOffset(), 10) + ")")
}

func (d *docParser) run() error {
	t, err := d.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) && d.sr.err == nil && d.sr.readErr == nil {
			return docErr("empty document")
		}
		return d.decErr(err)
	}
	if t != json.Delim('{') {
		return docErr("a DTCG document must be a JSON object")
	}
	root := &frame{isRoot: true}
	if err := d.object(root); err != nil {
		return err
	}
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return docErr("unexpected data after the top-level object")
		}
		return d.decErr(err)
	}
	if d.sr.err != nil {
		return d.sr.err
	}
	if d.sr.readErr != nil {
		return d.decErr(d.sr.readErr)
	}
	return nil
}

// object reads the members of the object whose '{' has just been read.
func (d *docParser) object(f *frame) error {
	for d.dec.More() {
		t, err := d.dec.Token()
		if err != nil {
			return d.decErr(err)
		}
		key, ok := t.(string)
		if !ok {
			return d.decErr(errors.New("expected an object key"))
		}
		if d.seen(f, key) {
			return d.errAt(f, "duplicate key "+quote(key))
		}
		if err := d.member(f, key); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil { // the closing '}'
		return d.decErr(err)
	}
	return d.close(f)
}

// seen records key as a member of f and reports whether it was already there.
func (d *docParser) seen(f *frame, key string) bool {
	if f.keyMap != nil {
		if _, dup := f.keyMap[key]; dup {
			return true
		}
		f.keyMap[key] = struct{}{}
		return false
	}
	for _, k := range f.keys {
		if k == key {
			return true
		}
	}
	if len(f.keys) < 16 {
		f.keys = append(f.keys, key)
		return false
	}
	f.keyMap = make(map[string]struct{}, 64)
	for _, k := range f.keys {
		f.keyMap[k] = struct{}{}
	}
	f.keyMap[key] = struct{}{}
	f.keys = nil
	return false
}

const knownProps = "$value, $type, $description, $deprecated and $extensions"

func (d *docParser) member(f *frame, key string) error {
	switch key {
	case "$value":
		if f.isRoot {
			return d.errAt(f, "the document root is a group and cannot have a $value")
		}
		if f.hasChildren {
			return d.errAt(f, `an object with "$value" is a token and cannot also contain tokens or groups`)
		}
		raw, err := d.raw()
		if err != nil {
			return err
		}
		f.value, f.isToken = raw, true
		return nil
	case "$type":
		s, err := d.rawString(f, key)
		if err != nil {
			return err
		}
		if !IsType(s) {
			return d.errAt(f, "$type: unknown type "+quote(s)+"; must be one of "+strings.Join(Types, ", "))
		}
		f.typ, f.typSeen = s, true
		for _, w := range f.waiting {
			w.tok.Type, w.resolved = s, true
		}
		f.waiting = nil
		return d.flush()
	case "$description":
		s, err := d.rawString(f, key)
		if err != nil {
			return err
		}
		f.desc = &s
		return nil
	case "$deprecated":
		raw, err := d.raw()
		if err != nil {
			return err
		}
		if c := raw[0]; c != 't' && c != 'f' && c != '"' {
			return d.errAt(f, "$deprecated: must be true, false or a string explanation")
		}
		f.deprecated = raw
		return nil
	case "$extensions":
		raw, err := d.raw()
		if err != nil {
			return err
		}
		if e := d.checkExtensions(raw); e != nil {
			return d.wrapAt(f, e.in("$extensions"))
		}
		f.extensions = raw
		return nil
	case "$schema":
		if !f.isRoot {
			break
		}
		_, err := d.rawString(f, key)
		return err
	case "$extends", "$ref":
		return d.errAt(f, quote(key)+" is not supported (DTCG 2025.10 group extension and JSON Pointer references); use curly brace aliases instead")
	case rootSegment:
		return d.child(f, key)
	}
	if strings.HasPrefix(key, "$") {
		return d.errAt(f, "unknown property "+quote(key)+"; DTCG 2025.10 defines "+knownProps+" (and $schema at the root)")
	}
	if e := checkSegment(key); e != nil {
		return d.errAt(f, "invalid name: "+e.Msg)
	}
	return d.child(f, key)
}

// raw reads the next value verbatim. The stream reader has already bounded
// its size, depth and string lengths.
func (d *docParser) raw() (json.RawMessage, error) {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return nil, d.decErr(err)
	}
	return raw, nil
}

func (d *docParser) rawString(f *frame, key string) (string, error) {
	raw, err := d.raw()
	if err != nil {
		return "", err
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", d.errAt(f, key+": must be a string")
	}
	return s, nil
}

// checkExtensions checks that raw is an object without duplicate keys.
func (d *docParser) checkExtensions(raw []byte) *Error {
	if e := precheck(raw, d.lim); e != nil {
		e.Field = ""
		return e
	}
	p := getParser(raw, d.lim)
	defer putParser(p)
	if e := p.parse(); e != nil {
		return e
	}
	if p.nodes[0].kind != kObject {
		return newErr("", "must be an object, got "+p.describe(0))
	}
	return p.checkDuplicateKeys(0)
}

func (d *docParser) child(f *frame, key string) error {
	if f.isToken {
		return d.errAt(f, "a token cannot contain nested tokens or groups (found "+quote(key)+")")
	}
	f.hasChildren = true
	path := key
	if !f.isRoot {
		path = f.path + "." + key
	}
	t, err := d.dec.Token()
	if err != nil {
		return d.decErr(err)
	}
	if t != json.Delim('{') {
		return &Error{Field: path, Msg: "must be an object (a group or a token)"}
	}
	if f.segs+1 > maxPathSegments {
		return &Error{Field: f.field(), Msg: "groups are nested more than " + strconv.Itoa(maxPathSegments) + " levels deep"}
	}
	if len(path) > maxPathBytes {
		return &Error{Field: f.field(), Msg: "token path longer than " + strconv.Itoa(maxPathBytes) + " bytes"}
	}
	return d.object(&frame{parent: f, path: path, name: key, segs: f.segs + 1})
}

// close finishes an object: it either queues a token or, for a group, hands
// its waiting tokens to the enclosing group.
func (d *docParser) close(f *frame) error {
	if f.isToken {
		d.tokens++
		if d.tokens > d.lim.MaxTokens {
			return d.errAt(f, "the document has more than "+strconv.Itoa(d.lim.MaxTokens)+" tokens")
		}
		pt := &pendingTok{tok: Token{
			Path:        f.path,
			Value:       f.value,
			Description: f.desc,
			Deprecated:  f.deprecated,
			Extensions:  f.extensions,
		}}
		d.queue = append(d.queue, pt)
		if f.typSeen {
			pt.tok.Type, pt.resolved = f.typ, true
		} else {
			inherit(f.parent, pt)
		}
		return d.flush()
	}
	if f.name == rootSegment {
		return d.errAt(f, `"$root" must be a token (an object with "$value")`)
	}
	for _, w := range f.waiting {
		if f.isRoot {
			w.resolved = true // no enclosing group has a $type
		} else {
			inherit(f.parent, w)
		}
	}
	f.waiting = nil
	return d.flush()
}

// inherit gives pt the type of group g if g's $type is known, or else makes
// pt wait until g is closed or its $type appears.
func inherit(g *frame, pt *pendingTok) {
	if g.typSeen {
		pt.tok.Type, pt.resolved = g.typ, true
		return
	}
	g.waiting = append(g.waiting, pt)
}

// flush validates and emits the tokens at the head of the queue whose type
// is settled.
func (d *docParser) flush() error {
	for d.head < len(d.queue) && d.queue[d.head].resolved {
		pt := d.queue[d.head]
		d.queue[d.head] = nil
		d.head++
		tok := pt.tok
		if tok.Type == "" {
			if e := untypedValue(tok.Value, d.lim); e != nil {
				return &Error{Field: tok.Path, Msg: e.Error()}
			}
		} else if e := validateValue(tok.Type, tok.Value, d.lim); e != nil {
			return &Error{Field: tok.Path, Msg: e.Error()}
		}
		if err := d.fn(tok); err != nil {
			return err
		}
	}
	switch {
	case d.head == len(d.queue):
		d.queue, d.head = d.queue[:0], 0 // emitted entries are already nil
	case d.head >= 1024 && d.head*2 >= len(d.queue):
		n := copy(d.queue, d.queue[d.head:])
		clear(d.queue[n:])
		d.queue, d.head = d.queue[:n], 0
	}
	return nil
}

// untypedValue accepts only a whole-value alias.
func untypedValue(v []byte, lim Limits) *Error {
	if b := trimSpace(v); len(b) > 0 && b[0] == '"' {
		if e := precheck(v, lim); e != nil {
			return e
		}
		p := getParser(v, lim)
		defer putParser(p)
		if e := p.parse(); e != nil {
			return e.in("$value")
		}
		if s := p.str(0); aliasLike(s) {
			if e := checkAliasString(s); e != nil {
				return e.in("$value")
			}
			return nil
		}
	}
	return newErr("$type", "the token has no $type and no enclosing group defines one; only a token whose $value is an alias may omit its type")
}

// streamReader wraps the document reader. Like io.LimitedReader it never
// reads more than MaxBytes+1 bytes, and it lexes the byte stream as it
// passes to the json.Decoder so that invalid UTF-8, excessive nesting and
// oversized strings or numbers are rejected before the decoder buffers them.
type streamReader struct {
	r       io.Reader
	lim     Limits
	n       int64
	err     *Error // a limit or encoding violation; sticky
	readErr error  // a non-EOF error from r; sticky

	carry [utf8.UTFMax]byte // incomplete UTF-8 sequence at the end of the last chunk
	nc    int

	depth  int
	inStr  bool
	esc    bool
	uhex   int
	uval   rune
	strLen int
	litLen int
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.readErr != nil {
		return 0, s.readErr
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rem := s.lim.MaxBytes + 1 - s.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.r.Read(p)
	if n < 0 || n > len(p) {
		s.readErr = errors.New("reader returned an invalid count")
		return 0, s.readErr
	}
	if n > 0 {
		off := s.n
		s.n += int64(n)
		if s.n > s.lim.MaxBytes {
			s.err = &Error{Field: docField, Msg: "document is larger than " + strconv.FormatInt(s.lim.MaxBytes, 10) + " bytes"}
			return 0, s.err
		}
		if e := s.scan(p[:n], off); e != nil {
			s.err = e
			return 0, e
		}
	}
	if err == io.EOF && s.nc > 0 {
		s.err = &Error{Field: docField, Msg: "invalid UTF-8 at the end of the document"}
		return 0, s.err
	}
	if err != nil && err != io.EOF {
		s.readErr = err
	}
	return n, err
}

func (s *streamReader) fail(msg string, off int64) *Error {
	return &Error{Field: docField, Msg: msg + " at byte offset " + strconv.FormatInt(off, 10)}
}

func (s *streamReader) scan(b []byte, off int64) *Error {
	if e := s.checkUTF8(b, off); e != nil {
		return e
	}
	maxStr := s.lim.MaxStringBytes
	for k := 0; k < len(b); k++ {
		c := b[k]
		if s.inStr {
			switch {
			case s.uhex > 0:
				v := unhex(c)
				if v < 0 {
					v = 0 // the decoder reports the syntax error
				}
				s.uval = s.uval<<4 | rune(v)
				s.uhex--
				if s.uhex == 0 {
					if s.uval >= 0xd800 && s.uval < 0xe000 {
						s.strLen += 2
					} else {
						s.strLen += utf8.RuneLen(s.uval)
					}
				}
			case s.esc:
				s.esc = false
				if c == 'u' {
					s.uhex, s.uval = 4, 0
				} else {
					s.strLen++
				}
			case c == '"':
				s.inStr = false
			case c == '\\':
				s.esc = true
			default:
				s.strLen++
			}
			if s.strLen > maxStr {
				return s.fail("string longer than "+strconv.Itoa(maxStr)+" bytes", off+int64(k))
			}
			continue
		}
		switch c {
		case '"':
			s.inStr, s.strLen, s.litLen = true, 0, 0
		case '{', '[':
			s.depth++
			s.litLen = 0
			if s.depth > s.lim.MaxDepth {
				return s.fail("nesting deeper than "+strconv.Itoa(s.lim.MaxDepth)+" levels", off+int64(k))
			}
		case '}', ']':
			if s.depth > 0 { // stray closers are the decoder's to report
				s.depth--
			}
			s.litLen = 0
		case ' ', '\t', '\n', '\r', ',', ':':
			s.litLen = 0
		default:
			s.litLen++
			if s.litLen > maxStr {
				return s.fail("literal longer than "+strconv.Itoa(maxStr)+" bytes", off+int64(k))
			}
		}
	}
	return nil
}

// checkUTF8 validates b as the continuation of the stream, carrying an
// incomplete trailing sequence over to the next chunk.
func (s *streamReader) checkUTF8(b []byte, off int64) *Error {
	i := 0
	if s.nc > 0 {
		for i < len(b) && !utf8.FullRune(s.carry[:s.nc]) {
			s.carry[s.nc] = b[i]
			s.nc++
			i++
		}
		if !utf8.FullRune(s.carry[:s.nc]) {
			return nil // still incomplete; wait for more input
		}
		if r, size := utf8.DecodeRune(s.carry[:s.nc]); r == utf8.RuneError && size <= 1 {
			return s.fail("invalid UTF-8", off)
		}
		s.nc = 0
	}
	rest := b[i:]
	// Find where the last rune starts; if it is incomplete, carry it.
	j := len(rest)
	for back := 1; back <= utf8.UTFMax && back <= len(rest); back++ {
		if utf8.RuneStart(rest[len(rest)-back]) {
			if !utf8.FullRune(rest[len(rest)-back:]) {
				j = len(rest) - back
			}
			break
		}
	}
	if !utf8.Valid(rest[:j]) {
		k := 0
		for k < j {
			r, size := utf8.DecodeRune(rest[k:j])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			k += size
		}
		return s.fail("invalid UTF-8", off+int64(i+k))
	}
	s.nc = copy(s.carry[:], rest[j:])
	return nil
}

package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxJSONDepth bounds the nesting of any JSON value Canonicalize accepts.
const MaxJSONDepth = 64

// Canonicalize returns the canonical form of one JSON value: no insignificant
// white space, object members sorted by key (byte order of their UTF-8), no
// duplicate keys, strings re-escaped minimally (only '"', '\\' and control
// characters), numbers as the shortest decimal that round-trips a float64
// (integers below 1e21 without exponent, -0 as 0). It refuses invalid UTF-8,
// lone surrogates, non-finite numbers, trailing data and nesting deeper than
// MaxJSONDepth. Canonicalize is idempotent: the canonical form of a canonical
// value is itself, which is what lets the event hash cover values.
func Canonicalize(b []byte) ([]byte, error) {
	p := canonParser{src: b}
	p.skipSpace()
	out, err := p.value(nil, 0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected data after the value")
	}
	return out, nil
}

type canonParser struct {
	src []byte
	pos int
}

func (p *canonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("json at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *canonParser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *canonParser) value(out []byte, depth int) ([]byte, error) {
	if depth > MaxJSONDepth {
		return nil, p.errorf("nested deeper than %d", MaxJSONDepth)
	}
	if p.pos >= len(p.src) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(out, depth)
	case c == '[':
		return p.array(out, depth)
	case c == '"':
		s, err := p.strBytes()
		if err != nil {
			return nil, err
		}
		return appendJSONString(out, s), nil
	case c == 't':
		return p.literal(out, "true")
	case c == 'f':
		return p.literal(out, "false")
	case c == 'n':
		return p.literal(out, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(out)
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *canonParser) literal(out []byte, lit string) ([]byte, error) {
	if !bytes.HasPrefix(p.src[p.pos:], []byte(lit)) {
		return nil, p.errorf("invalid literal")
	}
	p.pos += len(lit)
	return append(out, lit...), nil
}

// Member is one member of a JSON object: its key, and its value in
// canonical form.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Members reads one JSON object, as strictly as Canonicalize, and returns
// its members sorted by key, each value canonical. AppendObject writes them
// back: the two together are Canonicalize for an object, with a chance to
// look at or drop members in between without parsing again.
func Members(b []byte) ([]Member, error) {
	p := canonParser{src: b}
	p.skipSpace()
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return nil, p.errorf("expected a JSON object")
	}
	ms, err := p.members(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected data after the value")
	}
	return ms, nil
}

// AppendObject appends the canonical object of members (sorted by key,
// with canonical values, as Members returns them).
func AppendObject(out []byte, members []Member) []byte {
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(out, m.Key)
		out = append(out, ':')
		out = append(out, m.Value...)
	}
	return append(out, '}')
}

// object appends the canonical form of the object at p.pos. Objects whose
// keys already come in order (what canonical writers, dss-sync's own
// exports among them, produce) are copied through as they are read; at the
// first key out of order, the members read so far are taken from out and
// the rest read into members, then all sorted. Nothing is read twice, so
// the cost stays linear however the input nests.
func (p *canonParser) object(out []byte, depth int) ([]byte, error) {
	outStart := len(out)
	p.pos++ // '{'
	out = append(out, '{')
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return append(out, '}'), nil
	}
	type span struct {
		key      []byte
		from, to int // the value in out
	}
	var spanBuf [16]span
	spans := spanBuf[:0]
	for i := 0; ; i++ {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return nil, p.errorf("object key must be a string")
		}
		k, err := p.strBytes()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			if c := bytes.Compare(spans[i-1].key, k); c > 0 {
				members := make([]Member, len(spans), len(spans)+8)
				for j, sp := range spans {
					members[j] = Member{Key: string(sp.key), Value: bytes.Clone(out[sp.from:sp.to])}
				}
				members, err := p.moreMembers(members, string(k), depth)
				if err != nil {
					return nil, err
				}
				return AppendObject(out[:outStart], members), nil
			} else if c == 0 {
				return nil, fmt.Errorf("json: duplicate object key %q", k)
			}
			out = append(out, ',')
		}
		out = appendJSONString(out, k)
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("missing ':' after object key")
		}
		p.pos++
		out = append(out, ':')
		p.skipSpace()
		from := len(out)
		if out, err = p.value(out, depth+1); err != nil {
			return nil, err
		}
		spans = append(spans, span{k, from, len(out)})
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unterminated object")
		}
		if p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.src[p.pos] == '}' {
			p.pos++
			return append(out, '}'), nil
		}
		return nil, p.errorf("expected ',' or '}' in object")
	}
}

// members reads an object at p.pos: its members sorted by key, each value
// canonical; a duplicate key is an error.
func (p *canonParser) members(depth int) ([]Member, error) {
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return nil, nil
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '"' {
		return nil, p.errorf("object key must be a string")
	}
	k, err := p.str()
	if err != nil {
		return nil, err
	}
	return p.moreMembers(nil, k, depth)
}

// moreMembers reads the rest of an object, from just after the key k of
// its next member, onto members; then sorts them all and refuses duplicate
// keys. The values read are slices of one buffer.
func (p *canonParser) moreMembers(members []Member, k string, depth int) ([]Member, error) {
	first := len(members)
	var ends []int
	var buf []byte
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("missing ':' after object key")
		}
		p.pos++
		p.skipSpace()
		var err error
		if buf, err = p.value(buf, depth+1); err != nil {
			return nil, err
		}
		members = append(members, Member{Key: k})
		ends = append(ends, len(buf))
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unterminated object")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			break
		}
		if p.src[p.pos] != ',' {
			return nil, p.errorf("expected ',' or '}' in object")
		}
		p.pos++
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return nil, p.errorf("object key must be a string")
		}
		if k, err = p.str(); err != nil {
			return nil, err
		}
	}
	from := 0
	for i, end := range ends {
		members[first+i].Value = buf[from:end:end]
		from = end
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Key < members[j].Key })
	for i := 1; i < len(members); i++ {
		if members[i-1].Key == members[i].Key {
			return nil, fmt.Errorf("json: duplicate object key %q", members[i].Key)
		}
	}
	return members, nil
}

func (p *canonParser) array(out []byte, depth int) ([]byte, error) {
	p.pos++ // '['
	out = append(out, '[')
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return append(out, ']'), nil
	}
	for i := 0; ; i++ {
		if i > 0 {
			out = append(out, ',')
		}
		p.skipSpace()
		var err error
		if out, err = p.value(out, depth+1); err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unterminated array")
		}
		if p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.src[p.pos] == ']' {
			p.pos++
			return append(out, ']'), nil
		}
		return nil, p.errorf("expected ',' or ']' in array")
	}
}

// str reads a JSON string at p.pos and returns its decoded content.
func (p *canonParser) str() (string, error) {
	b, err := p.strBytes()
	return string(b), err
}

// strBytes reads a JSON string at p.pos and returns its decoded content:
// a slice of the input when it holds no escapes (do not modify it).
func (p *canonParser) strBytes() ([]byte, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == '"' {
			s := p.src[start:p.pos]
			if !utf8.Valid(s) {
				return nil, p.errorf("invalid UTF-8 in string")
			}
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, p.errorf("control character in string")
		}
		p.pos++
	}
	buf := append([]byte(nil), p.src[start:p.pos]...)
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return nil, p.errorf("invalid UTF-8 in string")
			}
			return buf, nil
		case c < 0x20:
			return nil, p.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.src) {
			break
		}
		e := p.src[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || p.pos+1 >= len(p.src) || p.src[p.pos] != '\\' || p.src[p.pos+1] != 'u' {
					return nil, p.errorf("lone surrogate in string")
				}
				p.pos += 2
				r2, err := p.hex4()
				if err != nil {
					return nil, err
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return nil, p.errorf("invalid surrogate pair in string")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, p.errorf("invalid escape \\%c", e)
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *canonParser) hex4() (rune, error) {
	if p.pos+4 > len(p.src) {
		return 0, p.errorf("short \\u escape")
	}
	v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, p.errorf("invalid \\u escape")
	}
	p.pos += 4
	return rune(v), nil
}

func (p *canonParser) number(out []byte) ([]byte, error) {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if digits() == 0 {
		return nil, p.errorf("invalid number")
	}
	if p.src[intStart] == '0' && p.pos-intStart > 1 {
		return nil, p.errorf("number with leading zero")
	}
	if p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	if p.pos < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	f, err := strconv.ParseFloat(string(p.src[start:p.pos]), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, p.errorf("number out of range")
	}
	return AppendNumber(out, f), nil
}

// AppendNumber appends the canonical form of a finite float64.
func AppendNumber(out []byte, f float64) []byte {
	if f == 0 {
		return append(out, '0')
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(out, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(out, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string with minimal escaping.
func appendJSONString[S ~string | ~[]byte](out []byte, s S) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		default:
			out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

func writeJSONString(b *bytes.Buffer, s string) {
	b.Write(appendJSONString(nil, s))
}

// JSONString returns s encoded as a canonical JSON string.
func JSONString(s string) []byte { return appendJSONString(nil, s) }

// ErrNotCanonical is returned when a value that must already be canonical is not.
var ErrNotCanonical = errors.New("value is not canonical JSON")

package dtcg

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// This file holds a small, strict JSON parser used for token values. It
// turns a raw value into a flat slice of nodes (pooled, so validating a
// typical value does not allocate), enforcing the nesting depth, string length
// and number finiteness limits while it parses. The type validators then walk
// the nodes.

type kind uint8

const (
	kNull kind = iota
	kFalse
	kTrue
	kNumber
	kString
	kArray
	kObject
)

// node is one JSON value, in 16 bytes. Containers are followed by their
// children in document order (objects alternate key node, value subtree).
type node struct {
	start, end int32 // byte span in the input; strings include their quotes
	// aux is, for arrays and objects, the index of the first node after the
	// subtree, and for numbers the index of the parsed value in parser.nums.
	aux  int32
	kind kind
	esc  bool // string containing backslash escapes
}

// maxValueNodes bounds the number of JSON values (scalars, arrays, objects
// and keys) in one parsed value, which bounds the parser's memory to about
// 6 MiB (16-byte nodes plus 8 bytes per number) whatever the input size (a 256 MiB "[0,0,0,...]" would otherwise
// need gigabytes). No real token value comes near it.
const maxValueNodes = 1 << 18

type parser struct {
	b     []byte
	i     int
	nodes []node
	nums  []float64
	lim   Limits
}

// after returns the index of the node following the subtree rooted at i.
func (p *parser) after(i int32) int32 {
	if k := p.nodes[i].kind; k == kArray || k == kObject {
		return p.nodes[i].aux
	}
	return i + 1
}

// end returns the index just past the children of container node i.
func (p *parser) end(i int32) int32 { return p.nodes[i].aux }

// numVal returns the value of number node i.
func (p *parser) numVal(i int32) float64 { return p.nums[p.nodes[i].aux] }

var parserPool = sync.Pool{New: func() any { return &parser{nodes: make([]node, 0, 64), nums: make([]float64, 0, 16)} }}

func getParser(b []byte, lim Limits) *parser {
	p := parserPool.Get().(*parser)
	p.b, p.i, p.lim = b, 0, lim
	p.nodes, p.nums = p.nodes[:0], p.nums[:0]
	return p
}

func putParser(p *parser) {
	if cap(p.nodes) > 4096 || cap(p.nums) > 4096 {
		return // do not pin large buffers in the pool
	}
	p.b = nil
	parserPool.Put(p)
}

// parse parses the whole input as exactly one JSON value.
func (p *parser) parse() *Error {
	if e := p.value(0); e != nil {
		return e
	}
	p.skipSpace()
	if p.i != len(p.b) {
		return p.syntax("unexpected data after the value")
	}
	return nil
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

func (p *parser) syntax(msg string) *Error {
	return newErr("", "invalid JSON: "+msg+" at offset "+strconv.Itoa(p.i))
}

func (p *parser) value(depth int) *Error {
	p.skipSpace()
	if p.i >= len(p.b) {
		return p.syntax("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true", kTrue)
	case c == 'f':
		return p.literal("false", kFalse)
	case c == 'n':
		return p.literal("null", kNull)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		return p.syntax("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func (p *parser) tooDeep(depth int) *Error {
	if depth > p.lim.MaxDepth {
		return newErr("", "nesting is deeper than "+strconv.Itoa(p.lim.MaxDepth)+" levels")
	}
	return nil
}

func (p *parser) push(k kind) (int, *Error) {
	if len(p.nodes) >= maxValueNodes {
		return 0, newErr("", "value has more than "+strconv.Itoa(maxValueNodes)+" elements")
	}
	p.nodes = append(p.nodes, node{start: int32(p.i), kind: k})
	return len(p.nodes) - 1, nil
}

// finish records the end of node idx (and, for containers, of its subtree).
func (p *parser) finish(idx int) {
	p.nodes[idx].end = int32(p.i)
	if k := p.nodes[idx].kind; k == kArray || k == kObject {
		p.nodes[idx].aux = int32(len(p.nodes))
	}
}

func (p *parser) literal(lit string, k kind) *Error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return p.syntax("invalid literal")
	}
	idx, e := p.push(k)
	if e != nil {
		return e
	}
	p.i += len(lit)
	p.finish(idx)
	return nil
}

func (p *parser) object(depth int) *Error {
	if e := p.tooDeep(depth); e != nil {
		return e
	}
	idx, e := p.push(kObject)
	if e != nil {
		return e
	}
	p.i++ // '{'
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.finish(idx)
		return nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.syntax("expected a string object key")
		}
		k := int32(len(p.nodes))
		if e := p.string(); e != nil {
			return e
		}
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.syntax("expected ':' after object key")
		}
		p.i++
		if e := p.value(depth); e != nil {
			return e.in(p.keySeg(k))
		}
		p.skipSpace()
		if p.i >= len(p.b) {
			return p.syntax("unexpected end of input in object")
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] == '}' {
			p.i++
			p.finish(idx)
			return nil
		}
		return p.syntax("expected ',' or '}' in object")
	}
}

func (p *parser) array(depth int) *Error {
	if e := p.tooDeep(depth); e != nil {
		return e
	}
	idx, e := p.push(kArray)
	if e != nil {
		return e
	}
	p.i++ // '['
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.finish(idx)
		return nil
	}
	for n := 0; ; n++ {
		if e := p.value(depth); e != nil {
			return e.in(indexSeg(n))
		}
		p.skipSpace()
		if p.i >= len(p.b) {
			return p.syntax("unexpected end of input in array")
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] == ']' {
			p.i++
			p.finish(idx)
			return nil
		}
		return p.syntax("expected ',' or ']' in array")
	}
}

// string parses a JSON string, checking escapes and raw control characters
// and bounding its decoded length. UTF-8 validity of the whole input has been
// checked beforehand.
func (p *parser) string() *Error {
	idx, e := p.push(kString)
	if e != nil {
		return e
	}
	p.i++ // opening quote
	decoded, esc := 0, false
	for {
		if p.i >= len(p.b) {
			return p.syntax("unterminated string")
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			p.nodes[idx].esc = esc
			p.finish(idx)
			return nil
		case c < 0x20:
			return p.syntax("control character in string")
		case c == '\\':
			esc = true
			if p.i+1 >= len(p.b) {
				return p.syntax("unterminated string")
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
				decoded++
			case 'u':
				if len(p.b)-p.i < 6 {
					return p.syntax("invalid \\u escape")
				}
				var r rune
				for _, h := range p.b[p.i+2 : p.i+6] {
					v := unhex(h)
					if v < 0 {
						return p.syntax("invalid \\u escape")
					}
					r = r<<4 | rune(v)
				}
				p.i += 6
				if r >= 0xd800 && r < 0xe000 {
					decoded += 2 // half of a surrogate pair (or U+FFFD, 3 bytes, when lone)
				} else {
					decoded += utf8.RuneLen(r)
				}
			default:
				return p.syntax("invalid escape in string")
			}
		default:
			p.i++
			decoded++
		}
		if decoded > p.lim.MaxStringBytes {
			return newErr("", "string is longer than "+strconv.Itoa(p.lim.MaxStringBytes)+" bytes")
		}
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number parses a number with the strict JSON grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and rejects values that
// overflow float64 (JSON has no infinities or NaN).
func (p *parser) number() *Error {
	idx, e := p.push(kNumber)
	if e != nil {
		return e
	}
	b, i := p.b, p.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		p.i = i
		return p.syntax("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			p.i = i
			return p.syntax("invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			p.i = i
			return p.syntax("invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i-p.i > p.lim.MaxStringBytes {
		return newErr("", "number literal is longer than "+strconv.Itoa(p.lim.MaxStringBytes)+" bytes")
	}
	f, err := strconv.ParseFloat(string(b[p.i:i]), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return newErr("", "number "+quoteBytes(b[p.i:i])+" is out of range (must be a finite number)")
	}
	p.i = i
	p.nodes[idx].aux = int32(len(p.nums))
	p.nums = append(p.nums, f)
	p.finish(idx)
	return nil
}

// str returns the decoded contents of string node i. For strings without
// escapes it aliases the input and does not allocate.
func (p *parser) str(i int32) []byte {
	n := &p.nodes[i]
	raw := p.b[n.start:n.end]
	if !n.esc {
		return raw[1 : len(raw)-1]
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil // unreachable: the parser validated the string
	}
	return []byte(s)
}

// keySeg renders key node k as a field path segment (only on error paths).
func (p *parser) keySeg(k int32) string { return fieldSeg(string(p.str(k))) }

// checkDuplicateKeys reports the first object (anywhere in the parsed value)
// that has two members with the same decoded key.
func (p *parser) checkDuplicateKeys(i int32) *Error {
	switch p.nodes[i].kind {
	case kArray:
		idx := 0
		for c := i + 1; c < p.end(i); c = p.after(c) {
			if e := p.checkDuplicateKeys(c); e != nil {
				return e.in(indexSeg(idx))
			}
			idx++
		}
	case kObject:
		var seen map[string]struct{}
		var small [8]int32
		count := 0
		for k := i + 1; k < p.end(i); {
			v := k + 1
			key := p.str(k)
			dup := false
			if seen == nil {
				for _, o := range small[:count] {
					if string(p.str(o)) == string(key) {
						dup = true
						break
					}
				}
				if !dup {
					if count < len(small) {
						small[count] = k
						count++
					} else {
						seen = make(map[string]struct{}, 2*count)
						for _, o := range small[:count] {
							seen[string(p.str(o))] = struct{}{}
						}
					}
				}
			}
			if seen != nil {
				if _, ok := seen[string(key)]; ok {
					dup = true
				} else {
					seen[string(key)] = struct{}{}
				}
			}
			if dup {
				return newErr(p.keySeg(k), "duplicate key")
			}
			if e := p.checkDuplicateKeys(v); e != nil {
				return e.in(p.keySeg(k))
			}
			k = p.after(v)
		}
	}
	return nil
}

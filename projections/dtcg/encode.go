package dtcg

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Property is one property of a token as an Encoder writes it: its name
// ("$type", "$value", ...) and its JSON value, written verbatim.
type Property struct {
	Name  string
	Value json.RawMessage
}

// Encoder writes a DTCG document as a stream, one token at a time, nesting
// tokens in groups by their paths. Tokens must come in ascending byte order of
// their paths: then every group's members come together. A token whose path is
// also a group (a token "color.accent" beside "color.accent.light") is written
// as that group's "$root" token (DTCG 2025.10 section 6.2). The output is
// deterministic: the same tokens give the same bytes.
//
// A token is held until a later path tells whether it has children. In byte
// order a token's children need not follow it at once: "color.accent-dark"
// sorts between "color.accent" and "color.accent.light", as '-' sorts before
// '.'. So a token stays held while the paths after it extend it with a byte
// below '.', and is written, as a root token or a plain one, once a path
// settles it. Each held token is a prefix of the next one held, so at most a
// path's length of them are held at once.
type Encoder struct {
	w      *bufio.Writer
	open   []string // the groups currently open
	first  []bool   // whether the next member of each open level is its first
	held   []pendingToken
	err    error
	indent bool
}

type pendingToken struct {
	path  string
	props []Property
}

// NewEncoder returns an encoder writing to w, indented with two spaces.
func NewEncoder(w io.Writer) *Encoder {
	e := &Encoder{w: bufio.NewWriterSize(w, 64<<10), first: []bool{true}, indent: true}
	e.w.WriteString("{")
	return e
}

// Token writes one token. Its path must sort after the previous token's.
func (e *Encoder) Token(path string, props []Property) error {
	if e.err != nil {
		return e.err
	}
	if n := len(e.held); n > 0 {
		if last := e.held[n-1].path; path <= last {
			e.err = fmt.Errorf("dtcg: token %q written after %q: paths must ascend", path, last)
			return e.err
		}
	}
	e.settle(path)
	e.held = append(e.held, pendingToken{path: path, props: props})
	return e.err
}

// settle writes the held tokens that next, the following path, decides: a
// held token that next is a child of is its group's root token; one that
// next does not extend is a plain token, as no child of it can follow; one
// that next extends with a byte below '.' stays held, and so do the tokens
// held before it, of which it is an extension.
func (e *Encoder) settle(next string) {
	for n := len(e.held); n > 0 && e.err == nil; n = len(e.held) {
		h := e.held[n-1]
		rest, ext := strings.CutPrefix(next, h.path)
		if ext && rest != "" && rest[0] < '.' {
			return
		}
		e.held = e.held[:n-1]
		e.write(h.path, h.props, ext && rest != "" && rest[0] == '.')
	}
}

// Close writes the held tokens and closes every group and the document.
func (e *Encoder) Close() error {
	for n := len(e.held); n > 0 && e.err == nil; n = len(e.held) {
		h := e.held[n-1]
		e.held = e.held[:n-1]
		e.write(h.path, h.props, false)
	}
	for len(e.open) > 0 && e.err == nil {
		e.closeGroup()
	}
	if e.err != nil {
		return e.err
	}
	e.newline(0)
	e.w.WriteString("}\n")
	return e.w.Flush()
}

func (e *Encoder) write(path string, props []Property, asRoot bool) {
	segs := strings.Split(path, ".")
	groups, name := segs[:len(segs)-1], segs[len(segs)-1]
	if asRoot {
		groups, name = segs, RootSegment
	}
	// Close the groups the token is not in, open the ones it is.
	common := 0
	for common < len(e.open) && common < len(groups) && e.open[common] == groups[common] {
		common++
	}
	for len(e.open) > common {
		e.closeGroup()
	}
	for _, g := range groups[common:] {
		e.key(g)
		e.w.WriteString("{")
		e.open = append(e.open, g)
		e.first = append(e.first, true)
	}
	e.key(name)
	e.w.WriteString("{")
	for i, p := range props {
		if i > 0 {
			e.w.WriteString(",")
		}
		e.newline(len(e.open) + 2)
		writeString(e.w, p.Name)
		e.w.WriteString(": ")
		e.w.Write(p.Value)
	}
	e.newline(len(e.open) + 1)
	e.w.WriteString("}")
}

// key writes the separator and the key of the next member of the innermost level.
func (e *Encoder) key(name string) {
	lvl := len(e.first) - 1
	if !e.first[lvl] {
		e.w.WriteString(",")
	}
	e.first[lvl] = false
	e.newline(len(e.open) + 1)
	writeString(e.w, name)
	e.w.WriteString(": ")
}

func (e *Encoder) closeGroup() {
	e.open = e.open[:len(e.open)-1]
	e.first = e.first[:len(e.first)-1]
	e.newline(len(e.open) + 1)
	e.w.WriteString("}")
}

func (e *Encoder) newline(depth int) {
	if e.indent {
		e.w.WriteString("\n")
		for i := 0; i < depth; i++ {
			e.w.WriteString("  ")
		}
	}
}

// writeString writes s as a JSON string, as encoding/json does without
// HTML escaping.
func writeString(w *bufio.Writer, s string) {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
	}
	if plain { // the common case: printable ASCII, nothing to escape
		w.WriteByte('"')
		w.WriteString(s)
		w.WriteByte('"')
		return
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	w.Write(bytes.TrimRight(b.Bytes(), "\n"))
}

package dtcg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// parseAll runs ParseDocument and returns the tokens passed to fn.
func parseAll(doc string, lim Limits) ([]Token, error) {
	var toks []Token
	err := ParseDocument(strings.NewReader(doc), lim, func(t Token) error {
		toks = append(toks, t)
		return nil
	})
	return toks, err
}

// pathTypes renders tokens as "path:type" strings.
func pathTypes(toks []Token) string {
	var s []string
	for _, t := range toks {
		s = append(s, t.Path+":"+t.Type)
	}
	return strings.Join(s, " ")
}

func TestParseDocumentTypeInheritance(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"own type", `{"a":{"$type":"number","$value":1}}`, "a:number"},
		{"group type before", `{"g":{"$type":"color","a":{"$value":"#fff"}}}`, "g.a:color"},
		{"group type after children", `{"g":{"a":{"$value":"#fff"},"$type":"color"}}`, "g.a:color"},
		{"root type", `{"$type":"number","g":{"h":{"a":{"$value":1}}}}`, "g.h.a:number"},
		{"root type at the end", `{"g":{"a":{"$value":"16px"}},"$type":"dimension"}`, "g.a:dimension"},
		{"nearest group wins", `{"$type":"dimension","g":{"$type":"color","a":{"$value":"#fff"}}}`, "g.a:color"},
		{"nearest group wins when declared late", `{"$type":"dimension","g":{"a":{"$value":"#fff"},"$type":"color"}}`, "g.a:color"},
		{"own type beats group", `{"g":{"$type":"color","a":{"$type":"number","$value":1}}}`, "g.a:number"},
		{"intermediate group without type", `{"g":{"$type":"number","h":{"a":{"$value":1}},"b":{"$value":2}}}`, "g.h.a:number g.b:number"},
		{"untyped alias", `{"a":{"$type":"number","$value":1},"b":{"$value":"{a}"}}`, "a:number b:"},
		{"alias inherits group type", `{"g":{"$type":"number","b":{"$value":"{a}"}},"a":{"$type":"number","$value":1}}`, "g.b:number a:number"},
		{"document order kept while waiting", `{"g":{"a":{"$value":"#fff"},"b":{"$type":"number","$value":1},"$type":"color"},"c":{"$type":"number","$value":2}}`,
			"g.a:color g.b:number c:number"},
		{"root tokens", `{"space":{"$type":"dimension","$root":{"$value":"16px"},"small":{"$value":"8px"}},"$root":{"$type":"number","$value":1}}`,
			"space.$root:dimension space.small:dimension $root:number"},
		{"empty groups", `{"experimental":{"$description":"empty","$deprecated":"phased out"},"x":{}}`, ""},
		{"schema ignored", `{"$schema":"https://www.designtokens.org/schemas/2025.10/format.json","a":{"$type":"number","$value":1}}`, "a:number"},
		{"group metadata", `{"g":{"$description":"d","$deprecated":true,"$extensions":{"com.example":{"x":[1,2]}},"$type":"number","a":{"$value":1}}}`, "g.a:number"},
		{"unicode names", `{"café":{"🎨 palette":{"$type":"number","$value":1}}}`, "café.🎨 palette:number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			toks, err := parseAll(c.doc, Limits{})
			if err != nil {
				t.Fatalf("ParseDocument: got %v, want nil", err)
			}
			if got := pathTypes(toks); got != c.want {
				t.Fatalf("tokens: got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseDocumentTokenFields(t *testing.T) {
	doc := `{
  "button": {
    "$type": "color",
    "bg": {
      "$value": "#777777",
      "$description": "The background color for buttons.",
      "$deprecated": "Please use {button.activeBorder} instead.",
      "$extensions": { "org.example.tool-a": 42, "org.example.tool-b": { "turn-up-to-11": true } }
    },
    "fg": { "$value": { "colorSpace": "srgb", "components": [1, 1, 1] }, "$deprecated": false }
  }
}`
	toks, err := parseAll(doc, Limits{})
	if err != nil {
		t.Fatalf("ParseDocument: got %v, want nil", err)
	}
	if len(toks) != 2 {
		t.Fatalf("tokens: got %d, want 2", len(toks))
	}
	bg, fg := toks[0], toks[1]
	if got, want := string(bg.Value), `"#777777"`; got != want {
		t.Fatalf("bg.Value: got %s, want %s", got, want)
	}
	if bg.Description == nil || *bg.Description != "The background color for buttons." {
		t.Fatalf("bg.Description: got %v, want the description", bg.Description)
	}
	if got, want := string(bg.Deprecated), `"Please use {button.activeBorder} instead."`; got != want {
		t.Fatalf("bg.Deprecated: got %s, want %s", got, want)
	}
	if got, want := string(bg.Extensions), `{ "org.example.tool-a": 42, "org.example.tool-b": { "turn-up-to-11": true } }`; got != want {
		t.Fatalf("bg.Extensions: got %s, want %s", got, want)
	}
	if got, want := string(fg.Value), `{ "colorSpace": "srgb", "components": [1, 1, 1] }`; got != want {
		t.Fatalf("fg.Value: got %s, want %s", got, want)
	}
	if fg.Description != nil || fg.Extensions != nil {
		t.Fatalf("fg: got description %v and extensions %s, want both nil", fg.Description, fg.Extensions)
	}
	if got, want := string(fg.Deprecated), `false`; got != want {
		t.Fatalf("fg.Deprecated: got %s, want %s", got, want)
	}
}

func TestParseDocumentRejects(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat(`{"g":`, n) + inner + strings.Repeat(`}`, n)
	}
	cases := []struct {
		name  string
		doc   string
		lim   Limits
		field string
		msg   string
	}{
		{"empty input", ``, Limits{}, docField, "empty document"},
		{"not an object", `["a"]`, Limits{}, docField, "must be a JSON object"},
		{"string document", `"x"`, Limits{}, docField, "must be a JSON object"},
		{"trailing data", `{} {}`, Limits{}, docField, "unexpected data after the top-level object"},
		{"syntax error", `{"a":{"$type":"number","$value":}}`, Limits{}, docField, "invalid JSON"},
		{"truncated", `{"a":{"$type":"number"`, Limits{}, docField, "invalid JSON"},
		{"depth bomb in groups", nest(40, `{}`), Limits{}, docField, "nesting deeper than 32 levels"},
		{"depth bomb in a value", `{"a":{"$type":"number","$value":` + strings.Repeat("[", 100000) + `}}`, Limits{}, docField, "nesting deeper than 32 levels"},
		{"groups nested past 32 names", nest(33, `{"t":{"$type":"number","$value":1}}`), Limits{MaxDepth: 100}, strings.TrimSuffix(strings.Repeat("g.", 32), "."), "nested more than 32 levels deep"},
		{"value nested past MaxDepth", `{"a":{"$type":"shadow","$value":` + strings.Repeat("[", 5) + strings.Repeat("]", 5) + `}}`, Limits{MaxDepth: 6}, docField, "nesting deeper than 6 levels"},
		{"huge string value", `{"a":{"$type":"fontFamily","$value":"` + strings.Repeat("x", 100) + `"}}`, Limits{MaxStringBytes: 64}, docField, "string longer than 64 bytes"},
		{"huge key", `{"` + strings.Repeat("k", 100) + `":{}}`, Limits{MaxStringBytes: 64}, docField, "string longer than 64 bytes"},
		{"huge escaped string", `{"a":{"$type":"fontFamily","$value":"` + strings.Repeat(`\u00e9`, 40) + `"}}`, Limits{MaxStringBytes: 64}, docField, "string longer than 64 bytes"},
		{"huge number", `{"a":{"$type":"number","$value":` + strings.Repeat("9", 100) + `}}`, Limits{MaxStringBytes: 64}, docField, "literal longer than 64 bytes"},
		{"too many bytes", `{"a":{"$type":"number","$value":1},"b":{"$type":"number","$value":2}}`, Limits{MaxBytes: 40}, docField, "larger than 40 bytes"},
		{"too many tokens", `{"a":{"$type":"number","$value":1},"b":{"$type":"number","$value":2},"c":{"$type":"number","$value":3}}`, Limits{MaxTokens: 2}, "c", "more than 2 tokens"},
		{"duplicate group key", `{"a":{"$type":"number","$value":1},"a":{"$type":"number","$value":2}}`, Limits{}, docField, `duplicate key "a"`},
		{"duplicate escaped key", `{"g":{"a":{},"\u0061":{}}}`, Limits{}, "g", `duplicate key "a"`},
		{"duplicate token property", `{"a":{"$type":"number","$value":1,"$type":"color"}}`, Limits{}, "a", `duplicate key "$type"`},
		{"duplicate key among many", `{"g":{` + manyGroups(40) + `,"k7":{}}}`, Limits{}, "g", `duplicate key "k7"`},
		{"duplicate key in $value", `{"a":{"$type":"dimension","$value":{"value":1,"unit":"px","unit":"rem"}}}`, Limits{}, "a", "$value.unit: duplicate key"},
		{"duplicate key in $extensions", `{"a":{"$type":"number","$value":1,"$extensions":{"x":{"y":1,"y":2}}}}`, Limits{}, "a", "$extensions.x.y: duplicate key"},
		{"invalid UTF-8 in key", "{\"caf\xe9\":{}}", Limits{}, docField, "invalid UTF-8 at byte offset 5"},
		{"invalid UTF-8 in value", "{\"a\":{\"$type\":\"fontFamily\",\"$value\":\"Ari\xc3\x28l\"}}", Limits{}, docField, "invalid UTF-8"},
		{"surrogate in UTF-8", "{\"a\xed\xa0\x80\":{}}", Limits{}, docField, "invalid UTF-8"},
		{"truncated UTF-8 at end", "{\"a\xe2\x82", Limits{}, docField, "invalid UTF-8 at the end of the document"},
		{"garbage after the document", "{}\xe2\x82", Limits{}, docField, "invalid JSON"},
		{"token without type", `{"g":{"a":{"$value":"#fff"}}}`, Limits{}, "g.a", "no $type"},
		{"token without type at root", `{"a":{"$value":16}}`, Limits{}, "a", "no $type"},
		{"untyped malformed alias", `{"a":{"$value":"{a..b}"}}`, Limits{}, "a", "$value: malformed alias"},
		{"nested token after $value", `{"a":{"$type":"number","$value":1,"b":{"$type":"number","$value":2}}}`, Limits{}, "a", `cannot contain nested tokens or groups (found "b")`},
		{"nested token before $value", `{"a":{"b":{"$type":"number","$value":2},"$value":1}}`, Limits{}, "a", `an object with "$value" is a token and cannot also contain tokens or groups`},
		{"$root inside a token", `{"a":{"$type":"number","$value":1,"$root":{"$value":2}}}`, Limits{}, "a", "cannot contain nested tokens"},
		{"$root must be a token", `{"g":{"$root":{"x":{"$type":"number","$value":1}}}}`, Limits{}, "g.$root", `"$root" must be a token`},
		{"unknown $ property on token", `{"a":{"$type":"number","$value":1,"$foo":true}}`, Limits{}, "a", `unknown property "$foo"`},
		{"unknown $ property on group", `{"g":{"$metadata":{}}}`, Limits{}, "g", `unknown property "$metadata"`},
		{"unknown $ property at root", `{"$themes":[]}`, Limits{}, docField, `unknown property "$themes"`},
		{"$schema below root", `{"g":{"$schema":"x"}}`, Limits{}, "g", `unknown property "$schema"`},
		{"$schema not a string", `{"$schema":1}`, Limits{}, docField, "$schema: must be a string"},
		{"$extends", `{"a":{},"b":{"$extends":"{a}"}}`, Limits{}, "b", `"$extends" is not supported`},
		{"$ref token", `{"a":{"$type":"number","$value":1},"b":{"$ref":"#/a/$value"}}`, Limits{}, "b", `"$ref" is not supported`},
		{"$ref inside a value", `{"a":{"$type":"dimension","$value":{"value":{"$ref":"#/x"},"unit":"px"}}}`, Limits{}, "a", `$value.value: JSON Pointer "$ref" references are not supported`},
		{"name with dot", `{"a.b":{}}`, Limits{}, docField, "invalid name"},
		{"name with brace", `{"g":{"{a}":{}}}`, Limits{}, "g", "invalid name"},
		{"empty name", `{"":{}}`, Limits{}, docField, "name must not be empty"},
		{"name with control char", `{"a\u0001":{}}`, Limits{}, docField, "control characters"},
		{"name too long", `{"` + strings.Repeat("n", 129) + `":{}}`, Limits{}, docField, "longer than 128 bytes"},
		{"path too long", nest(0, `{"`+strings.Repeat("a", 128)+`":{"`+strings.Repeat("b", 128)+`":{"`+strings.Repeat("c", 128)+`":{"`+strings.Repeat("d", 128)+`":{}}}}}`), Limits{}, strings.Repeat("a", 128) + "." + strings.Repeat("b", 128) + "." + strings.Repeat("c", 128), "longer than 512 bytes"},
		{"group member not an object", `{"g":{"a":1}}`, Limits{}, "g.a", "must be an object (a group or a token)"},
		{"group member array", `{"a":[]}`, Limits{}, "a", "must be an object"},
		{"root $value", `{"$type":"number","$value":1}`, Limits{}, docField, "cannot have a $value"},
		{"unknown $type", `{"a":{"$type":"colour","$value":"#fff"}}`, Limits{}, "a", `$type: unknown type "colour"`},
		{"unknown group $type", `{"g":{"$type":"string","a":{"$value":"x"}}}`, Limits{}, "g", `$type: unknown type "string"`},
		{"$type not a string", `{"a":{"$type":["color"],"$value":"#fff"}}`, Limits{}, "a", "$type: must be a string"},
		{"$description not a string", `{"a":{"$type":"number","$value":1,"$description":1}}`, Limits{}, "a", "$description: must be a string"},
		{"$deprecated number", `{"a":{"$type":"number","$value":1,"$deprecated":1}}`, Limits{}, "a", "$deprecated: must be true, false or a string"},
		{"$extensions array", `{"a":{"$type":"number","$value":1,"$extensions":[1]}}`, Limits{}, "a", "$extensions: must be an object"},
		{"invalid value", `{"c":{"$type":"color","$value":{"colorSpace":"srgb","components":[1,true,0]}}}`, Limits{}, "c", `$value.components[1]: must be a number or "none"`},
		{"invalid inherited value", `{"c":{"$type":"color","base":{"blue":{"$value":"blue"}}}}`, Limits{}, "c.base.blue", "$value: must be a color object"},
		{"invalid value with late type", `{"g":{"a":{"$value":"16px"},"$type":"number"}}`, Limits{}, "g.a", "$value: must be a number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseAll(c.doc, c.lim)
			checkErr(t, err, c.field, c.msg)
		})
	}
}

func manyGroups(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":{}`, i)
	}
	return b.String()
}

func TestParseDocumentCallbackError(t *testing.T) {
	stop := errors.New("stop")
	var calls int
	err := ParseDocument(strings.NewReader(`{"$type":"number","a":{"$value":1},"b":{"$value":2},"c":{"$value":3}}`), Limits{}, func(tok Token) error {
		calls++
		if tok.Path == "b" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("error: got %v, want the callback's error unchanged", err)
	}
	if calls != 2 {
		t.Fatalf("calls: got %d, want 2", calls)
	}
}

func TestParseDocumentReaderError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(`{"a":{"$type":"number",`), iotest.ErrReader(boom))
	err := ParseDocument(r, Limits{}, nil)
	checkErr(t, err, docField, "reading input: boom")
	checkErr(t, ParseDocument(nil, Limits{}, nil), docField, "no input")
}

// Reading one byte at a time exercises UTF-8 sequences split across reads.
func TestParseDocumentOneByteReads(t *testing.T) {
	doc := `{"café":{"$type":"fontFamily","🎨":{"$value":["Noto Sans 日本語","Ünïcödé"]}}}`
	var got []Token
	err := ParseDocument(iotest.OneByteReader(strings.NewReader(doc)), Limits{}, func(t Token) error {
		got = append(got, t)
		return nil
	})
	if err != nil {
		t.Fatalf("ParseDocument: got %v, want nil", err)
	}
	if s := pathTypes(got); s != "café.🎨:fontFamily" {
		t.Fatalf("tokens: got %q, want %q", s, "café.🎨:fontFamily")
	}
	bad := "{\"caf\xc3\":{}}"
	err = ParseDocument(iotest.OneByteReader(strings.NewReader(bad)), Limits{}, nil)
	checkErr(t, err, docField, "invalid UTF-8")
	trunc := "{\"\xf0\x9f\x8e"
	err = ParseDocument(iotest.OneByteReader(strings.NewReader(trunc)), Limits{}, nil)
	checkErr(t, err, docField, "invalid UTF-8")
}

// Tokens held back for a late group $type must not cost quadratic time: a
// late root $type with many intermediate groups closing.
func TestParseDocumentLateTypeManyGroups(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{`)
	const n = 50000
	for i := range n {
		fmt.Fprintf(&b, `"g%d":{"h":{"t":{"$value":%d}}},`, i, i)
	}
	b.WriteString(`"$type":"number"}`)
	count := 0
	err := ParseDocument(&b, Limits{}, func(tok Token) error {
		if tok.Type != "number" {
			return fmt.Errorf("token %s: got type %q, want number", tok.Path, tok.Type)
		}
		count++
		return nil
	})
	if err != nil {
		t.Fatalf("ParseDocument: got %v, want nil", err)
	}
	if count != n {
		t.Fatalf("tokens: got %d, want %d", count, n)
	}
}

// Values inside a document obey the caller's limits, not just the defaults.
func TestParseDocumentLimitsApplyToValues(t *testing.T) {
	doc := `{"a":{"$type":"fontFamily","$value":["` + strings.Repeat("x", 40) + `"]}}`
	if _, err := parseAll(doc, Limits{}); err != nil {
		t.Fatalf("default limits: got %v, want nil", err)
	}
	_, err := parseAll(doc, Limits{MaxStringBytes: 32})
	checkErr(t, err, docField, "string longer than 32 bytes")
}

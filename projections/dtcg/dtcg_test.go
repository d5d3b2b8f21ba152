package dtcg

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestTypes(t *testing.T) {
	want := []string{"color", "dimension", "fontFamily", "fontWeight", "duration", "cubicBezier", "number",
		"strokeStyle", "border", "transition", "shadow", "gradient", "typography"}
	if !slices.Equal(Types, want) {
		t.Fatalf("Types: got %v, want %v", Types, want)
	}
	for i, typ := range Types {
		if !IsType(typ) {
			t.Fatalf("IsType(%q): got false, want true", typ)
		}
		if got := lookupType(typ); got != typeID(i) {
			t.Fatalf("lookupType(%q): got %d, want %d", typ, got, i)
		}
	}
	for _, typ := range []string{"", "Color", "colour", "string", "boolean", "fontStyle", "color ", "$type"} {
		if IsType(typ) {
			t.Fatalf("IsType(%q): got true, want false", typ)
		}
	}
}

func TestValidateSegment(t *testing.T) {
	cases := []struct {
		seg string
		msg string // "" means valid
	}{
		{"blue", ""},
		{"token name", ""},
		{"FONT-SIZE", ""},
		{"500", ""},
		{"café", ""},
		{"🎨", ""},
		{"a$b", ""},
		{"my/group", ""},
		{strings.Repeat("a", 128), ""},
		{strings.Repeat("é", 64), ""},
		{"", "must not be empty"},
		{strings.Repeat("a", 129), "longer than 128 bytes"},
		{strings.Repeat("é", 65), "longer than 128 bytes"},
		{"$value", "must not start with '$'"},
		{"$root", "must not start with '$'"},
		{"a.b", "must not contain '{', '}' or '.'"},
		{"{a}", "must not contain '{', '}' or '.'"},
		{"a}", "must not contain"},
		{"a\nb", "control characters"},
		{"a\x00", "control characters"},
		{"a\x7f", "control characters"},
		{"a\u0085", "control characters"},
		{"a\xffb", "not valid UTF-8"},
		{"\xc0\x80", "not valid UTF-8"},
	}
	for _, c := range cases {
		err := ValidateSegment(c.seg)
		if c.msg == "" {
			if err != nil {
				t.Fatalf("ValidateSegment(%q): got %v, want nil", c.seg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("ValidateSegment(%q): got %v, want an error containing %q", c.seg, err, c.msg)
		}
	}
}

func TestValidatePath(t *testing.T) {
	seg32 := strings.TrimSuffix(strings.Repeat("a.", 32), ".")
	cases := []struct {
		path string
		msg  string
	}{
		{"color", ""},
		{"color.base.blue", ""},
		{"brand colors.primary", ""},
		{"color.accent.$root", ""},
		{"$root", ""},
		{seg32, ""},
		{strings.Repeat("a", 128) + "." + strings.Repeat("b", 128) + "." + strings.Repeat("c", 128) + "." + strings.Repeat("d", 125), ""},
		{"", "must not be empty"},
		{seg32 + ".a", "more than 32 segments"},
		{strings.Repeat("a", 128) + "." + strings.Repeat("b", 128) + "." + strings.Repeat("c", 128) + "." + strings.Repeat("d", 126), "longer than 512 bytes"},
		{"a..b", "segment 2: name must not be empty"},
		{".a", "segment 1: name must not be empty"},
		{"a.", "segment 2: name must not be empty"},
		{"a.$b", "segment 2: name \"$b\" must not start with '$'"},
		{"a.$root.b", "segment 2"},
		{"a.{b}", "must not contain"},
		{"a.b\tc", "control characters"},
		{"a.\xff", "not valid UTF-8"},
	}
	for _, c := range cases {
		err := ValidatePath(c.path)
		if c.msg == "" {
			if err != nil {
				t.Fatalf("ValidatePath(%q): got %v, want nil", c.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("ValidatePath(%q): got %v, want an error containing %q", c.path, err, c.msg)
		}
	}
}

func TestParseAlias(t *testing.T) {
	cases := []struct {
		raw  string
		path string
		ok   bool
	}{
		{`"{color.base.blue}"`, "color.base.blue", true},
		{` "{a}" `, "a", true},
		{`"{color.accent.$root}"`, "color.accent.$root", true},
		{`"\u007bcolor.blue\u007d"`, "color.blue", true},
		{`"{brand colors.primary}"`, "brand colors.primary", true},
		{`"{}"`, "", false},
		{`"{a..b}"`, "", false},
		{`"{a.$b}"`, "", false},
		{`"{a.b"`, "", false},
		{`"a.b}"`, "", false},
		{`"use {a.b}"`, "", false},
		{`"{a.b} "`, "", false},
		{`"{a}{b}"`, "", false},
		{`{"$ref":"#/a"}`, "", false},
		{`["{a}"]`, "", false},
		{`"#ff0000"`, "", false},
		{`12`, "", false},
		{``, "", false},
		{`"{a}" x`, "", false},
		{"\"{a\xff}\"", "", false},
		{`"{a}`, "", false},
	}
	for _, c := range cases {
		path, ok := ParseAlias(json.RawMessage(c.raw))
		if path != c.path || ok != c.ok {
			t.Fatalf("ParseAlias(%s): got (%q, %v), want (%q, %v)", c.raw, path, ok, c.path, c.ok)
		}
	}
}

func TestReferences(t *testing.T) {
	cases := []struct {
		name  string
		raw   string
		want  []string
		field string
		msg   string
	}{
		{"whole value", `"{color.base.blue}"`, []string{"color.base.blue"}, "", ""},
		{"no refs", srgbRed, nil, "", ""},
		{"scalar", `12`, nil, "", ""},
		{"border color", `{"color":"{color.focus}","width":{"value":1,"unit":"px"},"style":"solid"}`, []string{"color.focus"}, "", ""},
		{"shadow offsets and array", `["{shadow.base}",{"color":"{color.shadow}","offsetX":"{space.sm}","offsetY":"{space.sm}","blur":"4px","spread":"0px"}]`,
			[]string{"color.shadow", "shadow.base", "space.sm"}, "", ""},
		{"gradient stops", `[{"color":"{brand.primary}","position":0},{"color":"{brand.primary}","position":"{position.end}"}]`,
			[]string{"brand.primary", "position.end"}, "", ""},
		{"typography", `{"fontFamily":"{font.serif}","fontSize":"{font.size.sm}","fontWeight":"{font.weight.normal}","letterSpacing":"0px","lineHeight":1}`,
			[]string{"font.serif", "font.size.sm", "font.weight.normal"}, "", ""},
		{"dashArray", `{"dashArray":["{dash.b}","{dash.a}","1px"],"lineCap":"round"}`, []string{"dash.a", "dash.b"}, "", ""},
		{"root token", `"{space.$root}"`, []string{"space.$root"}, "", ""},
		{"braces inside text are not aliases", `{"a":"Please use {button.activeBorder} instead","b":"{x"}`, nil, "", ""},
		{"keys are not aliases", `{"{a.b}":1}`, nil, "", ""},
		{"escaped alias", `"\u007ba.b\u007d"`, []string{"a.b"}, "", ""},
		{"malformed double dot", `{"color":"{a..b}"}`, nil, "$value.color", "malformed alias"},
		{"malformed empty", `["x","{}"]`, nil, "$value[1]", "path is empty"},
		{"malformed dollar", `{"a":{"b":["{a.$b}"]}}`, nil, "$value.a.b[0]", "must not start with '$'"},
		{"odd key in field path", `{"a b":"{}"}`, nil, `$value["a b"]`, "path is empty"},
		{"invalid JSON", `{"a":`, nil, "$value.a", "invalid JSON"},
		{"invalid UTF-8", "\"{a\xff}\"", nil, "$value", "not valid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := References(json.RawMessage(c.raw))
			checkErr(t, err, c.field, c.msg)
			if !slices.Equal(got, c.want) {
				t.Fatalf("References(%s): got %q, want %q", c.raw, got, c.want)
			}
		})
	}
}

func TestReferencesDepthBomb(t *testing.T) {
	bomb := strings.Repeat("[", 100_000) + `"{a}"` + strings.Repeat("]", 100_000)
	_, err := References(json.RawMessage(bomb))
	if err == nil || !strings.Contains(err.Error(), "nesting is deeper than 32 levels") {
		t.Fatalf("got %v, want a nesting error", err)
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Field: "$value.components[1]", Msg: `must be a number or "none"`}
	if got, want := e.Error(), `$value.components[1]: must be a number or "none"`; got != want {
		t.Fatalf("Error(): got %q, want %q", got, want)
	}
}

func TestLimitsNorm(t *testing.T) {
	if got := (Limits{}).norm(); got != DefaultLimits {
		t.Fatalf("zero Limits: got %+v, want %+v", got, DefaultLimits)
	}
	if got := (Limits{MaxDepth: -1, MaxStringBytes: -1, MaxTokens: -1, MaxBytes: -1}).norm(); got != DefaultLimits {
		t.Fatalf("negative Limits: got %+v, want %+v", got, DefaultLimits)
	}
	if got := (Limits{MaxDepth: 1 << 30}).norm().MaxDepth; got != hardMaxDepth {
		t.Fatalf("huge MaxDepth: got %d, want %d", got, hardMaxDepth)
	}
	want := Limits{MaxDepth: 32, MaxStringBytes: 64 << 10, MaxTokens: 1_000_000, MaxBytes: 256 << 20}
	if DefaultLimits != want {
		t.Fatalf("DefaultLimits: got %+v, want %+v", DefaultLimits, want)
	}
}

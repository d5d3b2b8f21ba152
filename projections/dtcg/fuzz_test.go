package dtcg

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// maxSeed bounds the size of fixtures used as fuzz seeds: the fuzzer spends
// most of its time minimizing large inputs, and the large fixtures (the huge
// string) only exercise a limit already covered by unit tests.
const maxSeed = 4 << 10

// fixtures returns the contents of every fixture under testdata/dtcg that is
// small enough to be a useful fuzz seed.
func fixtures(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	for _, pattern := range []string{"valid/*.tokens.json", "invalid/*.json"} {
		files, err := filepath.Glob(filepath.Join(testdataDir, pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			if len(b) <= maxSeed {
				out = append(out, b)
			}
		}
	}
	return out
}

// fixtureValues returns (type, $value) pairs of the tokens of the valid
// fixtures.
func fixtureValues(f *testing.F) (types []string, values [][]byte) {
	f.Helper()
	for _, doc := range fixtures(f) {
		_ = ParseDocument(bytes.NewReader(doc), Limits{}, func(t Token) error {
			types = append(types, t.Type)
			values = append(values, t.Value)
			return nil
		})
	}
	return types, values
}

// splitFixture splits a valid fixture into one small document per top-level
// member, so that it can seed the fuzzer without exceeding maxSeed.
func splitFixture(f *testing.F, name string) [][]byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, "valid", name))
	if err != nil {
		f.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for k, v := range top {
		doc, err := json.Marshal(map[string]json.RawMessage{k: v})
		if err != nil {
			f.Fatal(err)
		}
		if len(doc) <= maxSeed {
			out = append(out, doc)
		}
	}
	return out
}

func typeIndex(typ string) uint8 {
	if i := slices.Index(Types, typ); i >= 0 {
		return uint8(i)
	}
	return uint8(len(Types))
}

// checkFieldErr asserts err is nil or an *Error with a message and a field
// under one of the given prefixes.
func checkFieldErr(t *testing.T, err error, prefixes ...string) {
	t.Helper()
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want an *Error", err, err)
	}
	if e.Msg == "" {
		t.Fatalf("got an empty message for field %q", e.Field)
	}
	for _, p := range prefixes {
		if strings.HasPrefix(e.Field, p) {
			return
		}
	}
	t.Fatalf("field: got %q, want a prefix among %q", e.Field, prefixes)
}

func FuzzValidateValue(f *testing.F) {
	for _, c := range valueCases {
		f.Add(typeIndex(c.typ), []byte(c.value))
	}
	types, values := fixtureValues(f)
	for i := range types {
		f.Add(typeIndex(types[i]), values[i])
	}
	f.Fuzz(func(t *testing.T, ti uint8, data []byte) {
		typ := "bogus"
		if int(ti)%(len(Types)+1) < len(Types) {
			typ = Types[int(ti)%(len(Types)+1)]
		}
		err := ValidateValue(typ, data)
		checkFieldErr(t, err, "$value", "$type")
		if again := ValidateValue(typ, data); (again == nil) != (err == nil) || again != nil && again.Error() != err.Error() {
			t.Fatalf("not deterministic: got %v then %v", err, again)
		}
		if err != nil {
			return
		}
		if typ == "bogus" {
			t.Fatalf("unknown type accepted")
		}
		if !json.Valid(data) || !utf8.Valid(data) {
			t.Fatalf("accepted a value encoding/json rejects: %q", data)
		}
		if _, rerr := References(data); rerr != nil {
			t.Fatalf("valid %s value, but References failed: %v", typ, rerr)
		}
	})
}

func FuzzReferences(f *testing.F) {
	for _, c := range valueCases {
		f.Add([]byte(c.value))
	}
	_, values := fixtureValues(f)
	for _, v := range values {
		f.Add(v)
	}
	f.Add([]byte(`["{a.b}","{a.b}","{a.$root}",{"x":"{c}"},"{}"]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, err := References(data)
		checkFieldErr(t, err, "$value")
		if err != nil {
			if refs != nil {
				t.Fatalf("got refs %q with error %v, want nil", refs, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for i, r := range refs {
			if perr := ValidatePath(r); perr != nil {
				t.Fatalf("reference %q fails ValidatePath: %v", r, perr)
			}
			if i > 0 && refs[i-1] >= r {
				t.Fatalf("references not sorted and deduplicated: %q", refs)
			}
		}
		if path, ok := ParseAlias(data); ok && !slices.Equal(refs, []string{path}) {
			t.Fatalf("ParseAlias gave %q but References gave %q", path, refs)
		}
	})
}

func FuzzParseDocument(f *testing.F) {
	for _, doc := range fixtures(f) {
		f.Add(doc)
	}
	for _, doc := range splitFixture(f, "design-system.tokens.json") {
		f.Add(doc)
	}
	for _, doc := range []string{
		`{"g":{"a":{"$value":"#fff"},"$type":"color"}}`,
		`{"$type":"number","g":{"$root":{"$value":1},"b":{"$value":"{g.$root}"}}}`,
		`{"a":{"$value":"{b}"},"b":{"$type":"dimension","$value":"4px","$deprecated":true,"$extensions":{"x":[1]}}}`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxDepth: 16, MaxStringBytes: 256, MaxTokens: 64, MaxBytes: 1 << 20}
		var toks []Token
		err := ParseDocument(bytes.NewReader(data), lim, func(tok Token) error {
			toks = append(toks, tok)
			return nil
		})
		checkFieldErr(t, err, "")
		seen := map[string]bool{}
		for _, tok := range toks {
			if perr := ValidatePath(tok.Path); perr != nil {
				t.Fatalf("token path %q fails ValidatePath: %v", tok.Path, perr)
			}
			if seen[tok.Path] {
				t.Fatalf("token path %q reported twice", tok.Path)
			}
			seen[tok.Path] = true
			if tok.Type == "" {
				if _, ok := ParseAlias(tok.Value); !ok {
					t.Fatalf("untyped token %s has a non-alias value %s", tok.Path, tok.Value)
				}
			} else if verr := ValidateValue(tok.Type, tok.Value); verr != nil {
				t.Fatalf("token %s of type %s: value %s fails ValidateValue: %v", tok.Path, tok.Type, tok.Value, verr)
			}
			if tok.Extensions != nil && !json.Valid(tok.Extensions) {
				t.Fatalf("token %s: invalid $extensions %s", tok.Path, tok.Extensions)
			}
		}
		if err != nil {
			return
		}
		if !json.Valid(data) || !utf8.Valid(data) {
			t.Fatalf("accepted a document encoding/json rejects: %q", data)
		}
		// Chunking must not change the outcome.
		var toks1 []Token
		err1 := ParseDocument(iotest.OneByteReader(bytes.NewReader(data)), lim, func(tok Token) error {
			toks1 = append(toks1, tok)
			return nil
		})
		if err1 != nil || len(toks1) != len(toks) {
			t.Fatalf("one-byte reads: got %d tokens and %v, want %d tokens and nil", len(toks1), err1, len(toks))
		}
		for i := range toks {
			if toks[i].Path != toks1[i].Path || toks[i].Type != toks1[i].Type || !bytes.Equal(toks[i].Value, toks1[i].Value) {
				t.Fatalf("one-byte reads: token %d differs: got %+v, want %+v", i, toks1[i], toks[i])
			}
		}
	})
}

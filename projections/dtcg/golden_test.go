package dtcg

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/dtcg/valid")

// testdataDir is the shared fixture folder, relative to this package.
const testdataDir = "../../testdata/dtcg"

// describeTokens renders one line per token: path, type and the references
// of its value, tab-separated.
func describeTokens(t *testing.T, toks []Token) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, tok := range toks {
		refs, err := References(tok.Value)
		if err != nil {
			t.Fatalf("References(%s): got %v, want nil", tok.Value, err)
		}
		typ := tok.Type
		if typ == "" {
			typ = "-"
		}
		b.WriteString(tok.Path + "\t" + typ + "\t" + strings.Join(refs, ",") + "\n")
	}
	return b.Bytes()
}

func TestGoldenValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdataDir, "valid", "*.tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("valid fixtures: got %d, want at least 2", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var toks []Token
			if err := ParseDocument(f, Limits{}, func(tok Token) error {
				toks = append(toks, tok)
				return nil
			}); err != nil {
				t.Fatalf("ParseDocument: got %v, want nil", err)
			}
			got := describeTokens(t, toks)
			golden := strings.TrimSuffix(file, ".tokens.json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading %s (run go test -update to create it): %v", golden, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("tokens of %s:\ngot:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

// The main fixture must exercise every type.
func TestGoldenCoversAllTypes(t *testing.T) {
	f, err := os.Open(filepath.Join(testdataDir, "valid", "design-system.tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	if err := ParseDocument(f, Limits{}, func(tok Token) error {
		if _, isAlias := ParseAlias(tok.Value); !isAlias {
			seen[tok.Type] = true
		}
		return nil
	}); err != nil {
		t.Fatalf("ParseDocument: got %v, want nil", err)
	}
	for _, typ := range Types {
		if !seen[typ] {
			t.Fatalf("design-system.tokens.json: got no explicit %s value, want one", typ)
		}
	}
}

func TestGoldenInvalid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdataDir, "invalid", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("invalid fixtures: got %d, want at least 20", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			wantRaw, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".want")
			if err != nil {
				t.Fatalf("every invalid fixture needs a .want file: %v", err)
			}
			want, _, _ := strings.Cut(string(wantRaw), "\n")
			if want == "" {
				t.Fatalf("%s.want: got an empty first line, want the expected error", file)
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = ParseDocument(f, Limits{}, nil)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("ParseDocument(%s): got %v, want an error containing %q", filepath.Base(file), err, want)
			}
		})
	}
}

package dtcg_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dss-sync/dss-sync/projections/dtcg"
)

func TestEncoderRoundTrip(t *testing.T) {
	in := []struct{ path, typ, value string }{
		{"color.accent", "color", `"#ff0000"`},
		{"color.accent.light", "color", `"#ff8080"`},
		{"color.base-2", "color", `"#000000"`},
		{"color.base.blue", "color", `{"colorSpace":"srgb","components":[0,0,1]}`},
		{"color.brand", "", `"{color.accent.$root}"`},
		{"size.s \"quoted\"", "dimension", `"4px"`},
		{"z", "number", `1`},
	}
	var b bytes.Buffer
	enc := dtcg.NewEncoder(&b)
	for _, tk := range in {
		var props []dtcg.Property
		if tk.typ != "" {
			props = append(props, dtcg.Property{Name: "$type", Value: json.RawMessage(`"` + tk.typ + `"`)})
		}
		props = append(props, dtcg.Property{Name: "$value", Value: json.RawMessage(tk.value)})
		if err := enc.Token(tk.path, props); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b.Bytes()) {
		t.Fatalf("not JSON:\n%s", b.String())
	}
	var got []string
	err := dtcg.ParseDocument(bytes.NewReader(b.Bytes()), dtcg.DefaultLimits, func(tk dtcg.Token) error {
		got = append(got, strings.TrimSuffix(tk.Path, ".$root")+"="+string(tk.Value))
		return nil
	})
	if err != nil {
		t.Fatalf("parse our own output: %v\n%s", err, b.String())
	}
	if len(got) != len(in) {
		t.Fatalf("got %d tokens, want %d:\n%s", len(got), len(in), b.String())
	}
	for i, tk := range in {
		var want bytes.Buffer
		json.Compact(&want, []byte(tk.value))
		if got[i] != tk.path+"="+want.String() {
			t.Errorf("token %d: got %s, want %s=%s", i, got[i], tk.path, want.String())
		}
	}
	if !strings.Contains(b.String(), `"$root": {`) {
		t.Fatalf("no $root group:\n%s", b.String())
	}
	// Out of order is an error.
	enc = dtcg.NewEncoder(&bytes.Buffer{})
	enc.Token("b", nil)
	if err := enc.Token("a", nil); err == nil {
		t.Fatal("descending paths accepted")
	}
}

// TestEncoderRootTokenAfterSiblings: in byte order a sibling such as
// "a.b-c" (or a whole group "a.b-c.*") comes between a token "a.b" and its
// children "a.b.*", since '-' sorts before '.'; the encoder still writes
// "a.b" once, as the root token of its group, and our own parser reads back
// every token. Random paths over an alphabet around '.' cover the orders.
func TestEncoderRootTokenAfterSiblings(t *testing.T) {
	segs := []string{"a", "b", "b-c", "b!", "b0", "c"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 500; round++ {
		set := map[string]bool{}
		for i := 0; i < 1+rng.IntN(12); i++ {
			var p []string
			for j := 0; j < 1+rng.IntN(4); j++ {
				p = append(p, segs[rng.IntN(len(segs))])
			}
			set[strings.Join(p, ".")] = true
		}
		paths := make([]string, 0, len(set))
		for p := range set {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		var b bytes.Buffer
		enc := dtcg.NewEncoder(&b)
		for _, p := range paths {
			props := []dtcg.Property{{Name: "$type", Value: json.RawMessage(`"fontFamily"`)}, {Name: "$value", Value: json.RawMessage(strconv.Quote(p))}}
			if err := enc.Token(p, props); err != nil {
				t.Fatal(err)
			}
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := dtcg.ParseDocument(bytes.NewReader(b.Bytes()), dtcg.DefaultLimits, func(tk dtcg.Token) error {
			got = append(got, strings.TrimSuffix(tk.Path, ".$root"))
			return nil
		})
		if err != nil {
			t.Fatalf("paths %q: parse our own output: %v\n%s", paths, err, b.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, paths) {
			t.Fatalf("paths %q: read back %q\n%s", paths, got, b.String())
		}
	}
}

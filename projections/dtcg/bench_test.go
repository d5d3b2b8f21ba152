package dtcg

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkValidateValue(b *testing.B) {
	cases := []struct {
		name, typ, value string
	}{
		{"color-object", "color", `{"colorSpace":"oklch","components":[0.7016,0.3225,328.363],"alpha":1,"hex":"#ff00ff"}`},
		{"dimension-string", "dimension", `"16px"`},
		{"typography", "typography", `{"fontFamily":["Inter","Helvetica Neue","sans-serif"],"fontSize":{"value":1,"unit":"rem"},"fontWeight":"{font.weight.regular}","letterSpacing":{"value":0.1,"unit":"px"},"lineHeight":1.5}`},
	}
	for _, c := range cases {
		raw := json.RawMessage(c.value)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := ValidateValue(c.typ, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseDocument(b *testing.B) {
	doc, err := os.ReadFile(filepath.Join(testdataDir, "valid", "design-system.tokens.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if err := ParseDocument(bytes.NewReader(doc), Limits{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

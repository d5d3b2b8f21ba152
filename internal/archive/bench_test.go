package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/internal/archive"
	"github.com/dss-sync/dss-sync/projections"
)

// benchSite is a project of n tokens (one in ten an alias) and 50
// components, in memory.
func benchSite(b *testing.B, n int) *projections.Site {
	b.Helper()
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s, _ := projections.NewSite(projections.SiteConfig{ID: "paris", Storage: projections.NewMemory(),
		Rand: rand.New(rand.NewSource(1)), Now: func() time.Time { now = now.Add(time.Millisecond); return now }})
	if _, err := s.CreateProject(ctx, "design", "Design", "bench"); err != nil {
		b.Fatal(err)
	}
	var cs []projections.Change
	for i := 0; i < n; i++ {
		data := fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"token %d"}`, i*37%0xffffff, i)
		if i%10 == 9 {
			data = fmt.Sprintf(`{"$value":"{g%03d.t%05d}"}`, (i-9)/100, i-9)
		}
		cs = append(cs, projections.Change{Path: fmt.Sprintf("g%03d.t%05d", i/100, i), Data: json.RawMessage(data)})
	}
	for i := 0; i < 50; i++ {
		cs = append(cs, projections.Change{Kind: "component", Path: fmt.Sprintf("C%02d", i),
			Data: json.RawMessage(fmt.Sprintf(`{"description":"component %d","tokens":[%q]}`, i, cs[i].Path))})
	}
	if _, err := s.Apply(ctx, "design", "bench", cs); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCheck10k: the checks of an import of a 10,000-token archive with
// its history (every stage, records kept for Records), and of the same
// tokens as one DTCG file.
func BenchmarkCheck10k(b *testing.B) {
	s := benchSite(b, 10_000)
	arch := exportOf(b, s, archive.ExportOptions{History: true})
	var doc bytes.Buffer
	if _, err := archive.ExportDTCG(context.Background(), s, "design", "", "", &doc); err != nil {
		b.Fatal(err)
	}
	for name, in := range map[string][]byte{"archive": arch, "dtcg": doc.Bytes()} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if rep, _ := archive.Check(bytes.NewReader(in), int64(len(in)), archive.ImportLimits{}, nil); !rep.Valid {
					b.Fatalf("%+v", rep)
				}
			}
		})
	}
}

// BenchmarkExport10k: a signed archive with history, and a DTCG file, of a
// 10,000-token project.
func BenchmarkExport10k(b *testing.B) {
	s := benchSite(b, 10_000)
	b.Run("dss", func(b *testing.B) {
		for b.Loop() {
			if _, err := archive.Export(context.Background(), s, "design", archive.ExportOptions{History: true, Key: signer}, &bytes.Buffer{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dtcg", func(b *testing.B) {
		for b.Loop() {
			if _, err := archive.ExportDTCG(context.Background(), s, "design", "", "", &bytes.Buffer{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

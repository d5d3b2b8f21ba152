package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/dss-sync/dss-sync/projections/audit"
)

// twoSites returns a site holding a project edited on two sites.
func twoSites(t *testing.T) *projections.Site {
	t.Helper()
	ctx := context.Background()
	mk := func(id string, seed int64) (*projections.Site, *projections.Memory) {
		m := projections.NewMemory()
		now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		s, _ := projections.NewSite(projections.SiteConfig{ID: id, Storage: m, Rand: rand.New(rand.NewSource(seed)),
			Now: func() time.Time { now = now.Add(time.Second); return now }})
		return s, m
	}
	a, am := mk("paris", 1)
	b, bm := mk("lyon", 2)
	a.CreateProject(ctx, "design", "", "alice")
	all := func(m *projections.Memory) []*events.Event {
		var out []*events.Event
		m.View(ctx, "design", func(r projections.Reader) error {
			return r.ScanEvents(events.Position{}, func(e *events.Event) error { out = append(out, e); return nil })
		})
		return out
	}
	b.Receive(ctx, "design", all(am))
	for i := 0; i < 4; i++ {
		a.ApplyOne(ctx, "design", "alice", projections.Change{Path: fmt.Sprintf("a.t%d", i), Data: json.RawMessage(`{"$type":"number","$value":1}`)})
		b.ApplyOne(ctx, "design", "bob", projections.Change{Path: fmt.Sprintf("b.t%d", i), Data: json.RawMessage(`{"$type":"number","$value":2}`)})
	}
	a.Receive(ctx, "design", all(bm))
	return a
}

func export(t *testing.T, s *projections.Site, f audit.Filter, format string, key ed25519.PrivateKey) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := audit.Export(context.Background(), s, "design", f, format, key, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func verify(t *testing.T, b []byte) *audit.Result {
	t.Helper()
	res, err := audit.Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func lines(b []byte) []string { return strings.SplitAfter(string(b), "\n") }

func TestAuditExportVerifies(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.New(rand.NewSource(7)))
	s := twoSites(t)
	for _, format := range []string{audit.NDJSON, audit.CSV} {
		b := export(t, s, audit.Filter{}, format, key)
		res := verify(t, b)
		if res.Problem != "" || res.Events != 9 || res.Sites != 2 || !res.Complete || res.Format != format || res.Signer != events.KeyID(key.Public().(ed25519.PublicKey)) {
			t.Fatalf("%s: %+v", format, res)
		}
		// Filtered: verifies, and notes the gaps.
		fb := export(t, s, audit.Filter{Actor: "bob"}, format, key)
		res = verify(t, fb)
		if res.Problem != "" || res.Events != 4 || res.Complete {
			t.Fatalf("%s filtered: %+v", format, res)
		}
	}
}

func TestAuditTamperingIsFound(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.New(rand.NewSource(7)))
	s := twoSites(t)
	for _, format := range []string{audit.NDJSON, audit.CSV} {
		good := lines(export(t, s, audit.Filter{}, format, key))
		// idx is an event's index in the slice of lines; line is 1-based.
		first := 0
		if format == audit.CSV {
			first = 1 // the header
		}
		join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
		const e = 3 // the event tampered with
		edit := append([]string(nil), good...)
		edit[first+e] = strings.Replace(edit[first+e], "alice", "alicf", 1)
		edit[first+e] = strings.Replace(edit[first+e], "bob", "bop", 1)
		removed := append(append([]string(nil), good[:first+e]...), good[first+e+1:]...)
		swapped := append([]string(nil), good...)
		swapped[first+e], swapped[first+e+1] = swapped[first+e+1], swapped[first+e]
		truncated := good[:len(good)-2] // the trailer gone (the last element is the empty tail)
		for name, tc := range map[string]struct {
			b    []byte
			line int
		}{
			"an edited event": {join(edit), first + e + 1},
			"a removed event": {join(removed), -1},            // revealed by the next event of its site
			"swapped events":  {join(swapped), first + e + 2}, // the second of the pair is out of order
			"no trailer":      {join(truncated), 0},
		} {
			res := verify(t, tc.b)
			if tc.line == -1 {
				if !strings.Contains(res.Problem, "missing") || res.Line <= first+e {
					t.Errorf("%s %s: problem %q at line %d, want a gap after line %d", format, name, res.Problem, res.Line, first+e)
				}
				continue
			}
			if res.Problem == "" || res.Line != tc.line {
				t.Errorf("%s %s: problem %q at line %d, want one at line %d", format, name, res.Problem, res.Line, tc.line)
			}
		}
		// Another key's trailer over the same events verifies as that key's:
		// the signer is named, for the auditor to compare with the site's.
		_, other, _ := ed25519.GenerateKey(rand.New(rand.NewSource(8)))
		theirs := verify(t, export(t, s, audit.Filter{}, format, other))
		if theirs.Problem != "" || theirs.Signer == events.KeyID(key.Public().(ed25519.PublicKey)) {
			t.Errorf("%s: another signer: %+v", format, theirs)
		}
		// A trailer edited after signing (another count, same signature).
		last := good[len(good)-2]
		bumped := strings.Replace(strings.Replace(last, `"count":9`, `"count":8`, 1), `""count"":9`, `""count"":8`, 1)
		if bumped == last {
			t.Fatalf("%s: no count in the trailer %q", format, last)
		}
		edited := append(append([]string(nil), good[:len(good)-2]...), bumped)
		if res := verify(t, join(edited)); res.Problem == "" || res.Line != len(good)-1 {
			t.Errorf("%s: an edited trailer: %+v", format, res)
		}
	}
}

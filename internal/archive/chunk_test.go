package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dss-sync/dss-sync/internal/archive"
)

// chunkOf returns the records of an export with history as one chunk.
func chunkOf(t testing.TB) ([]archive.Record, []byte) {
	t.Helper()
	b := exportOf(t, sourceSite(t), archive.ExportOptions{History: true})
	_, in := check(t, b)
	var recs []archive.Record
	if err := in.Records(context.Background(), archive.RecordOptions{History: true, Revs: true}, func(r archive.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c, err := archive.EncodeRecords(recs)
	if err != nil {
		t.Fatal(err)
	}
	return recs, c
}

func describeRecords(recs []archive.Record) string {
	var b strings.Builder
	for _, r := range recs {
		if r.Event != nil {
			j, _ := json.Marshal(r.Event)
			fmt.Fprintf(&b, "%s\n", j)
		} else {
			f, _ := json.Marshal(r.Item.Fields)
			fmt.Fprintf(&b, "%s %s %s %s %s\n", r.Item.Kind, r.Item.Path, r.Item.ID, r.Item.Rev, f)
		}
	}
	return b.String()
}

func TestChunkRoundTrip(t *testing.T) {
	recs, c := chunkOf(t)
	got, err := archive.DecodeRecords(c)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := describeRecords(got), describeRecords(recs); a != b || len(got) != 54 {
		t.Fatalf("%d records decoded:\n%s\nwant %d:\n%s", len(got), a, len(recs), b)
	}
}

// TestChunkRefusesDamage: every truncation, and a flipped bit in every
// byte, is an error, never a panic.
func TestChunkRefusesDamage(t *testing.T) {
	_, c := chunkOf(t)
	for n := 0; n < len(c); n++ {
		if _, err := archive.DecodeRecords(c[:n]); err == nil {
			t.Fatalf("truncated to %d bytes, decodes", n)
		}
	}
	for i := range c {
		bad := bytes.Clone(c)
		bad[i] ^= 0x10
		if _, err := archive.DecodeRecords(bad); err == nil {
			t.Fatalf("a flipped bit at %d decodes", i)
		}
	}
	recs, _ := chunkOf(t)
	for _, bad := range []string{"", "DSC0", `{"event":{}}`, "DSC1X", "DSC1I\x05token"} {
		if _, err := archive.DecodeRecords(withSum([]byte(bad))); err == nil {
			t.Fatalf("%q decodes", bad)
		}
	}
	// An item whose fields would be refused as a write's data.
	for _, fields := range []string{`{"$type":"color","$value":"not a colour"}`, `{"$value":1,"bogus":2}`} {
		var f map[string]json.RawMessage
		json.Unmarshal([]byte(fields), &f)
		rec := archive.Record{Item: recs[len(recs)-2].Item}
		it := *rec.Item
		it.Fields = f
		c, _ := archive.EncodeRecords([]archive.Record{{Item: &it}})
		if _, err := archive.DecodeRecords(c); err == nil {
			t.Fatalf("an item with fields %s decodes", fields)
		}
	}
}

// FuzzDecodeRecords: arbitrary chunk bodies (the checksum appended, so
// that the fuzzer reaches the decoder behind it) never panic; what decodes
// encodes and decodes again to the same records.
func FuzzDecodeRecords(f *testing.F) {
	_, c := chunkOf(f)
	f.Add(c[:len(c)-sha256.Size])
	f.Add([]byte("DSC1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := archive.DecodeRecords(withSum(bytes.Clone(b)))
		if err != nil {
			return
		}
		again, err := archive.EncodeRecords(recs)
		if err != nil {
			t.Fatal(err)
		}
		recs2, err := archive.DecodeRecords(again)
		if err != nil {
			t.Fatalf("re-encoded chunk refused: %v", err)
		}
		if describeRecords(recs) != describeRecords(recs2) {
			t.Fatal("records differ after a round trip")
		}
	})
}

// withSum appends the checksum a chunk ends with, so that a test reaches
// the checks behind it.
func withSum(b []byte) []byte {
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

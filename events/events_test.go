package events_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// testCase is one case of a data-driven file: a command, its input and the
// expected output, in the style of pebble's datadriven tests.
type testCase struct {
	cmd, input, want string
	line             int
}

func readCases(t testing.TB, path string) []testCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []testCase
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c := testCase{cmd: l, line: i + 1}
		var in []string
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			in = append(in, lines[i])
		}
		var out []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		c.input, c.want = strings.Join(in, "\n"), strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases
}

func TestCanonicalize(t *testing.T) {
	cases := readCases(t, "../testdata/events/canonical.txt")
	if len(cases) < 10 {
		t.Fatalf("read %d cases, want at least 10", len(cases))
	}
	for _, c := range cases {
		got, err := events.Canonicalize([]byte(c.input))
		if want, ok := strings.CutPrefix(c.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("line %d: err=%v, want error containing %q", c.line, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("line %d: unexpected error %v", c.line, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("line %d: got %s, want %s", c.line, got, c.want)
		}
		again, err := events.Canonicalize(got)
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("line %d: not idempotent: %s -> %s (%v)", c.line, got, again, err)
		}
	}
}

// testEvent returns a valid, hashed event made by a seeded generator.
func testEvent(t testing.TB, rng *rand.Rand, head events.Head, lamport uint64) *events.Event {
	t.Helper()
	ids := events.NewIDSource(rng)
	wall := time.Date(2026, 11, 22, 10, 0, 0, int(rng.Int63n(1e9)), time.UTC)
	d := events.Draft{
		Type:    events.TokenSet,
		Entity:  ids.New(wall).String(),
		Path:    "color.base.blue",
		Parents: []ulid.ULID{ids.New(wall), ids.New(wall)},
		Changes: events.Changes{
			{Field: "$value", Value: json.RawMessage(`"#0000ff"`)},
			{Field: "$type", Value: json.RawMessage(`"color"`)},
		},
		Actor: "admin",
	}
	return events.Stamp(d, "design", "paris", head, lamport, ids.New(wall), wall)
}

func TestStampAndCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	e := testEvent(t, rng, events.Head{}, 7)
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if e.Seq != 1 || !e.PrevHash.IsZero() || e.Lamport != 7 {
		t.Fatalf("seq=%d prevHash=%s lamport=%d, want 1, zero, 7", e.Seq, e.PrevHash, e.Lamport)
	}
	if e.Changes[0].Field != "$type" {
		t.Fatalf("changes not sorted: %v", e.Changes)
	}
	b := e.Marshal()
	got, err := events.Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !bytes.Equal(got.Marshal(), b) {
		t.Fatalf("round trip changed the bytes")
	}
	if got.Hash != e.Hash || !got.VerifyHash() {
		t.Fatalf("hash: got %s, want %s", got.Hash, e.Hash)
	}
	// Every single-bit flip is detected.
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if _, err := events.Unmarshal(c); err == nil {
			t.Fatalf("flip at byte %d not detected", i)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	e := testEvent(t, rng, events.Head{Seq: 4, Hash: events.Hash{1, 2, 3}}, 9)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "project", "site", "seq", "lamport", "wall", "actor", "type", "entity", "path", "parents", "changes", "prevHash", "hash"} {
		if !bytes.Contains(b, []byte(`"`+key+`":`)) {
			t.Errorf("JSON lacks %q: %s", key, b)
		}
	}
	got, err := events.ParseJSON(b)
	if err != nil {
		t.Fatalf("ParseJSON: %v", err)
	}
	if !bytes.Equal(got.Marshal(), e.Marshal()) {
		t.Fatalf("JSON round trip changed the event:\n%s", b)
	}
}

func TestParseJSONRefuses(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	e := testEvent(t, rng, events.Head{}, 1)
	good, _ := json.Marshal(e)
	tamper := func(old, new string) []byte {
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	// Two values each within MaxValueBytes, too big together.
	big := testEvent(t, rng, events.Head{}, 1)
	half := json.RawMessage(`"` + strings.Repeat("x", events.MaxChangesBytes/2) + `"`)
	big.Changes = events.Changes{{Field: "$description", Value: half}, {Field: "$value", Value: half}}
	big.Hash = big.ComputeHash()
	tooBig, _ := json.Marshal(big)
	for name, tc := range map[string]struct {
		in   []byte
		code string
	}{
		"not json":       {[]byte(`{"id":`), events.EMALFORMED},
		"unknown field":  {tamper(`{"id"`, `{"extra":1,"id"`), events.EMALFORMED},
		"duplicate key":  {tamper(`{"id"`, `{"site":"x","id"`), events.EMALFORMED},
		"edited value":   {tamper(`#0000ff`, `#ff0000`), events.EINVALID},
		"bad site":       {tamper(`"site":"paris"`, `"site":"Paris!"`), events.EINVALID},
		"zero seq":       {tamper(`"seq":1`, `"seq":0`), events.EINVALID},
		"unknown type":   {tamper(`"token.set"`, `"token.explode"`), events.EINVALID},
		"invalid utf8":   {tamper(`admin`, "adm\xffn"), events.EMALFORMED},
		"bad wall":       {tamper(`"wall":"`, `"wall":"x`), events.EMALFORMED},
		"edited actor":   {tamper(`admin`, `root`), events.EINVALID},
		"edited parents": {tamper(`"parents":["`, `"parents":["0`), events.EMALFORMED},
		"values too big": {tooBig, events.EINVALID},
	} {
		_, err := events.ParseJSON(tc.in)
		if got := events.ErrorCode(err); got != tc.code {
			t.Errorf("%s: code=%q (%v), want %q", name, got, err, tc.code)
		}
	}
}

func TestChains(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	c := events.NewChains()
	e1 := testEvent(t, rng, events.Head{}, 1)
	if err := c.Check(e1); err != nil {
		t.Fatalf("first link: %v", err)
	}
	c.Advance(e1)
	e2 := testEvent(t, rng, events.Head{Seq: 1, Hash: e1.Hash}, 2)
	e3 := testEvent(t, rng, events.Head{Seq: 2, Hash: e2.Hash}, 3)
	var gap *events.GapError
	if err := c.Check(e3); !errors.As(err, &gap) || gap.Have != 1 || gap.Want != 3 {
		t.Fatalf("e3 before e2: err=%v, want GapError have 1 want 3", err)
	}
	if err := c.Check(e2); err != nil {
		t.Fatalf("e2: %v", err)
	}
	c.Advance(e2)
	var ce *events.ChainError
	if err := c.Check(e2); !errors.As(err, &ce) {
		t.Fatalf("e2 twice: err=%v, want ChainError", err)
	}
	forged := testEvent(t, rng, events.Head{Seq: 2, Hash: events.Hash{9}}, 3)
	if err := c.Check(forged); !errors.As(err, &ce) {
		t.Fatalf("wrong prevHash: err=%v, want ChainError", err)
	}
	e3.Actor = "mallory" // edited after hashing
	if err := c.Check(e3); !errors.As(err, &ce) {
		t.Fatalf("edited event: err=%v, want ChainError", err)
	}
}

func TestClockAndPositions(t *testing.T) {
	var c events.Clock
	c.Witness(5)
	c.Witness(3)
	if got := c.Tick(); got != 6 {
		t.Fatalf("tick=%d, want 6", got)
	}
	a := events.Position{Lamport: 2, Site: "b", Seq: 1}
	for _, tc := range []struct {
		q    events.Position
		want int
	}{
		{events.Position{Lamport: 3, Site: "a", Seq: 1}, -1},
		{events.Position{Lamport: 2, Site: "c", Seq: 1}, -1},
		{events.Position{Lamport: 2, Site: "b", Seq: 2}, -1},
		{events.Position{Lamport: 2, Site: "b", Seq: 1}, 0},
		{events.Position{Lamport: 1, Site: "z", Seq: 9}, 1},
	} {
		if got := a.Compare(tc.q); got != tc.want {
			t.Errorf("%v vs %v: %d, want %d", a, tc.q, got, tc.want)
		}
	}
}

func TestIDSourceMonotonic(t *testing.T) {
	ids := events.NewIDSource(rand.New(rand.NewSource(5)))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := ids.New(now)
	for i := 0; i < 1000; i++ {
		id := ids.New(now)
		if id.Compare(prev) <= 0 {
			t.Fatalf("id %d not increasing: %s after %s", i, id, prev)
		}
		prev = id
	}
}

func TestVector(t *testing.T) {
	a := events.Vector{"paris": 3, "lyon": 1}
	b := events.Vector{"paris": 1, "lyon": 4, "oslo": 2}
	if a.Covers(b) || b.Covers(a) {
		t.Fatalf("concurrent vectors reported as covering")
	}
	gaps := a.Missing(b)
	if len(gaps) != 2 || gaps[0] != (events.Gap{Site: "lyon", From: 2, To: 4}) || gaps[1] != (events.Gap{Site: "oslo", From: 1, To: 2}) {
		t.Fatalf("missing=%v", gaps)
	}
	m := a.Clone()
	m.Merge(b)
	if !m.Covers(a) || !m.Covers(b) || m.Total() != 9 {
		t.Fatalf("merge=%v", m)
	}
	if got, want := m.String(), "{lyon:4 oslo:2 paris:3}"; got != want {
		t.Fatalf("String=%q, want %q", got, want)
	}
}

func TestErrors(t *testing.T) {
	err := events.WrapError(events.ENOTFOUND, "no such token", errors.New("pebble: not found"))
	wrapped := errors.Join(errors.New("context"), err)
	if got := events.ErrorCode(wrapped); got != events.ENOTFOUND {
		t.Fatalf("code=%q", got)
	}
	if got := events.ErrorMessage(wrapped); got != "no such token" {
		t.Fatalf("message=%q", got)
	}
	if got := events.ErrorMessage(errors.New("secret detail")); strings.Contains(got, "secret") {
		t.Fatalf("internal detail leaked: %q", got)
	}
}

func TestSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.New(rand.NewSource(1)))
	payload := []byte(`{"a":1}`)
	s := events.Sign(payload, priv)
	if err := s.Verify(payload); err != nil || s.KeyID != events.KeyID(pub) {
		t.Fatalf("verify: %v", err)
	}
	if err := s.Verify([]byte(`{"a":2}`)); err == nil {
		t.Fatal("an altered payload verified")
	}
	_, other, _ := ed25519.GenerateKey(rand.New(rand.NewSource(2)))
	forged := *events.Sign(payload, other)
	forged.PublicKey = s.PublicKey // claim the first key
	if err := forged.Verify(payload); err == nil {
		t.Fatal("a signature by another key verified")
	}
	badID := *s
	badID.KeyID = "0000000000000000"
	if err := badID.Verify(payload); err == nil {
		t.Fatal("a wrong key id verified")
	}
	var none *events.Signature
	if err := none.Verify(payload); err == nil {
		t.Fatal("no signature verified")
	}
}

func BenchmarkParseJSON(b *testing.B) {
	good, _ := json.Marshal(testEvent(b, rand.New(rand.NewSource(1)), events.Head{}, 1))
	b.SetBytes(int64(len(good)))
	for b.Loop() {
		if _, err := events.ParseJSON(good); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	e := testEvent(b, rand.New(rand.NewSource(1)), events.Head{}, 1)
	var buf []byte
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
}

// TestMembers: Members then AppendObject is Canonicalize, for objects; what
// Canonicalize refuses, Members refuses too, and it refuses non-objects.
func TestMembers(t *testing.T) {
	for _, in := range []string{`{}`, ` {"b":[1.50,{"z":1,"a":2}],"a":"\u00e9","":null} `, `{"x":{"y":{"z":{}}}}`} {
		ms, err := events.Members([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want, _ := events.Canonicalize([]byte(in))
		if got := events.AppendObject(nil, ms); !bytes.Equal(got, want) {
			t.Fatalf("%s: got %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{`[]`, `"a"`, `null`, `{"a":1,"a":2}`, `{"a":1} x`, `{"a":"\xff"}`, `{`, strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70)} {
		if _, err := events.Members([]byte(in)); err == nil {
			t.Fatalf("%q: accepted", in)
		}
	}
}

// TestCanonicalizeNestedDisorder: objects out of order at every level of a
// deep nesting canonicalize to sorted ones. Each level falls back to
// sorting; were a fallback to read its members again, this input would
// take 2^60 steps, not a few thousand.
func TestCanonicalizeNestedDisorder(t *testing.T) {
	const depth = 60
	in, want := `0`, `0`
	for i := 0; i < depth; i++ {
		in = `{"b":` + in + `,"a":1}`
		want = `{"a":1,"b":` + want + `}`
	}
	got, err := events.Canonicalize([]byte(in))
	if err != nil || string(got) != want {
		t.Fatalf("got %s (%v)", got, err)
	}
}

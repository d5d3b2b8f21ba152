package archive

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
)

// referenceWithIdentity is withIdentity the slow, obvious way: through a
// map and encoding/json, then canonicalized.
func referenceWithIdentity(t *testing.T, ext json.RawMessage, id, rev string, lamport uint64) []byte {
	t.Helper()
	m := map[string]any{}
	if ext != nil {
		if err := json.Unmarshal(ext, &m); err != nil {
			t.Fatal(err)
		}
	}
	m[ExtensionKey] = map[string]any{"id": id, "rev": rev, "lamport": lamport}
	b, _ := json.Marshal(m)
	c, err := events.Canonicalize(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWithIdentityMatchesReference: the identity is added in key order,
// replaces an older one, keeps every other member, and the result is
// canonical, for $extensions whose keys sort before, after and around it.
func TestWithIdentityMatchesReference(t *testing.T) {
	exts := []string{"", `{}`, `{"a":1}`, `{"zz":{"b":[1,2],"a":"<&>"}}`, `{"a":1,"org.dss-sync":{"id":"old"},"zz":2}`,
		`{"org.dss-sync.other":true,"org":null,"\u2028":"x"}`}
	for _, e := range exts {
		var ext json.RawMessage
		if e != "" {
			c, err := events.Canonicalize([]byte(e))
			if err != nil {
				t.Fatal(err)
			}
			ext = c
		}
		got, err := withIdentity(ext, "01J0000000000000000000000Z", "3-paris-\"q\"", 1<<40)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		want := referenceWithIdentity(t, ext, "01J0000000000000000000000Z", "3-paris-\"q\"", 1<<40)
		if !bytes.Equal(got, want) {
			t.Errorf("withIdentity(%s)\n got %s\nwant %s", e, got, want)
		}
	}
}

// TestComponentJSONIsCanonical: a component's line in components.json is
// the canonical form of its fields and identity.
func TestComponentJSONIsCanonical(t *testing.T) {
	c := &projections.Component{Name: "Button", ID: "01J0000000000000000000000Z", Rev: "2-paris", Lamport: 7,
		Description: json.RawMessage(`"Primary"`), Props: json.RawMessage(`{"size":{"type":"string"}}`),
		Tokens: json.RawMessage(`["color.brand"]`), Variants: json.RawMessage(`{"primary":{}}`)}
	got, err := componentJSON(c)
	if err != nil {
		t.Fatal(err)
	}
	want, err := events.Canonicalize(got)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("componentJSON is not canonical: %s (%v)", got, err)
	}
	var back map[string]json.RawMessage
	json.Unmarshal(got, &back)
	if len(back) != 5 || string(back["tokens"]) != `["color.brand"]` || !bytes.Contains(back["$extensions"], []byte(`"lamport":7`)) {
		t.Fatalf("componentJSON lost fields: %s", got)
	}
}

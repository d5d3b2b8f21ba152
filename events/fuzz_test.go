package events_test

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"

	"github.com/dss-sync/dss-sync/events"
)

// FuzzUnmarshal feeds arbitrary bytes to the stored-event decoder: it must
// never panic, and whatever it accepts must re-encode to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	rng := rand.New(rand.NewSource(1))
	f.Add(testEvent(f, rng, events.Head{}, 1).Marshal())
	f.Add(testEvent(f, rng, events.Head{Seq: 9, Hash: events.Hash{7}}, 99).Marshal())
	f.Add([]byte("DE\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := events.Unmarshal(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), b) {
			t.Fatalf("accepted bytes do not round-trip")
		}
		_ = e.Validate()
	})
}

// FuzzParseJSON feeds arbitrary JSON to the untrusted-event parser: it must
// never panic; an accepted event is valid, hash-correct and round-trips.
func FuzzParseJSON(f *testing.F) {
	rng := rand.New(rand.NewSource(2))
	good, _ := json.Marshal(testEvent(f, rng, events.Head{}, 1))
	f.Add(good)
	f.Add([]byte(`{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","changes":{"a":[1,{"b":null}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := events.ParseJSON(b)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil || !e.VerifyHash() {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := events.ParseJSON(again)
		if err != nil || !bytes.Equal(e2.Marshal(), e.Marshal()) {
			t.Fatalf("re-encoded event differs: %v", err)
		}
	})
}

// FuzzCanonicalize checks that canonical JSON is valid JSON, idempotent, and
// agrees with encoding/json about validity wherever encoding/json is strict.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.0,2e3]}`, `"\ud83d\ude00"`, `[null,true,false,-0.0]`, `{"a":{"a":{}}}`, `1e21`,
		`{"a":{"d":1,"c":{"f":2,"e":3}},"b":[{"y":1,"x":2}],"\u0061b":0}`, `{"a":1,"b":2,"c":{"z":1,"y":[]},"a":3}`, `{"\n":1,"\t":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := events.Canonicalize(b)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not valid JSON: %q", c)
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		again, err := events.Canonicalize(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not idempotent: %q -> %q (%v)", c, again, err)
		}
		// The same value: what encoding/json reads from both is equal.
		var in, out any
		if json.Unmarshal(b, &in) != nil || json.Unmarshal(c, &out) != nil || !reflect.DeepEqual(in, out) {
			t.Fatalf("canonical form is another value: %q -> %q", b, c)
		}
	})
}

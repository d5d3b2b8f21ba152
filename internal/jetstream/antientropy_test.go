package jetstream_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/events/eventstest"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/jetstream/jetstreamtest"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/nats-io/nats.go"
)

// TestResponderAnswersFromTheLog: a real store behind a real responder;
// a Fetcher gets the vectors and pages of one origin's events, in seq
// order, and an empty page past the end.
func TestResponderAnswersFromTheLog(t *testing.T) {
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	chain := eventstest.NewChain(1)
	var evs []*events.Event
	for i := 0; i < 2500; i++ {
		site := "lyon"
		if i%5 == 0 {
			site = "nice"
		}
		evs = append(evs, chain.Next("design", site, ""))
	}
	err = store.Update(t.Context(), "design", func(tx projections.Tx) error {
		for _, e := range evs {
			if _, err := tx.AppendLog(e, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := jetstreamtest.RunServer(t)
	r, err := jetstream.Serve(jetstreamtest.Connect(t, srv), "lyon", store, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := jetstream.Fetcher{Conn: jetstreamtest.Connect(t, srv), Site: "lyon"}
	vs, err := f.Vectors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(vs); got != "map[design:{lyon:2000 nice:500}]" {
		t.Fatalf("vectors: %s", got)
	}
	var got []*events.Event
	for after := uint64(0); ; {
		page, err := f.Events(t.Context(), "design", "lyon", after)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > jetstream.MaxFetch {
			t.Fatalf("a page of %d events", len(page))
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if len(got) != 2000 || got[0].Seq != 1 || got[1999].Seq != 2000 {
		t.Fatalf("fetched %d events of lyon", len(got))
	}
}

// TestFetcherRefusesWrongAnswers: a peer that answers with another site's
// vectors, events out of the asked order, junk, or an error gets an error,
// never events folded.
func TestFetcherRefusesWrongAnswers(t *testing.T) {
	srv := jetstreamtest.RunServer(t)
	nc := jetstreamtest.Connect(t, srv)
	chain := eventstest.NewChain(2)
	e1, e2 := chain.Next("design", "lyon", ""), chain.Next("design", "lyon", "")
	line := func(e *events.Event) string { b, _ := json.Marshal(e); return string(b) + "\n" }
	answers := map[string]func(m *nats.Msg){
		"another site's vectors": func(m *nats.Msg) { m.Respond([]byte(`{"site":"nice","projects":{}}`)) },
		"a bad project id":       func(m *nats.Msg) { m.Respond([]byte(`{"site":"lyon","projects":{"../x":{}}}`)) },
		"events skipping a seq":  func(m *nats.Msg) { m.Respond([]byte(line(e2))) },
		"events out of order":    func(m *nats.Msg) { m.Respond([]byte(line(e2) + line(e1))) },
		"junk":                   func(m *nats.Msg) { m.Respond([]byte("{not json\n")) },
		"an error": func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set(jetstream.HeaderError, "store is closed")
			m.RespondMsg(r)
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			subs := []*nats.Subscription{}
			for _, subj := range []string{"dss.lyon.sync.vectors", "dss.lyon.sync.events"} {
				s, err := nc.Subscribe(subj, answer)
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, s)
			}
			defer func() {
				for _, s := range subs {
					s.Unsubscribe()
				}
			}()
			f := jetstream.Fetcher{Conn: jetstreamtest.Connect(t, srv), Site: "lyon"}
			_, verr := f.Vectors(t.Context())
			evs, eerr := f.Events(t.Context(), "design", "lyon", 0)
			if strings.Contains(name, "vectors") || name == "a bad project id" {
				if verr == nil {
					t.Fatal("vectors accepted")
				}
				return
			}
			if eerr == nil {
				t.Fatalf("events accepted: %d", len(evs))
			}
		})
	}
}

func TestSettled(t *testing.T) {
	before := map[string]events.Vector{"a": {"paris": 5, "lyon": 3}, "b": {"paris": 1}}
	now := map[string]events.Vector{"a": {"paris": 9, "lyon": 2, "nice": 4}, "c": {"paris": 1}}
	got := fmt.Sprint(jetstream.Settled(before, now))
	if want := "map[a:{lyon:2 paris:5}]"; got != want {
		t.Fatalf("Settled = %s, want %s", got, want)
	}
}

func FuzzParseFetchRequest(f *testing.F) {
	for _, s := range []string{
		`{"project":"design","origin":"lyon","after":3,"limit":1000}`,
		`{"project":"design","origin":"lyon","after":0,"limit":0}`,
		`{"project":"Design","origin":"lyon","limit":1}`,
		`{"project":"design","origin":"lyon","limit":1,"x":1}`,
		`{"project":"design","origin":"lyon","limit":1}{}`,
		`[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := jetstream.ParseFetchRequest(b)
		if err != nil {
			return
		}
		if !events.ValidProject(req.Project) || !events.ValidSite(req.Origin) || req.Limit < 1 || req.Limit > jetstream.MaxFetch {
			t.Fatalf("accepted %+v", req)
		}
	})
}

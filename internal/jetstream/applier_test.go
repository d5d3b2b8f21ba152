package jetstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/jetstream/jetstreamtest"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

var quiet = slog.New(slog.DiscardHandler)

// retryUntil polls cond until it holds or the deadline passes.
func retryUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClosed waits for ch to close: a runner's Run returning after its
// context is cancelled. A runner that does not return fails the test with
// every goroutine's stack, rather than hanging it until the go test timeout.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 4<<20)
		t.Fatalf("after 30 s, still waiting for %s; goroutines:\n%s", what, buf[:runtime.Stack(buf, true)])
	}
}

// node is a site: a Pebble store, its own embedded JetStream server and an
// outbox publishing its events there.
type node struct {
	site  *projections.Site
	store *pebble.Store
	srv   *jetstream.Server
}

func startNode(t *testing.T, ctx context.Context, id string, seed int64) *node {
	t.Helper()
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(seed))
	site, err := projections.NewSite(projections.SiteConfig{ID: id, Storage: store, Rand: lockedReader{&mu, rng}})
	if err != nil {
		t.Fatal(err)
	}
	srv := jetstreamtest.RunServer(t)
	o, err := jetstream.NewOutbox(jetstream.OutboxConfig{Site: id, Conn: jetstreamtest.Connect(t, srv), Feed: store, Cursor: &memCursor{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, ctx, o.Run)
	return &node{site: site, store: store, srv: srv}
}

type lockedReader struct {
	mu *sync.Mutex
	r  *rand.Rand
}

func (l lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

func runInBackground(t *testing.T, ctx context.Context, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); waitClosed(t, done, "a runner started in the background to stop") })
}

// follow makes to apply from's stream, as a peer does.
func follow(t *testing.T, ctx context.Context, to, from *node, fromID, toID string) {
	t.Helper()
	a, err := jetstream.NewApplier(jetstream.ApplierConfig{
		Conn: jetstreamtest.Connect(t, from.srv), Stream: jetstream.StreamName(fromID),
		FilterSubjects: jetstream.StreamSubjects(fromID), Durable: toID + "-from-" + fromID,
		Site: to.site, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, ctx, a.Run)
}

func dumpStore(t *testing.T, s projections.Storage) []byte {
	t.Helper()
	var b bytes.Buffer
	s.View(context.Background(), "design", func(r projections.Reader) error {
		return r.Scan(nil, nil, func(k, v []byte) error { fmt.Fprintf(&b, "%q=%x\n", k, v); return nil })
	})
	return b.Bytes()
}

// TestTwoSitesConvergeThroughJetStream: two sites, each with its own
// embedded JetStream, write concurrently to the same tokens while each
// applies the other's stream; they end with byte-identical projections,
// the same open conflicts and equal version vectors.
func TestTwoSitesConvergeThroughJetStream(t *testing.T) {
	ctx := context.Background()
	paris, lyon := startNode(t, ctx, "paris", 1), startNode(t, ctx, "lyon", 2)
	follow(t, ctx, lyon, paris, "paris", "lyon")
	follow(t, ctx, paris, lyon, "lyon", "paris")
	if _, err := paris.site.CreateProject(ctx, "design", "Design", "alice"); err != nil {
		t.Fatal(err)
	}
	retryUntil(t, 10*time.Second, "the project to reach lyon", func() bool {
		_, err := lyon.site.Project(ctx, "design")
		return err == nil
	})
	var wg sync.WaitGroup
	for i, n := range []*node{paris, lyon} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(i)))
			for j := 0; j < 150; j++ {
				path := fmt.Sprintf("color.c%d", rng.Intn(20))
				c := projections.Change{Path: path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"color","$value":"#%06x"}`, rng.Intn(1<<24)))}
				if rng.Intn(8) == 0 {
					c = projections.Change{Op: projections.OpDelete, Path: path}
				}
				n.site.ApplyOne(ctx, "design", "writer", c) // some are refused (404 deletes): fine
			}
		}()
	}
	wg.Wait()
	retryUntil(t, 30*time.Second, "equal version vectors", func() bool {
		a, _ := paris.site.Project(ctx, "design")
		b, _ := lyon.site.Project(ctx, "design")
		return a != nil && b != nil && a.Vector.Equal(b.Vector)
	})
	if !bytes.Equal(dumpStore(t, paris.store), dumpStore(t, lyon.store)) {
		t.Fatal("equal vectors but different projections")
	}
	ca, _ := paris.site.Conflicts(ctx, "design")
	cb, _ := lyon.site.Conflicts(ctx, "design")
	ja, _ := json.Marshal(ca)
	jb, _ := json.Marshal(cb)
	if !bytes.Equal(ja, jb) {
		t.Fatal("different conflicts")
	}
	p, _ := paris.site.Project(ctx, "design")
	t.Logf("converged: %d events, %d tokens, %d open conflicts", p.Counts.Events, p.Counts.Tokens, len(ca))
	if len(ca) == 0 {
		t.Fatal("concurrent writes to 20 tokens made no conflict: the test no longer tests merging")
	}
}

// TestApplierMessages publishes events of a simulated site into a stream,
// several per message, out of order, with duplicates and a poison message.
func TestApplierMessages(t *testing.T) {
	ctx := context.Background()
	srv := jetstreamtest.RunServer(t)
	nc := jetstreamtest.Connect(t, srv)
	js, _ := natsjs.New(nc)
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "INBOX", Subjects: []string{"in.>"}}); err != nil {
		t.Fatal(err)
	}
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	site, _ := projections.NewSite(projections.SiteConfig{ID: "lyon", Storage: store})
	var mu sync.Mutex
	var receipts []*projections.Receipt
	a, _ := jetstream.NewApplier(jetstream.ApplierConfig{Conn: nc, Stream: "INBOX", Durable: "lyon", Site: site, Logger: quiet,
		OnReceipt: func(_ string, rc *projections.Receipt) { mu.Lock(); receipts = append(receipts, rc); mu.Unlock() }})
	runInBackground(t, ctx, a.Run)

	// A simulated site makes 20 events.
	sim, evs := simEvents(t, 9, 5)
	ndjson := func(es []*events.Event) []byte {
		var b bytes.Buffer
		for _, e := range es {
			j, _ := json.Marshal(e)
			b.Write(j)
			b.WriteByte('\n')
		}
		return b.Bytes()
	}
	// The second half first: held, for want of its predecessors.
	js.Publish(ctx, "in.design", ndjson(evs[10:]))
	retryUntil(t, 10*time.Second, "the second half to be held", func() bool {
		held, _ := site.Pending(ctx, "design")
		return len(held) == 10
	})
	// A poison message, then the first half (with two duplicates), then all again.
	js.Publish(ctx, "in.design", []byte("{not an event}\n"))
	js.Publish(ctx, "in.design", ndjson(evs[:12]))
	retryUntil(t, 10*time.Second, "all 20 events applied", func() bool {
		p, err := site.Project(ctx, "design")
		return err == nil && p.Counts.Events == 20
	})
	js.Publish(ctx, "in.design", ndjson(evs))
	if held, _ := site.Pending(ctx, "design"); len(held) != 0 {
		t.Fatalf("held %v", held)
	}
	if !bytes.Equal(dumpStore(t, store), dumpStore(t, sim.Storage())) {
		t.Fatal("the applied projection differs from the origin's")
	}
	// The receipts are awaited themselves: the consumer's pending count
	// can read 0 a moment before the last message is delivered, which
	// once let this test read them too early (under -race, in CI).
	counts := func() (held, dups int) {
		mu.Lock()
		defer mu.Unlock()
		for _, rc := range receipts {
			held += len(rc.Held)
			dups += rc.Duplicates
		}
		return held, dups
	}
	retryUntil(t, 10*time.Second, "receipts of 10 held events and at least 20 duplicates", func() bool {
		held, dups := counts()
		return held == 10 && dups >= 20
	})
	cons, _ := js.Consumer(ctx, "INBOX", "lyon")
	retryUntil(t, 5*time.Second, "every message acknowledged or terminated", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if held, dups := counts(); held != 10 {
		t.Fatalf("receipts show %d held, want 10", held) // no more held after the wait: none held twice
	} else if dups < 20 {
		t.Fatalf("receipts show %d duplicates, want at least 20", dups)
	}
}

// TestApplierReplacesAConsumerLeftUnacknowledged: a process of the site
// crashed holding 15 delivered, unacknowledged messages of its consumer
// (five were acknowledged). The applier started next replaces the consumer
// from its acknowledged floor and applies everything at once, instead of
// waiting 30 s for JetStream to redeliver them.
func TestApplierReplacesAConsumerLeftUnacknowledged(t *testing.T) {
	ctx := context.Background()
	srv := jetstreamtest.RunServer(t)
	nc := jetstreamtest.Connect(t, srv)
	js, _ := natsjs.New(nc)
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "FROM", Subjects: []string{"from.>"}}); err != nil {
		t.Fatal(err)
	}
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	site, _ := projections.NewSite(projections.SiteConfig{ID: "lyon", Storage: store})
	_, evs := simEvents(t, 3, 19)
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if _, err := js.Publish(ctx, "from.design", b); err != nil {
			t.Fatal(err)
		}
	}
	// The crashed run: its consumer, as the applier makes it, fetched all
	// 20, applied and acknowledged the first five, then died.
	cons, err := js.CreateConsumer(ctx, "FROM", natsjs.ConsumerConfig{Durable: "lyon", AckPolicy: natsjs.AckExplicitPolicy, AckWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(20)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if n < 5 {
			e, _ := events.ParseJSON(m.Data())
			if _, err := site.Receive(ctx, "design", []*events.Event{e}); err != nil {
				t.Fatal(err)
			}
			m.Ack()
		}
		n++
	}
	retryUntil(t, 5*time.Second, "the crashed run's state", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 15 && info.AckFloor.Stream == 5
	})

	a, _ := jetstream.NewApplier(jetstream.ApplierConfig{Conn: nc, Stream: "FROM", Durable: "lyon", Site: site, Logger: quiet})
	runInBackground(t, ctx, a.Run)
	retryUntil(t, 10*time.Second, "all 20 events applied, long before the 30 s ack wait", func() bool {
		p, err := site.Project(ctx, "design")
		return err == nil && p.Counts.Events == 20
	})
	cons, _ = js.Consumer(ctx, "FROM", "lyon")
	retryUntil(t, 5*time.Second, "the new consumer drained", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 20
	})
}

// simEvents has a simulated site, in memory, make 20 events of project
// design: its creation, then 19 writes cycling over that many paths.
func simEvents(t testing.TB, seed int64, paths int) (*projections.Site, []*events.Event) {
	t.Helper()
	ctx := context.Background()
	sim, err := projections.NewSite(projections.SiteConfig{ID: "sim", Storage: projections.NewMemory(), Rand: rand.New(rand.NewSource(seed))})
	if err != nil {
		t.Fatal(err)
	}
	sim.CreateProject(ctx, "design", "", "sim")
	for i := 0; i < 19; i++ {
		sim.ApplyOne(ctx, "design", "sim", projections.Change{Path: fmt.Sprintf("n.t%d", i%paths), Data: json.RawMessage(fmt.Sprintf(`{"$type":"number","$value":%d}`, i))})
	}
	var evs []*events.Event
	sim.Storage().View(ctx, "design", func(r projections.Reader) error {
		return r.ScanEvents(events.Position{}, func(e *events.Event) error { evs = append(evs, e); return nil })
	})
	return sim, evs
}

// FuzzDecodeEvents: whatever a peer sends, decoding never panics, and what
// it accepts is one strictly parsed event per non-blank line.
func FuzzDecodeEvents(f *testing.F) {
	_, evs := simEvents(f, 1, 3)
	var all []byte
	for _, e := range evs[:3] {
		b, _ := json.Marshal(e)
		all = append(append(all, b...), '\n')
	}
	f.Add(all)
	f.Add(all[:len(all)/2])
	f.Add([]byte("\n\n  \n"))
	f.Add([]byte(`{"id":"x"}` + "\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := jetstream.DecodeEvents(b)
		if err != nil {
			return
		}
		lines := 0
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				lines++
			}
		}
		if len(got) != lines {
			t.Fatalf("%d events from %d lines", len(got), lines)
		}
		for _, e := range got {
			if err := e.Validate(); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
		}
	})
}

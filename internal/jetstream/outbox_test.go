package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/events/eventstest"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/jetstream/jetstreamtest"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

type memCursor struct{ n uint64 }

func (c *memCursor) Load() (uint64, error) { return c.n, nil }
func (c *memCursor) Store(n uint64) error  { c.n = n; return nil }

func startOutbox(t *testing.T, ctx context.Context, srv *jetstream.Server, store *pebble.Store, cur jetstream.Cursor) (*jetstream.Outbox, context.CancelFunc) {
	t.Helper()
	nc := jetstreamtest.Connect(t, srv)
	o, err := jetstream.NewOutbox(jetstream.OutboxConfig{Site: "paris", Conn: nc, Feed: store, Cursor: cur, Logger: slog.New(slog.DiscardHandler), Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); waitClosed(t, done, "the outbox to stop") })
	return o, func() { cancel(); waitClosed(t, done, "the outbox to stop") }
}

func appendN(t *testing.T, store *pebble.Store, chain *eventstest.Chain, n int) {
	t.Helper()
	log := projections.NewLog(store)
	for i := 0; i < n; i++ {
		if _, err := log.Append(context.Background(), chain.Next("design", "paris", "")); err != nil {
			t.Fatal(err)
		}
	}
}

// streamContents reads the whole stream and checks that message i carries
// commit i and a unique event id.
func streamContents(t *testing.T, srv *jetstream.Server) int {
	t.Helper()
	ctx := context.Background()
	js, _ := natsjs.New(jetstreamtest.Connect(t, srv))
	st, err := js.Stream(ctx, jetstream.StreamName("paris"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	ids := map[string]bool{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if got := m.Header.Get(jetstream.HeaderCommit); got != fmt.Sprint(seq) {
			t.Fatalf("message %d carries commit %s", seq, got)
		}
		e, err := events.ParseJSON(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if ids[e.ID.String()] {
			t.Fatalf("event %s published twice", e.ID)
		}
		ids[e.ID.String()] = true
		if m.Header.Get("Nats-Msg-Id") != e.ID.String() {
			t.Fatalf("message %d: Nats-Msg-Id %q", seq, m.Header.Get("Nats-Msg-Id"))
		}
	}
	return len(ids)
}

func waitPublished(t *testing.T, o *jetstream.Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxPublishesEachEventOnce(t *testing.T) {
	ctx := context.Background()
	srv := jetstreamtest.RunServer(t)
	store, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	chain := eventstest.NewChain(1)
	cur := &memCursor{}

	// Committed while no outbox ran (a crash between commit and publish).
	appendN(t, store, chain, 100)
	o, stop := startOutbox(t, ctx, srv, store, cur)
	waitPublished(t, o)
	appendN(t, store, chain, 150)
	waitPublished(t, o)
	stop()
	if got := streamContents(t, srv); got != 250 {
		t.Fatalf("stream holds %d events, want 250", got)
	}
	if cur.n != 250 {
		t.Fatalf("cursor %d, want 250", cur.n)
	}

	// Restart with a stale cursor: the stream's own position wins, nothing twice.
	cur.n = 10
	appendN(t, store, chain, 5)
	o, stop = startOutbox(t, ctx, srv, store, cur)
	waitPublished(t, o)
	stop()
	if got := streamContents(t, srv); got != 255 {
		t.Fatalf("stream holds %d events after restart, want 255", got)
	}

	// The JetStream store lost the stream: it is rebuilt from the log.
	js, _ := natsjs.New(jetstreamtest.Connect(t, srv))
	if err := js.DeleteStream(ctx, jetstream.StreamName("paris")); err != nil {
		t.Fatal(err)
	}
	o, stop = startOutbox(t, ctx, srv, store, cur)
	waitPublished(t, o)
	stop()
	if got := streamContents(t, srv); got != 255 {
		t.Fatalf("rebuilt stream holds %d events, want 255", got)
	}
	if o.Lag() != 0 {
		t.Fatalf("lag %d", o.Lag())
	}
	var payload map[string]any
	m, _ := js.Stream(ctx, jetstream.StreamName("paris"))
	msg, _ := m.GetMsg(ctx, 1)
	if err := json.Unmarshal(msg.Data, &payload); err != nil || payload["project"] != "design" {
		t.Fatalf("payload %s", msg.Data)
	}
}

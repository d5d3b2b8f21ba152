package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Subjects and streams. Each site publishes every event it holds, its own and
// those it received, to its own stream, one message per event:
//
//	stream   DSS-<site>
//	subject  dss.<site>.ev.<project>
//	headers  Nats-Msg-Id: <event id>, Dss-Commit: <local commit number>
//	payload  the event as JSON (CONTRACT.md §2)
//
// The stream's sequence equals the site's local commit number: the outbox
// publishes commit n with Nats-Expected-Last-Sequence n-1, so a message is
// stored once, in order, or refused.
const HeaderCommit = "Dss-Commit"

// DuplicateWindow is how long a site's stream remembers message ids.
const DuplicateWindow = 5 * time.Second

// PublishAckTimeout bounds the wait for JetStream's acknowledgement of each
// event the outbox publishes, as nats.go bounds a synchronous publish (its
// default API timeout). nats.go's asynchronous publishes have no timeout of
// their own, and on a JetStream cluster an acknowledgement can be lost while
// the publisher's connection stays up: a stream leader that hands over its
// leadership (its node shutting down) drops the messages it has queued
// unanswered, and an acknowledgement on its way from a node that goes down
// goes with it. The outbox would wait for it forever; past this timeout it
// resyncs from the stream's last sequence instead (the expected last
// sequence keeps every commit stored once) and republishes what the stream
// does not hold.
const PublishAckTimeout = 5 * time.Second

// StreamName returns the name of a site's event stream.
func StreamName(site string) string { return "DSS-" + site }

// EventSubject returns the subject a site publishes a project's events on.
func EventSubject(site, project string) string { return "dss." + site + ".ev." + project }

// StreamSubjects returns the subjects of a site's stream.
func StreamSubjects(site string) []string { return []string{"dss." + site + ".ev.>"} }

// A site's inbox takes events made elsewhere that are handed to it (archive
// imports, tools): stream DSS-IN-<site>, subject dss.<site>.in.<project>,
// NDJSON payloads. Its applier consumes it; acknowledged messages are gone
// (work-queue retention): the log is the record.

// InboxStream returns the name of a site's inbox stream.
func InboxStream(site string) string { return "DSS-IN-" + site }

// InboxSubject returns the subject events for a project are handed to a site on.
func InboxSubject(site, project string) string { return "dss." + site + ".in." + project }

// EnsureInbox creates the site's inbox stream, or updates it, with the
// given number of replicas (1 on a single server; up to the cluster's size
// on a JetStream cluster).
func EnsureInbox(ctx context.Context, js natsjs.JetStream, site string, replicas int) (natsjs.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{
		Name:        InboxStream(site),
		Description: "events handed to site " + site + " for applying",
		Subjects:    []string{"dss." + site + ".in.>"},
		Storage:     natsjs.FileStorage,
		Retention:   natsjs.WorkQueuePolicy,
		MaxMsgSize:  8 << 20,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure inbox %s: %w", InboxStream(site), err)
	}
	return st, nil
}

// EnsureStream creates the site's stream, or updates it to the expected
// configuration (with the given number of replicas), and returns it.
func EnsureStream(ctx context.Context, js natsjs.JetStream, site string, replicas int) (natsjs.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{
		Name:        StreamName(site),
		Description: "dss-sync events held by site " + site,
		Subjects:    StreamSubjects(site),
		Storage:     natsjs.FileStorage,
		Retention:   natsjs.LimitsPolicy,
		// The server keeps every Nats-Msg-Id of the window in memory: two
		// minutes of a million-token import would be a million of them.
		// Exactly-once does not rest on it (the expected last sequence
		// does), so the window only has to cover a publisher's retries.
		Duplicates: DuplicateWindow,
		MaxMsgSize: 4 << 20,
		Replicas:   max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamName(site), err)
	}
	return st, nil
}

// Cursor persists the outbox's position (the last commit number JetStream
// acknowledged) where the site keeps its state.
type Cursor interface {
	Load() (uint64, error)
	Store(uint64) error
}

// Outbox publishes a site's durable commit feed to the site's stream, each
// event exactly once and in commit order, across crashes: it resumes from the
// stream's own last sequence, which is the last commit JetStream stored.
type Outbox struct {
	site   string
	js     natsjs.JetStream
	feed   events.Feed
	cursor Cursor
	logger *slog.Logger
	batch  int
	// replicas of the stream
	replicas int

	published atomic.Uint64 // last commit number JetStream acknowledged
	notify    chan struct{}
}

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	Site   string
	Conn   *nats.Conn
	Feed   events.Feed
	Cursor Cursor
	Logger *slog.Logger
	// Batch is how many events are in flight at once. Default 1024.
	Batch int
	// Replicas is the stream's replica count. Default 1.
	Replicas int
}

// NewOutbox returns an outbox; Run starts it.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	js, err := natsjs.New(cfg.Conn, natsjs.WithPublishAsyncMaxPending(4096), natsjs.WithPublishAsyncTimeout(PublishAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1024
	}
	return &Outbox{site: cfg.Site, js: js, feed: cfg.Feed, cursor: cfg.Cursor, logger: cfg.Logger, batch: cfg.Batch, replicas: cfg.Replicas, notify: make(chan struct{}, 1)}, nil
}

// Published returns the last commit number JetStream has acknowledged.
func (o *Outbox) Published() uint64 { return o.published.Load() }

// Lag returns how many durable events are not yet published.
func (o *Outbox) Lag() uint64 {
	last, pub := o.feed.Last(), o.published.Load()
	if last < pub {
		return 0
	}
	return last - pub
}

// Run publishes until ctx ends. Failures (JetStream unavailable, the stream
// changed under it) are logged and retried with backoff; Run returns only
// ctx's error.
func (o *Outbox) Run(ctx context.Context) error {
	return retry(ctx, o.logger, "outbox paused", o.run)
}

// retry runs run until ctx ends, logging each failure and waiting with an
// exponential backoff (100 ms up to 5 s) before the next attempt.
func retry(ctx context.Context, logger *slog.Logger, what string, run func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn(what, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// errStreamMoved says the stream is not where the outbox thought: resync.
var errStreamMoved = errors.New("stream sequence moved")

func (o *Outbox) run(ctx context.Context) error {
	st, err := EnsureStream(ctx, o.js, o.site, o.replicas)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	pos := info.State.LastSeq
	if saved, err := o.cursor.Load(); err == nil && saved > pos {
		o.logger.Warn("JetStream holds fewer events than it acknowledged; republishing from the log",
			"stream", StreamName(o.site), "acknowledged", saved, "stored", pos)
	}
	if last := o.feed.Last(); pos > last {
		return fmt.Errorf("stream %s has %d messages but the log only %d commits: the JetStream store does not belong to this data dir",
			StreamName(o.site), pos, last)
	}
	o.setPublished(pos)
	for {
		if err := o.feed.Wait(ctx, pos); err != nil {
			return err
		}
		batch, err := o.feed.Read(ctx, pos, o.batch)
		if err != nil {
			return fmt.Errorf("read feed: %w", err)
		}
		if len(batch) == 0 {
			continue
		}
		if pos, err = o.publish(ctx, batch); err != nil {
			return err
		}
		if err := o.cursor.Store(pos); err != nil {
			o.logger.Warn("outbox cursor not saved", "err", err)
		}
	}
}

// publish sends a batch and returns the last commit number acknowledged.
func (o *Outbox) publish(ctx context.Context, batch []events.Committed) (uint64, error) {
	futures := make([]natsjs.PubAckFuture, 0, len(batch))
	for _, c := range batch {
		msg := &nats.Msg{Subject: EventSubject(o.site, c.Event.Project), Data: c.Event.AppendJSON(nil), Header: nats.Header{}}
		msg.Header.Set(HeaderCommit, strconv.FormatUint(c.Seq, 10))
		for {
			f, err := o.js.PublishMsgAsync(msg, natsjs.WithMsgID(c.Event.ID.String()), natsjs.WithExpectLastSequence(c.Seq-1))
			if errors.Is(err, natsjs.ErrTooManyStalledMsgs) {
				select {
				case <-o.js.PublishAsyncComplete():
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					return 0, ctx.Err()
				}
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("publish commit %d: %w", c.Seq, err)
			}
			futures = append(futures, f)
			break
		}
	}
	var last uint64
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Sequence != batch[i].Seq {
				return last, fmt.Errorf("commit %d stored as stream seq %d: %w", batch[i].Seq, ack.Sequence, errStreamMoved)
			}
			last = batch[i].Seq
			o.setPublished(last)
		case err := <-f.Err():
			return last, fmt.Errorf("publish commit %d: %w", batch[i].Seq, err)
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
	return last, nil
}

func (o *Outbox) setPublished(n uint64) {
	o.published.Store(n)
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Flush waits until every event durable when it was called is published, or
// ctx ends.
func (o *Outbox) Flush(ctx context.Context) error {
	target := o.feed.Last()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for o.published.Load() < target {
		select {
		case <-o.notify:
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("outbox flush: %d of %d published: %w", o.published.Load(), target, ctx.Err())
		}
	}
	return nil
}

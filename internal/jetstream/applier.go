package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Receiver folds events made elsewhere: projections.Site.Receive.
type Receiver interface {
	Receive(ctx context.Context, project string, evs []*events.Event) (*projections.Receipt, error)
}

// ApplierConfig configures an Applier.
type ApplierConfig struct {
	Conn *nats.Conn
	// Stream and FilterSubjects select what to consume.
	Stream         string
	FilterSubjects []string
	// Durable names the consumer, whose position is JetStream's record of
	// what this site has applied from the stream.
	Durable string
	Site    Receiver
	Logger  *slog.Logger
	// Batch is the most messages applied in one transaction. Default 512.
	Batch int
	// Gather is how long to wait for more messages after the first of a
	// batch. Default 1 ms.
	Gather time.Duration
	// OnReceipt, when set, is called after each applied batch (metrics).
	OnReceipt func(project string, rc *projections.Receipt)
	// PullExpiry bounds each pull request; a request lost with its
	// connection is replaced after at most this long. Default 5 s.
	PullExpiry time.Duration
}

// Applier is the one path by which events made elsewhere enter a site: it
// consumes a JetStream stream, decodes events (NDJSON, one or more per
// message), and folds them with Site.Receive, which dedups, holds what
// waits for missing dependencies in the durable causal buffer, raises the
// Lamport clock and updates the projection. A message is acknowledged only
// after the transaction holding its events is durable; a failed one is
// redelivered later. A message that cannot be decoded is terminated and
// logged: it would fail the same way forever.
type Applier struct {
	cfg ApplierConfig
	js  natsjs.JetStream
}

// NewApplier returns an applier; Run starts it.
func NewApplier(cfg ApplierConfig) (*Applier, error) {
	js, err := natsjs.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("applier: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 512
	}
	if cfg.Gather <= 0 {
		cfg.Gather = time.Millisecond
	}
	if cfg.PullExpiry <= 0 {
		cfg.PullExpiry = 5 * time.Second
	}
	return &Applier{cfg: cfg, js: js}, nil
}

// Run applies until ctx ends, retrying with backoff when JetStream or the
// store fails. It returns ctx's error.
func (a *Applier) Run(ctx context.Context) error {
	return retry(ctx, a.cfg.Logger.With("stream", a.cfg.Stream), "applier paused", a.run)
}

// consumer returns the applier's durable consumer, creating it at the
// stream's start. An existing one that still has deliveries awaiting
// acknowledgement was left so by an earlier run (a crashed process, or a
// failed batch): only one applier runs per durable, so none of them will
// ever be acknowledged, and JetStream would redeliver them only after the
// ack wait (30 s), holding everything after them in the causal buffer
// meanwhile. Such a consumer is replaced by one starting just after its
// acknowledged floor: everything up to it is durable here, and what comes
// twice is dropped as a duplicate.
func (a *Applier) consumer(ctx context.Context) (natsjs.Consumer, error) {
	cfg := natsjs.ConsumerConfig{
		Durable:        a.cfg.Durable,
		FilterSubjects: a.cfg.FilterSubjects,
		AckPolicy:      natsjs.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxAckPending:  20_000,
		DeliverPolicy:  natsjs.DeliverAllPolicy,
	}
	c, err := a.js.Consumer(ctx, a.cfg.Stream, a.cfg.Durable)
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		return a.js.CreateConsumer(ctx, a.cfg.Stream, cfg)
	}
	if err != nil {
		return nil, err
	}
	info := c.CachedInfo()
	if info.NumAckPending == 0 {
		return c, nil
	}
	floor := info.AckFloor.Stream
	a.cfg.Logger.Info("consumer restarted after its last acknowledged message; unacknowledged deliveries of an earlier run are fetched again",
		"consumer", a.cfg.Durable, "stream", a.cfg.Stream, "ack_floor", floor, "unacknowledged", info.NumAckPending)
	if err := a.js.DeleteConsumer(ctx, a.cfg.Stream, a.cfg.Durable); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
		return nil, err
	}
	cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, floor+1
	return a.js.CreateConsumer(ctx, a.cfg.Stream, cfg)
}

func (a *Applier) run(ctx context.Context) error {
	cons, err := a.consumer(ctx)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", a.cfg.Durable, a.cfg.Stream, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A short pull expiry bounds a lost pull request (nats.go#1622).
		batch, err := cons.Fetch(a.cfg.Batch, natsjs.FetchMaxWait(a.cfg.PullExpiry))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		msgs := batch.Messages()
		for {
			group, open := a.gather(ctx, msgs)
			if len(group) > 0 {
				if err := a.apply(ctx, group); err != nil {
					return err
				}
			}
			if !open {
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsjs.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch: %w", err)
		}
	}
}

// gather reads messages until the batch ends, the group is full, or Gather
// passes after the first; it reports whether the batch may hold more.
func (a *Applier) gather(ctx context.Context, msgs <-chan natsjs.Msg) ([]natsjs.Msg, bool) {
	var group []natsjs.Msg
	var timer <-chan time.Time
	for len(group) < a.cfg.Batch {
		select {
		case m, ok := <-msgs:
			if !ok {
				return group, false
			}
			group = append(group, m)
			if timer == nil {
				timer = time.After(a.cfg.Gather)
			}
		case <-timer:
			return group, true
		case <-ctx.Done():
			return group, false
		}
	}
	return group, true
}

// apply decodes a group of messages and folds their events, one transaction
// per project, then acknowledges them.
func (a *Applier) apply(ctx context.Context, msgs []natsjs.Msg) error {
	byProject := map[string][]*events.Event{}
	var order []string
	ok := make([]natsjs.Msg, 0, len(msgs))
	for _, m := range msgs {
		evs, err := DecodeEvents(m.Data())
		if err == nil {
			err = checkSubject(m.Subject(), evs)
		}
		if err != nil {
			a.cfg.Logger.Error("event message refused", "subject", m.Subject(), "err", err)
			_ = m.Term()
			continue
		}
		for _, e := range evs {
			if byProject[e.Project] == nil {
				order = append(order, e.Project)
			}
			byProject[e.Project] = append(byProject[e.Project], e)
		}
		ok = append(ok, m)
	}
	for _, p := range order {
		rc, err := a.cfg.Site.Receive(ctx, p, byProject[p])
		if err != nil {
			for _, m := range ok {
				_ = m.NakWithDelay(time.Second)
			}
			return fmt.Errorf("apply %d events of project %s: %w", len(byProject[p]), p, err)
		}
		a.report(p, rc)
	}
	for _, m := range ok {
		if err := m.Ack(); err != nil {
			a.cfg.Logger.Warn("ack failed; the message will be redelivered and deduplicated", "err", err)
		}
	}
	return nil
}

func (a *Applier) report(project string, rc *projections.Receipt) {
	l := a.cfg.Logger
	for _, r := range rc.Refused {
		l.Warn("event refused", "project", project, "event", r.Event.String(), "origin", r.Site, "reason", r.Reason)
	}
	for _, h := range rc.Held {
		l.Info("event held until a dependency arrives", "project", project, "event", h.Event.String(), "origin", h.Site, "seq", h.Seq, "waiting_for", h.WaitingFor)
	}
	for _, f := range rc.Flags {
		l.Warn("clock skew flagged", "project", project, "flag", f.Flag, "event", f.Event.String(), "origin", f.Site, "by", f.By.String())
	}
	if a.cfg.OnReceipt != nil {
		a.cfg.OnReceipt(project, rc)
	}
}

// checkSubject refuses a message whose events do not all belong to the
// project its subject names (dss.<site>.ev.<project>, dss.<site>.in.<project>):
// what a publisher put on a project's subject is that project's, or nothing.
func checkSubject(subject string, evs []*events.Event) error {
	project := subject[strings.LastIndexByte(subject, '.')+1:]
	for _, e := range evs {
		if e.Project != project {
			return fmt.Errorf("event %s belongs to project %q, but came on the subject of project %q", e.ID, e.Project, project)
		}
	}
	return nil
}

// MaxMessageEvents bounds the events one message may carry.
const MaxMessageEvents = 100_000

// DecodeEvents reads the events of one message: NDJSON, one event per line
// (a single event without a newline is one line). Every event is parsed
// strictly (events.ParseJSON): shape, hash.
func DecodeEvents(b []byte) ([]*events.Event, error) {
	// The message is in memory: lines are cut from it in place (a
	// bufio.Scanner would allocate its buffer for every message).
	var out []*events.Event
	for line := 1; len(b) > 0; line++ {
		l := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if len(out) == MaxMessageEvents {
			return nil, fmt.Errorf("more than %d events in one message", MaxMessageEvents)
		}
		e, err := events.ParseJSON(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("no event in the message")
	}
	return out, nil
}

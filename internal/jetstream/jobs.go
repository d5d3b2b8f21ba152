package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
)

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Job is a long operation (an import) carried out chunk by chunk through
// JetStream: its chunks are published to the site's job stream when it is
// submitted, then applied in order by the runner, which records progress
// after each; after a restart the runner resumes from where it stopped.
type Job struct {
	ID      string          `json:"id"`
	Kind    string          `json:"kind"`
	Project string          `json:"project"`
	State   string          `json:"state"`
	Params  json.RawMessage `json:"params,omitempty"` // what the job's Apply needs (strategy, ...)
	// Chunks is how many chunks the job has; Done how many are applied.
	Chunks int `json:"chunks"`
	Done   int `json:"done"`
	// Atomic jobs apply all their chunks in one transaction, at the end.
	Atomic    bool            `json:"atomic"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// Finished reports whether the job is over.
func (j *Job) Finished() bool { return j.State == JobSucceeded || j.State == JobFailed }

// JobStore keeps job records (a pebble bucket). Writes are durable.
type JobStore interface {
	Get(key string) ([]byte, bool, error)
	Set(key string, value []byte) error
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Producer calls yield with a job's chunks in order; the runner calls it to
// submit a job, and again to republish chunks JetStream lost.
type Producer func(yield func(chunk []byte) error) error

// JobsConfig configures a job runner.
type JobsConfig struct {
	Site  string
	Conn  *nats.Conn
	Store JobStore
	// Apply applies one chunk of a job (in its own transaction); it is
	// called again with the same chunk after a crash, and must then change
	// nothing twice. It returns the chunk's contribution to the result.
	Apply func(ctx context.Context, j *Job, chunk []byte, result json.RawMessage) (json.RawMessage, error)
	// ApplyAll applies every chunk of an atomic job in one transaction.
	ApplyAll func(ctx context.Context, j *Job, chunks [][]byte) (json.RawMessage, error)
	// Source returns the producer of a job's chunks, for republishing.
	Source func(j *Job) (Producer, error)
	// Finish is called once a job is over, succeeded or failed (cleanup).
	Finish func(j *Job)
	Logger *slog.Logger
	Now    func() time.Time
	// Replicas is the job stream's replica count. Default 1.
	Replicas int
}

// Jobs runs jobs, one at a time (a cap on concurrent imports).
type Jobs struct {
	cfg  JobsConfig
	js   natsjs.JetStream
	mu   sync.Mutex
	wake chan struct{}
	subs map[string][]chan struct{}
}

// JobStreamName returns the name of a site's job stream.
func JobStreamName(site string) string { return "DSS-JOBS-" + site }

func jobSubject(site, id string) string { return "dss." + site + ".job." + id }

// NewJobs returns a runner; Run starts it.
func NewJobs(ctx context.Context, cfg JobsConfig) (*Jobs, error) {
	// A chunk's acknowledgement can be lost without the connection dropping
	// (a stream leader stepping down in a cluster): without a timeout its
	// future would never resolve and the submission would hang. Chunks are
	// up to 16 MiB, hence more time than the outbox's events get. A
	// submission that times out fails (what it stored is never run: no job
	// record names it); a republish that times out is retried by the runner.
	js, err := natsjs.New(cfg.Conn, natsjs.WithPublishAsyncMaxPending(2*chunkWindow), natsjs.WithPublishAsyncTimeout(6*PublishAckTimeout))
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if _, err := js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{
		Name: JobStreamName(cfg.Site), Description: "chunks of site " + cfg.Site + "'s jobs (imports)",
		Subjects: []string{"dss." + cfg.Site + ".job.>"}, Storage: natsjs.FileStorage, MaxMsgSize: 16 << 20,
		Replicas: max(cfg.Replicas, 1),
	}); err != nil {
		return nil, fmt.Errorf("ensure job stream: %w", err)
	}
	return &Jobs{cfg: cfg, js: js, wake: make(chan struct{}, 1), subs: map[string][]chan struct{}{}}, nil
}

func (r *Jobs) save(j *Job) error {
	j.UpdatedAt = r.cfg.Now().UTC()
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := r.cfg.Store.Set(j.ID, b); err != nil {
		return fmt.Errorf("save job %s: %w", j.ID, err)
	}
	if j.Finished() {
		r.mu.Lock()
		for _, ch := range r.subs[j.ID] {
			close(ch)
		}
		delete(r.subs, j.ID)
		r.mu.Unlock()
	}
	return nil
}

// Get returns a job, or an ENOTFOUND error.
func (r *Jobs) Get(ctx context.Context, id string) (*Job, error) {
	b, ok, err := r.cfg.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, events.Errorf(events.ENOTFOUND, "no job %q", id)
	}
	j := &Job{}
	return j, json.Unmarshal(b, j)
}

// NewJobID returns a fresh job id.
func NewJobID() string { return ulid.MustNew(ulid.Now(), rand.Reader).String() }

// Submit publishes a job's chunks and queues it. It returns once every chunk
// is stored by JetStream; the runner then applies them.
func (r *Jobs) Submit(ctx context.Context, j *Job, produce Producer) error {
	j.State, j.CreatedAt = JobQueued, r.cfg.Now().UTC()
	if err := r.publish(ctx, j, produce, 0); err != nil {
		return err
	}
	if err := r.save(j); err != nil {
		return err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// chunkWindow is how many chunks a job has in flight to JetStream at most:
// enough to keep the server busy, few enough that memory does not grow
// with the size of the import.
const chunkWindow = 8

// publish publishes the job's chunks from index from on, and counts them.
// Every chunk's acknowledgement is checked: a chunk the stream refused
// fails the submission, never leaves a job with a hole.
func (r *Jobs) publish(ctx context.Context, j *Job, produce Producer, from int) error {
	var inflight []natsjs.PubAckFuture
	var indexes []int
	settle := func(keep int) error {
		for len(inflight) > keep {
			select {
			case <-inflight[0].Ok():
			case err := <-inflight[0].Err():
				return fmt.Errorf("chunk %d: %w", indexes[0], err)
			case <-ctx.Done():
				return ctx.Err()
			}
			inflight, indexes = inflight[1:], indexes[1:]
		}
		return nil
	}
	k := 0
	err := produce(func(chunk []byte) error {
		defer func() { k++ }()
		if k < from {
			return nil
		}
		if err := settle(chunkWindow - 1); err != nil {
			return err
		}
		msg := &nats.Msg{Subject: jobSubject(r.cfg.Site, j.ID), Data: chunk, Header: nats.Header{}}
		msg.Header.Set("Dss-Chunk", strconv.Itoa(k))
		// No Nats-Msg-Id: a republished chunk must not be dropped as a
		// duplicate of one the stream lost; the runner skips chunks it has
		// applied by their index instead.
		f, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			return err
		}
		inflight, indexes = append(inflight, f), append(indexes, k)
		return nil
	})
	if err == nil {
		err = settle(0)
	}
	if err != nil {
		return fmt.Errorf("publish job %s: %w", j.ID, err)
	}
	if from == 0 {
		j.Chunks = k
	}
	return nil
}

// Wait returns once the job is finished, or ctx ends.
func (r *Jobs) Wait(ctx context.Context, id string) (*Job, error) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.subs[id] = append(r.subs[id], ch)
	r.mu.Unlock()
	j, err := r.Get(ctx, id)
	if err != nil || j.Finished() {
		return j, err
	}
	select {
	case <-ch:
		return r.Get(ctx, id)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run applies queued jobs, one at a time, oldest first, until ctx ends;
// jobs left running by a crash are resumed first.
func (r *Jobs) Run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := r.next()
		if err != nil {
			r.cfg.Logger.Error("job runner: cannot read jobs", "err", err)
		}
		if next != nil {
			r.run(ctx, next)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-time.After(5 * time.Second):
		}
	}
}

// Unfinished returns the jobs not yet over (queued or running), oldest
// first. A job's resources (its spooled input) must outlive it until it is
// over; anything else may be swept at start-up.
func (r *Jobs) Unfinished() ([]*Job, error) {
	var out []*Job
	err := r.cfg.Store.Scan("", func(_ string, v []byte) error {
		j := &Job{}
		if err := json.Unmarshal(v, j); err != nil {
			return err
		}
		if !j.Finished() {
			out = append(out, j)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *Job) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// next returns the oldest job not finished.
func (r *Jobs) next() (*Job, error) {
	js, err := r.Unfinished()
	if err != nil || len(js) == 0 {
		return nil, err
	}
	return js[0], nil
}

func (r *Jobs) run(ctx context.Context, j *Job) {
	l := r.cfg.Logger.With("job", j.ID, "project", j.Project)
	j.State = JobRunning
	if err := r.save(j); err != nil {
		l.Error("job not started", "err", err)
		return
	}
	err := r.process(ctx, j, l)
	if ctx.Err() != nil {
		return // shutting down: resume at next start
	}
	if err != nil {
		j.State, j.Error = JobFailed, events.ErrorMessage(err)
		l.Error("job failed", "err", err)
	} else {
		j.State = JobSucceeded
		l.Info("job succeeded", "chunks", j.Chunks)
	}
	if err := r.save(j); err != nil {
		l.Error("job outcome not saved", "err", err)
	}
	_ = r.purge(ctx, j)
	if r.cfg.Finish != nil {
		r.cfg.Finish(j)
	}
}

func (r *Jobs) purge(ctx context.Context, j *Job) error {
	st, err := r.js.Stream(ctx, JobStreamName(r.cfg.Site))
	if err != nil {
		return err
	}
	_ = st.DeleteConsumer(ctx, "job-"+j.ID)
	return st.Purge(ctx, natsjs.WithPurgeSubject(jobSubject(r.cfg.Site, j.ID)))
}

// errChunkGap is a chunk that came before the one the job needs next: the
// chunks between are missing from JetStream.
var errChunkGap = errors.New("a job chunk is missing from JetStream")

// process applies the job's chunks not yet applied, strictly in order. When
// a chunk is found missing it republishes the rest from the job's source
// once, and starts over.
func (r *Jobs) process(ctx context.Context, j *Job, l *slog.Logger) error {
	err := r.processOnce(ctx, j, l, false)
	if errors.Is(err, errChunkGap) && r.cfg.Source != nil {
		l.Warn("job chunk missing; republishing from the job's source", "err", err)
		err = r.processOnce(ctx, j, l, true)
	}
	return err
}

func (r *Jobs) processOnce(ctx context.Context, j *Job, l *slog.Logger, republish bool) error {
	st, err := r.js.Stream(ctx, JobStreamName(r.cfg.Site))
	if err != nil {
		return err
	}
	subject := jobSubject(r.cfg.Site, j.ID)
	// Republish what JetStream lost (its file store syncs lazily, so what
	// it loses is the end): the last chunk must be there. A chunk lost
	// before it is found as a gap while applying.
	last := -1
	if m, err := st.GetLastMsgForSubject(ctx, subject); err == nil {
		if last, err = strconv.Atoi(m.Header.Get("Dss-Chunk")); err != nil {
			last = -1
		}
	} else if !errors.Is(err, natsjs.ErrMsgNotFound) {
		return err
	}
	if (republish || last != j.Chunks-1) && r.cfg.Source != nil {
		l.Warn("job chunks missing from JetStream; republishing from the job's source", "last_chunk", last, "chunks", j.Chunks, "done", j.Done)
		produce, err := r.cfg.Source(j)
		if err != nil {
			return fmt.Errorf("job source: %w", err)
		}
		if err := st.Purge(ctx, natsjs.WithPurgeSubject(subject)); err != nil {
			return err
		}
		if err := r.publish(ctx, j, produce, j.Done); err != nil {
			return err
		}
	}
	// A new consumer each time: one left by a crash would hold the chunks
	// it delivered and no one acknowledged until their ack wait ends, and
	// deliver the later ones first.
	name := "job-" + j.ID
	if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
		return err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, natsjs.ConsumerConfig{
		Durable: name, FilterSubject: subject, DeliverPolicy: natsjs.DeliverAllPolicy,
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: 5 * time.Minute, MaxAckPending: 100_000,
	})
	if err != nil {
		return err
	}
	var held []natsjs.Msg
	var chunks [][]byte
	for j.Done < j.Chunks {
		// A few chunks at a time: each is up to 2,000 records, and what is
		// fetched waits in memory. Never more than are left: a fetch waits
		// until it has all it asked for, or its wait ends.
		batch, err := cons.Fetch(min(4, j.Chunks-j.Done-len(chunks)), natsjs.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			k, err := strconv.Atoi(m.Headers().Get("Dss-Chunk"))
			if err != nil {
				return fmt.Errorf("job chunk without a number: %w", err)
			}
			next := j.Done
			if j.Atomic {
				next = len(chunks)
			}
			switch {
			case k < next: // applied before a crash, or a duplicate
				_ = m.Ack()
				continue
			case k > next:
				return fmt.Errorf("%w: chunk %d came when %d was next", errChunkGap, k, next)
			}
			if j.Atomic {
				held, chunks = append(held, m), append(chunks, m.Data())
				if len(chunks) == j.Chunks {
					res, err := r.cfg.ApplyAll(ctx, j, chunks)
					if err != nil {
						return err
					}
					j.Result, j.Done = res, j.Chunks
					for _, h := range held {
						_ = h.Ack()
					}
				}
				continue
			}
			res, err := r.cfg.Apply(ctx, j, m.Data(), j.Result)
			if err != nil {
				return err
			}
			j.Result, j.Done = res, k+1
			if err := r.save(j); err != nil {
				return err
			}
			_ = m.Ack()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsjs.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if got == 0 && j.Done < j.Chunks {
			l.Warn("waiting for job chunks", "done", j.Done, "chunks", j.Chunks)
		}
	}
	return nil
}

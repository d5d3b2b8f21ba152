package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/jetstream/jetstreamtest"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

type memJobStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memJobStore) Get(k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}
func (s *memJobStore) Set(k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}
func (s *memJobStore) Scan(p string, fn func(string, []byte) error) error {
	s.mu.Lock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, p) {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		v, _, _ := s.Get(k)
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// counter applies chunks "1".."n" by summing them, recording every call.
type counter struct {
	mu      sync.Mutex
	applied []string
	block   chan struct{} // when set, Apply waits on it after chunk 3
}

func chunks(n int) jetstream.Producer {
	return func(yield func([]byte) error) error {
		for i := 1; i <= n; i++ {
			if err := yield([]byte(strconv.Itoa(i))); err != nil {
				return err
			}
		}
		return nil
	}
}

func (c *counter) config(store *memJobStore, nc jetstream.JobsConfig) jetstream.JobsConfig {
	nc.Store = store
	nc.Logger = quiet
	nc.Apply = func(ctx context.Context, j *jetstream.Job, chunk []byte, res json.RawMessage) (json.RawMessage, error) {
		c.mu.Lock()
		c.applied = append(c.applied, string(chunk))
		n := len(c.applied)
		c.mu.Unlock()
		if c.block != nil && n == 3 {
			<-c.block
			return nil, ctx.Err()
		}
		var sum int
		json.Unmarshal(res, &sum)
		v, _ := strconv.Atoi(string(chunk))
		return json.Marshal(sum + v)
	}
	nc.ApplyAll = func(ctx context.Context, j *jetstream.Job, all [][]byte) (json.RawMessage, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.applied = append(c.applied, fmt.Sprintf("all:%d", len(all)))
		return json.Marshal(len(all))
	}
	nc.Source = func(*jetstream.Job) (jetstream.Producer, error) { return chunks(10), nil }
	return nc
}

func TestJobsRunAndResume(t *testing.T) {
	ctx := context.Background()
	srv := jetstreamtest.RunServer(t)
	store := &memJobStore{m: map[string][]byte{}}

	// A job runs to the end; its result is the sum of its chunks.
	c := &counter{}
	jobs, err := jetstream.NewJobs(ctx, c.config(store, jetstream.JobsConfig{Site: "paris", Conn: jetstreamtest.Connect(t, srv)}))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { jobs.Run(runCtx); close(done) }()
	j := &jetstream.Job{ID: jetstream.NewJobID(), Kind: "test", Project: "p"}
	if err := jobs.Submit(ctx, j, chunks(10)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := jobs.Wait(wctx, j.ID)
	if err != nil || got.State != jetstream.JobSucceeded || string(got.Result) != "55" || got.Done != 10 {
		t.Fatalf("job %+v %v", got, err)
	}
	// An atomic job applies all its chunks at once.
	a := &jetstream.Job{ID: jetstream.NewJobID(), Kind: "test", Project: "p", Atomic: true}
	jobs.Submit(ctx, a, chunks(7))
	got, _ = jobs.Wait(wctx, a.ID)
	if got.State != jetstream.JobSucceeded || string(got.Result) != "7" || c.applied[len(c.applied)-1] != "all:7" {
		t.Fatalf("atomic job %+v, applied %v", got, c.applied)
	}
	stop()
	waitClosed(t, done, "the first job runner to stop")

	// A runner dies in the middle of a job: another resumes it, applying
	// each chunk once more at most (the one in flight), never skipping one.
	c2 := &counter{block: make(chan struct{})}
	jobs2, _ := jetstream.NewJobs(ctx, c2.config(store, jetstream.JobsConfig{Site: "paris", Conn: jetstreamtest.Connect(t, srv)}))
	runCtx2, stop2 := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() { jobs2.Run(runCtx2); close(done2) }()
	k := &jetstream.Job{ID: jetstream.NewJobID(), Kind: "test", Project: "p"}
	jobs2.Submit(ctx, k, chunks(10))
	retryUntil(t, 5*time.Second, "the third chunk to start", func() bool {
		c2.mu.Lock()
		defer c2.mu.Unlock()
		return len(c2.applied) == 3
	})
	stop2()
	close(c2.block)
	waitClosed(t, done2, "the second job runner to stop")
	// JetStream loses the job's chunks meanwhile: the new runner republishes
	// them from the job's source.
	js, _ := natsjs.New(jetstreamtest.Connect(t, srv))
	st, _ := js.Stream(ctx, jetstream.JobStreamName("paris"))
	st.Purge(ctx)
	c3 := &counter{}
	jobs3, _ := jetstream.NewJobs(ctx, c3.config(store, jetstream.JobsConfig{Site: "paris", Conn: jetstreamtest.Connect(t, srv)}))
	runCtx3, stop3 := context.WithCancel(ctx)
	defer stop3()
	go jobs3.Run(runCtx3)
	got, err = jobs3.Wait(wctx, k.ID)
	if err != nil || got.State != jetstream.JobSucceeded || string(got.Result) != "55" {
		t.Fatalf("resumed job %+v %v", got, err)
	}
	if strings.Join(c3.applied, ",") != "3,4,5,6,7,8,9,10" {
		t.Fatalf("the resumed runner applied %v, want chunks 3..10", c3.applied)
	}
	if _, err := jobs3.Get(ctx, "nope"); err == nil {
		t.Fatal("an unknown job was found")
	}
}

// runJob submits a job of n chunks, lets tamper do what a crash would have
// done to JetStream, then runs the job to its end and returns it with what
// was applied.
func runJob(t *testing.T, n int, tamper func(js natsjs.JetStream, st natsjs.Stream, j *jetstream.Job)) (*jetstream.Job, []string) {
	t.Helper()
	ctx := context.Background()
	srv := jetstreamtest.RunServer(t)
	store := &memJobStore{m: map[string][]byte{}}
	c := &counter{}
	jobs, err := jetstream.NewJobs(ctx, c.config(store, jetstream.JobsConfig{Site: "paris", Conn: jetstreamtest.Connect(t, srv)}))
	if err != nil {
		t.Fatal(err)
	}
	j := &jetstream.Job{ID: jetstream.NewJobID(), Kind: "test", Project: "p"}
	if err := jobs.Submit(ctx, j, chunks(n)); err != nil {
		t.Fatal(err)
	}
	js, _ := natsjs.New(jetstreamtest.Connect(t, srv))
	st, err := js.Stream(ctx, jetstream.JobStreamName("paris"))
	if err != nil {
		t.Fatal(err)
	}
	tamper(js, st, j)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go jobs.Run(runCtx)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got, err := jobs.Wait(wctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return got, append([]string(nil), c.applied...)
}

// TestJobsResumeAfterUnackedDelivery: a runner that crashed had fetched
// chunks and acknowledged none; its durable consumer would hold them until
// their ack wait ends and deliver the later ones first. The next runner
// still applies every chunk, in order.
func TestJobsResumeAfterUnackedDelivery(t *testing.T) {
	got, applied := runJob(t, 10, func(_ natsjs.JetStream, st natsjs.Stream, j *jetstream.Job) {
		ctx := context.Background()
		cons, err := st.CreateOrUpdateConsumer(ctx, natsjs.ConsumerConfig{Durable: "job-" + j.ID, FilterSubject: "dss.paris.job." + j.ID,
			AckPolicy: natsjs.AckExplicitPolicy, AckWait: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(3, natsjs.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range batch.Messages() {
			n++ // delivered, never acknowledged
		}
		if n != 3 {
			t.Fatalf("fetched %d chunks, want 3", n)
		}
	})
	if got.State != jetstream.JobSucceeded || string(got.Result) != "55" || strings.Join(applied, ",") != "1,2,3,4,5,6,7,8,9,10" {
		t.Fatalf("job %+v applied %v, want chunks 1..10 in order (sum 55)", got, applied)
	}
}

// TestJobsRepublishOnGap: a chunk lost from the middle of the stream (the
// last one still there) is found missing when a later one comes first; the
// chunks left are republished from the job's source and applied in order.
func TestJobsRepublishOnGap(t *testing.T) {
	got, applied := runJob(t, 10, func(_ natsjs.JetStream, st natsjs.Stream, j *jetstream.Job) {
		ctx := context.Background()
		m, err := st.GetLastMsgForSubject(ctx, "dss.paris.job."+j.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The fifth chunk of ten: the last one's sequence minus five.
		if err := st.DeleteMsg(ctx, m.Sequence-5); err != nil {
			t.Fatal(err)
		}
	})
	if got.State != jetstream.JobSucceeded || string(got.Result) != "55" || strings.Join(applied, ",") != "1,2,3,4,5,6,7,8,9,10" {
		t.Fatalf("job %+v applied %v, want chunks 1..10 in order (sum 55)", got, applied)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/archive"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/prometheus/client_golang/prometheus"
)

// archives implements api.Archives: the archive format (internal/archive)
// and the job runner (internal/jetstream), wired to the site.
type archives struct {
	m       *Main
	jobs    *jetstream.Jobs
	limits  archive.ImportLimits
	trusted map[string]bool // key ids; empty: any valid signature
	// syncRecords is the most records an import may hold and still be
	// answered when done (200); above it the answer is 202 and a job.
	syncRecords int
	// maxPlan is the most records a dry run plans in full.
	maxPlan int
	// maxReplace is the most records a replace (one transaction) holds.
	maxReplace int
	// maxQueued bounds the imports in progress (--import-queue): requests
	// being received and checked, and the jobs they submitted that are
	// not finished. 0: no bound.
	maxQueued int
	mu        sync.Mutex
	receiving int
	queued    map[string]bool // job ids submitted since this start
	metrics   archiveMetrics
}

// archiveMetrics are the exports' and imports' durations and sizes.
type archiveMetrics struct {
	exportSeconds, exportBytes *prometheus.HistogramVec // by format
	importBytes                prometheus.Histogram     // bodies received
	importSeconds              *prometheus.HistogramVec // submission to end, by state
	importChecks               *prometheus.CounterVec   // by outcome: refused, dry-run, submitted
}

func newArchiveMetrics(reg *prometheus.Registry) archiveMetrics {
	sizes := prometheus.ExponentialBuckets(1<<10, 4, 10) // 1 KiB to 256 MiB
	m := archiveMetrics{
		exportSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dss_export_duration_seconds",
			Help: "Time to stream an export, by format.", Buckets: prometheus.ExponentialBuckets(0.005, 3, 10)}, []string{"format"}),
		exportBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dss_export_bytes",
			Help: "Size of an export, by format.", Buckets: sizes}, []string{"format"}),
		importBytes: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dss_import_bytes",
			Help: "Size of an import's body.", Buckets: sizes}),
		importSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dss_import_duration_seconds",
			Help: "Time from an import's submission to its end, by final state.", Buckets: prometheus.ExponentialBuckets(0.01, 3, 12)}, []string{"state"}),
		importChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dss_imports_total",
			Help: "Imports checked, by outcome: refused (the report says why), dry-run, submitted (a job)."}, []string{"outcome"}),
	}
	for _, o := range []string{"refused", "dry-run", "submitted"} {
		m.importChecks.WithLabelValues(o)
	}
	reg.MustRegister(m.exportSeconds, m.exportBytes, m.importBytes, m.importSeconds, m.importChecks)
	return m
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// importRetry is the Retry-After of an import refused because the queue
// is full: imports take seconds to minutes.
const importRetry = 10 * time.Second

// admit counts an import in, or refuses it with 429 when maxQueued are in
// progress. The caller calls done(""), or done(job id) when it submitted a
// job: that job then counts until it finishes (release).
func (a *archives) admit() (done func(job string), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxQueued > 0 && a.receiving+len(a.queued) >= a.maxQueued {
		return nil, api.RateLimited("import_queue", importRetry,
			"%d imports are in progress, the most this site takes at once (--import-queue): retry later", a.maxQueued)
	}
	a.receiving++
	return func(job string) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.receiving--
		if job != "" {
			if a.queued == nil {
				a.queued = map[string]bool{}
			}
			a.queued[job] = true
		}
	}, nil
}

// release stops counting a job.
func (a *archives) release(job string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.queued, job)
}

// Chunk sizes: records per JetStream message of an import job, and
// roughly the most bytes (well under the embedded server's 8 MiB payload
// limit, whatever the records hold).
const (
	importChunk      = 2000
	importChunkBytes = 2 << 20
)

// importParams is what an import job needs to apply its chunks.
type importParams struct {
	File       string `json:"file"` // the spooled input
	Strategy   string `json:"strategy"`
	History    bool   `json:"history"`
	Revs       bool   `json:"revs"`
	CreateName string `json:"createName,omitempty"`
	Actor      string `json:"actor"`
	Records    int    `json:"records"`
}

// importSummary is an import's result, summed over its chunks.
type importSummary struct {
	History struct {
		Applied    int `json:"applied"`
		Duplicates int `json:"duplicates"`
		Held       int `json:"held"`
		Refused    int `json:"refused"`
	} `json:"history"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
	Events    int `json:"events"`
}

func (s *importSummary) add(r *projections.ImportResult) {
	if rc := r.Receipt; rc != nil {
		s.History.Applied += len(rc.Applied)
		s.History.Duplicates += rc.Duplicates
		s.History.Held += len(rc.Held)
		s.History.Refused += len(rc.Refused)
	}
	s.Created += r.Created
	s.Updated += r.Updated
	s.Deleted += r.Deleted
	s.Unchanged += r.Unchanged
	s.Events += r.Events
}

func (a *archives) Export(ctx context.Context, project string, q api.ExportQuery, w io.Writer) (err error) {
	start, cw := time.Now(), &countingWriter{w: w}
	defer func() {
		if err == nil {
			a.metrics.exportSeconds.WithLabelValues(q.Format).Observe(time.Since(start).Seconds())
			a.metrics.exportBytes.WithLabelValues(q.Format).Observe(float64(cw.n))
		}
	}()
	if q.Format == "dtcg" {
		_, err := archive.ExportDTCG(ctx, a.m.Site, project, q.Prefix, q.Type, cw)
		return err
	}
	_, err = archive.Export(ctx, a.m.Site, project, archive.ExportOptions{History: q.History, Prefix: q.Prefix, Type: q.Type, Key: a.m.SigningKey}, cw)
	return err
}

// reportError is a refused import: a 422 whose problem carries the report.
type reportError struct {
	err    *events.Error
	report *archive.Report
}

func (e reportError) Error() string                 { return e.err.Error() }
func (e reportError) ProblemExtras() map[string]any { return map[string]any{"report": e.report} }
func (e reportError) Unwrap() error                 { return e.err }

// spool copies an import's body to a file in <data-dir>/tmp (the body's
// size limit is the HTTP layer's).
func (a *archives) spool(body io.Reader) (string, int64, error) {
	dir := a.m.dataPath("tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(dir, "import-*")
	if err != nil {
		return "", 0, err
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), n, nil
}

// jobParams reads an import job's parameters.
func jobParams(j *jetstream.Job) (importParams, error) {
	var p importParams
	return p, json.Unmarshal(j.Params, &p)
}

// sweepSpool removes spooled inputs no unfinished job needs: a job's input
// is removed after its outcome is saved, so a stop between the two leaves
// the file behind. Called at start-up, before any import is taken.
func (a *archives) sweepSpool() error {
	dir := a.m.dataPath("tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	js, err := a.jobs.Unfinished()
	if err != nil {
		return err
	}
	needed := map[string]bool{}
	for _, j := range js {
		if p, err := jobParams(j); err == nil {
			needed[filepath.Clean(p.File)] = true
		}
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), "import-") && !needed[path] {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("sweep spooled input: %w", err)
			}
		}
	}
	return nil
}

// open checks a spooled input.
func (a *archives) open(path string) (*archive.Report, *archive.Input, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	var trust func(string) bool
	if len(a.trusted) > 0 {
		trust = func(id string) bool { return a.trusted[id] }
	}
	rep, in := archive.Check(f, st.Size(), a.limits, trust)
	return rep, in, func() { f.Close() }, nil
}

// paramsFor decides how an input is imported into project: its own project
// (history and revs kept) or another (a copy).
func paramsFor(in *archive.Input, req api.ImportRequest, project *projections.Project) importParams {
	p := importParams{Strategy: req.Strategy, Actor: req.Actor}
	same := in.Project.ID == "" || in.Project.ID == req.Project
	p.History, p.Revs = same, same
	if project == nil && (!in.HasHistory || !same) {
		p.CreateName = in.Project.Name
		if p.CreateName == "" {
			p.CreateName = req.Project
		}
	}
	return p
}

func (a *archives) Import(ctx context.Context, req api.ImportRequest) (*api.ImportAnswer, error) {
	admitted, err := a.admit()
	if err != nil {
		return nil, err
	}
	handedOver := false
	defer func() {
		if !handedOver {
			admitted("")
		}
	}()
	path, size, err := a.spool(req.Body)
	if err != nil {
		return nil, err
	}
	a.metrics.importBytes.Observe(float64(size))
	keep := false
	defer func() {
		if !keep {
			os.Remove(path)
		}
	}()
	rep, in, closeIn, err := a.open(path)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	if in == nil {
		a.metrics.importChecks.WithLabelValues("refused").Inc()
		return nil, reportError{events.Errorf(events.EINVALID, "the import is refused: see the report's stages"), rep}
	}
	project, err := a.m.Site.Project(ctx, req.Project)
	if err != nil && events.ErrorCode(err) != events.ENOTFOUND {
		return nil, err
	}
	params := paramsFor(in, req, project)
	opt := archive.RecordOptions{History: params.History, Revs: params.Revs}
	if req.DryRun {
		a.metrics.importChecks.WithLabelValues("dry-run").Inc()
		a.plan(ctx, rep, in, req, params, opt)
		return &api.ImportAnswer{Status: http.StatusOK, Body: rep}, nil
	}
	records := in.RecordCount(opt)
	if params.Strategy == "replace" && records > a.maxReplace {
		return nil, events.Errorf(events.ETOOLARGE, "a replace applies in one transaction, up to %d records; this holds %d: use merge", a.maxReplace, records)
	}
	params.File, params.Records = path, records
	raw, _ := json.Marshal(params)
	j := &jetstream.Job{ID: jetstream.NewJobID(), Kind: "import", Project: req.Project, Params: raw, Atomic: params.Strategy == "replace"}
	// Counted as queued before the runner can see it: it may finish (and
	// be released) before Submit returns.
	admitted(j.ID)
	handedOver = true
	if err := a.jobs.Submit(ctx, j, producer(in, opt)); err != nil {
		a.release(j.ID)
		return nil, err
	}
	keep = true // the job owns the file now
	a.metrics.importChecks.WithLabelValues("submitted").Inc()
	if records > a.syncRecords {
		return &api.ImportAnswer{Status: http.StatusAccepted, Body: apiJob(j)}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done, err := a.jobs.Wait(wctx, j.ID)
	if err != nil {
		return &api.ImportAnswer{Status: http.StatusAccepted, Body: apiJob(j)}, nil
	}
	if done.State == jetstream.JobFailed {
		return nil, events.Errorf(events.EINVALID, "the import failed: %s", done.Error)
	}
	return &api.ImportAnswer{Status: http.StatusOK, Body: apiJob(done)}, nil
}

// plan adds the merge stage to a report: the analysis of what the import
// would do, computed without writing.
func (a *archives) plan(ctx context.Context, rep *archive.Report, in *archive.Input, req api.ImportRequest, params importParams, opt archive.RecordOptions) {
	st := rep.Stage(archive.StageMerge)
	var evs []*events.Event
	var items []projections.Item
	n := 0
	err := in.Records(ctx, opt, func(r archive.Record) error {
		if n++; n > a.maxPlan {
			return errTooBig
		}
		if r.Event != nil {
			evs = append(evs, r.Event)
		} else {
			items = append(items, *r.Item)
		}
		return nil
	})
	if err == errTooBig {
		st.Warnings = append(st.Warnings, fmt.Sprintf("more than %d records: the plan is not computed", a.maxPlan))
		return
	}
	if err != nil {
		st.OK, st.Errors = false, append(st.Errors, err.Error())
		return
	}
	plan, err := a.m.Site.AnalyzeImport(ctx, req.Project, req.Actor, evs, items,
		projections.ImportOptions{Replace: params.Strategy == "replace", CreateName: params.CreateName})
	if err != nil {
		st.OK, st.Errors = false, append(st.Errors, events.ErrorMessage(err))
		rep.Valid = false
		return
	}
	rep.Plan = plan
	for kind, n := range plan.Conflicts {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%d %s conflicts would open", n, kind))
	}
	for _, f := range plan.Flags {
		st.Warnings = append(st.Warnings, "clock skew: "+f.String())
	}
	if len(plan.Refused) > 0 {
		st.OK, rep.Valid = false, false
		for _, r := range plan.Refused {
			st.Errors = append(st.Errors, fmt.Sprintf("event %s would be refused: %s", r.Event, r.Reason))
		}
	}
}

var errTooBig = fmt.Errorf("too big")

// producer yields an input's records in chunks, at least one: an empty
// input is one empty chunk, so that a replace with it still runs (and
// deletes everything) and a merge still creates the project.
func producer(in *archive.Input, opt archive.RecordOptions) jetstream.Producer {
	return func(yield func([]byte) error) error {
		var recs []archive.Record
		size, sent := 0, 0
		flush := func() error {
			if len(recs) == 0 && sent > 0 {
				return nil
			}
			b, err := archive.EncodeRecords(recs)
			if err != nil {
				return err
			}
			recs, size, sent = recs[:0], 0, sent+1
			return yield(b)
		}
		err := in.Records(context.Background(), opt, func(r archive.Record) error {
			recs = append(recs, r)
			size += r.Size()
			if len(recs) == importChunk || size >= importChunkBytes {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		return flush()
	}
}

// jobsConfig wires the job runner's callbacks to imports.
func (a *archives) jobsConfig() jetstream.JobsConfig {
	split := func(recs []archive.Record) ([]*events.Event, []projections.Item) {
		var evs []*events.Event
		var items []projections.Item
		for _, r := range recs {
			if r.Event != nil {
				evs = append(evs, r.Event)
			} else {
				items = append(items, *r.Item)
			}
		}
		return evs, items
	}
	return jetstream.JobsConfig{
		Apply: func(ctx context.Context, j *jetstream.Job, chunk []byte, result json.RawMessage) (json.RawMessage, error) {
			p, err := jobParams(j)
			if err != nil {
				return nil, err
			}
			recs, err := archive.DecodeRecords(chunk)
			if err != nil {
				return nil, err
			}
			evs, items := split(recs)
			// The input was checked whole: references across chunks are
			// not checked chunk by chunk.
			res, err := a.m.Site.Import(ctx, j.Project, p.Actor, evs, items,
				projections.ImportOptions{SkipReferences: true, CreateName: p.CreateName})
			if err != nil {
				return nil, err
			}
			var sum importSummary
			if result != nil {
				json.Unmarshal(result, &sum)
			}
			sum.add(res)
			return json.Marshal(sum)
		},
		ApplyAll: func(ctx context.Context, j *jetstream.Job, chunks [][]byte) (json.RawMessage, error) {
			p, err := jobParams(j)
			if err != nil {
				return nil, err
			}
			var all []archive.Record
			for _, c := range chunks {
				recs, err := archive.DecodeRecords(c)
				if err != nil {
					return nil, err
				}
				all = append(all, recs...)
			}
			evs, items := split(all)
			res, err := a.m.Site.Import(ctx, j.Project, p.Actor, evs, items,
				projections.ImportOptions{Replace: true, CreateName: p.CreateName})
			if err != nil {
				return nil, err
			}
			var sum importSummary
			sum.add(res)
			return json.Marshal(sum)
		},
		Source: func(j *jetstream.Job) (jetstream.Producer, error) {
			p, err := jobParams(j)
			if err != nil {
				return nil, err
			}
			_, in, closeIn, err := a.open(p.File)
			if err != nil {
				return nil, err
			}
			if in == nil {
				closeIn()
				return nil, fmt.Errorf("the spooled input of job %s no longer checks", j.ID)
			}
			inner := producer(in, archive.RecordOptions{History: p.History, Revs: p.Revs})
			return func(yield func([]byte) error) error {
				defer closeIn()
				return inner(yield)
			}, nil
		},
		Finish: func(j *jetstream.Job) {
			a.release(j.ID)
			a.metrics.importSeconds.WithLabelValues(j.State).Observe(time.Since(j.CreatedAt).Seconds())
			if p, err := jobParams(j); err == nil && filepath.Dir(p.File) == a.m.dataPath("tmp") {
				os.Remove(p.File)
			}
		},
	}
}

func (a *archives) Job(ctx context.Context, id string) (*api.Job, error) {
	j, err := a.jobs.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return apiJob(j), nil
}

func apiJob(j *jetstream.Job) *api.Job {
	return &api.Job{ID: j.ID, Kind: j.Kind, Project: j.Project, State: j.State,
		Progress: api.JobProgress{Done: int64(j.Done), Total: int64(j.Chunks)},
		Result:   j.Result, Error: j.Error, Created: j.CreatedAt, Updated: j.UpdatedAt}
}

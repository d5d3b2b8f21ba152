package main

// Benchmarks for `make bench`. Each reports its figure beside the raw
// ceiling measured in the same run (b.ReportMetric), and the ratio between
// them. They time themselves over fixed workloads, so run them with
// -benchtime 1x: b.N is not the unit of work here.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/keys"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/dss-sync/dss-sync/projections/dtcg"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
)

var quiet = slog.New(slog.DiscardHandler)

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)      {}
func (quietPebble) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (quietPebble) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// rawDB opens a plain Pebble database, as the ceilings use it.
func rawDB(b *testing.B) *cpebble.DB {
	b.Helper()
	db, err := cpebble.Open(b.TempDir(), &cpebble.Options{FormatMajorVersion: cpebble.FormatNewest, Logger: quietPebble{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// benchSite is a site over a real store, with its API behind a real HTTP
// listener and a real admin key.
type benchSite struct {
	store *pebble.Store
	site  *projections.Site
	http  *httptest.Server
	key   string
}

func newBenchSite(b *testing.B) *benchSite {
	b.Helper()
	store, err := pebble.Open(b.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	site, _ := projections.NewSite(projections.SiteConfig{ID: "bench", Storage: store})
	ks := keys.NewStore(store.Bucket("keys"), nil, nil)
	_, key, _ := ks.Create(context.Background(), "bench", []string{keys.ScopeAdmin}, nil, 0)
	srv := httptest.NewServer(api.NewServer(api.Config{Site: site, Auth: keyAuth{ks}, Logger: quiet, MaxBodyBytes: 64 << 20}))
	b.Cleanup(srv.Close)
	if _, err := site.CreateProject(context.Background(), "bench", "", "bench"); err != nil {
		b.Fatal(err)
	}
	return &benchSite{store: store, site: site, http: srv, key: key}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// rawSyncWrites is the ceiling of durable single writes: clients
// goroutines each doing a Pebble Set with Sync of a value of size bytes.
func rawSyncWrites(b *testing.B, clients int, d time.Duration, size int) float64 {
	db := rawDB(b)
	val := bytes.Repeat([]byte("x"), size)
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if err := db.Set([]byte(fmt.Sprintf("k%02d-%09d", c, i)), val, cpebble.Sync); err != nil {
					panic(err)
				}
				n.Add(1)
			}
		}(c)
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// BenchmarkPutHTTP: durable single-token PUTs over HTTP from 16 concurrent
// clients, beside raw Pebble Sync writes from 16 goroutines; and GET latency
// measured by one more client while the writes go on.
func BenchmarkPutHTTP(b *testing.B) {
	const clients = 16
	dur := 3 * time.Second
	raw := rawSyncWrites(b, clients, dur, 350)

	s := newBenchSite(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 2}}
	do := func(method, path, body string) (int, error) {
		req, _ := http.NewRequest(method, s.http.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.key)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
	if code, err := do("PUT", "/v1/projects/bench/tokens/read.me", `{"$type":"color","$value":"#123456"}`); code != 201 {
		b.Fatalf("seed token: %d %v", code, err)
	}
	b.ResetTimer()
	var puts, errs atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	putLat := make([][]time.Duration, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				code, err := do("PUT", fmt.Sprintf("/v1/projects/bench/tokens/c%02d.t%07d", c, i),
					fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"token %d of client %d"}`, i&0xffffff, i, c))
				if err != nil || code != 201 {
					errs.Add(1)
					continue
				}
				putLat[c] = append(putLat[c], time.Since(t0))
				puts.Add(1)
			}
		}(c)
	}
	var lat []time.Duration
	for time.Now().Before(deadline) {
		t0 := time.Now()
		if code, err := do("GET", "/v1/projects/bench/tokens/read.me", ""); code != 200 || err != nil {
			b.Fatalf("GET under load: %d %v", code, err)
		}
		lat = append(lat, time.Since(t0))
	}
	wg.Wait()
	b.StopTimer()
	if errs.Load() > 0 {
		b.Fatalf("%d PUTs failed", errs.Load())
	}
	ours := float64(puts.Load()) / dur.Seconds()
	b.ReportMetric(ours, "puts/s")
	b.ReportMetric(raw, "raw-sync-writes/s")
	b.ReportMetric(ours/raw, "ratio")
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "get-p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "get-p99-ms")
	var all []time.Duration
	for _, l := range putLat {
		all = append(all, l...)
	}
	b.ReportMetric(float64(percentile(all, 0.50).Microseconds())/1000, "put-p50-ms")
	b.ReportMetric(float64(percentile(all, 0.99).Microseconds())/1000, "put-p99-ms")
}

// tokenChanges returns n token creations in one batch.
func tokenChanges(n int, prefix string) []projections.Change {
	cs := make([]projections.Change, n)
	for i := range cs {
		cs[i] = projections.Change{Path: fmt.Sprintf("%s.g%03d.t%05d", prefix, i%100, i),
			Data: json.RawMessage(fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"token %d"}`, i*2654435761&0xffffff, i))}
	}
	return cs
}

// BenchmarkChangesBatch10k: one atomic batch of 10,000 new tokens, committed
// durably: through the domain and store, and end to end over HTTP.
func BenchmarkChangesBatch10k(b *testing.B) {
	s := newBenchSite(b)
	ctx := context.Background()
	var direct, overHTTP []time.Duration
	for round := 0; round < 5; round++ {
		cs := tokenChanges(10000, fmt.Sprintf("d%d", round))
		t0 := time.Now()
		if _, err := s.site.Apply(ctx, "bench", "bench", cs); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))

		body, _ := json.Marshal(map[string]any{"changes": tokenChanges(10000, fmt.Sprintf("h%d", round))})
		req, _ := http.NewRequest("POST", s.http.URL+"/v1/projects/bench/changes", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.key)
		req.Header.Set("Content-Type", "application/json")
		t0 = time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("POST changes: %v %v", res.StatusCode, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		overHTTP = append(overHTTP, time.Since(t0))
	}
	b.ReportMetric(float64(percentile(direct, 0.5).Microseconds())/1000, "commit-ms")
	b.ReportMetric(float64(percentile(overHTTP, 0.5).Microseconds())/1000, "http-ms")
}

// benchEvents makes n valid token events of one site: tokens created, then
// updated in turn (each event's parent is its token's previous event).
func benchEvents(n, tokens int) []*events.Event {
	rng := rand.New(rand.NewSource(1))
	ids := events.NewIDSource(rng)
	wall := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	out := make([]*events.Event, 0, n)
	last := make([]*events.Event, tokens)
	ents := make([]string, tokens)
	var head events.Head
	for i := 0; i < n; i++ {
		wall = wall.Add(time.Millisecond)
		t := i % tokens
		d := events.Draft{Type: events.TokenSet, Actor: "bench"}
		val := events.Change{Field: "$value", Value: events.JSONString(fmt.Sprintf("#%06x", rng.Intn(1<<24)))}
		if last[t] == nil {
			ents[t] = ids.New(wall).String()
			d.Path = fmt.Sprintf("g%03d.t%07d", t%1000, t)
			d.Changes = events.Changes{
				{Field: "$description", Value: events.JSONString(fmt.Sprintf("token %d", t))},
				{Field: "$type", Value: json.RawMessage(`"color"`)},
				val,
				{Field: "path", Value: events.JSONString(d.Path)},
			}
		} else {
			d.Path = last[t].Path
			d.Parents = []ulid.ULID{last[t].ID}
			d.Changes = events.Changes{val}
		}
		d.Entity = ents[t]
		e := events.Stamp(d, "bench", "bench", head, uint64(i+2), ids.New(wall), wall)
		head = events.Head{Seq: e.Seq, Hash: e.Hash}
		last[t] = e
		out = append(out, e)
	}
	return out
}

// withProject prepends the project's creation to evs, re-stamping nothing:
// the creation is another site's event.
func withProject(evs []*events.Event) []*events.Event {
	wall := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	ids := events.NewIDSource(rand.New(rand.NewSource(2)))
	p := events.Stamp(events.Draft{Type: events.ProjectCreate, Entity: "bench", Path: "bench", Actor: "bench",
		Changes: events.Changes{{Field: "name", Value: events.JSONString("bench")}}}, "bench", "origin", events.Head{}, 1, ids.New(wall), wall)
	return append([]*events.Event{p}, evs...)
}

// BenchmarkAppendVsRaw: the append path (events, their indexes and the
// projection, in one synced batch per 1,000 events) against the raw ceiling:
// a plain Pebble batch of the same events' bytes, synced, per 1,000.
func BenchmarkAppendVsRaw(b *testing.B) {
	const n, per = 100_000, 1000
	evs := withProject(benchEvents(n, 20_000))
	db := rawDB(b)
	t0 := time.Now()
	for i := 1; i < len(evs); i += per {
		batch := db.NewBatch()
		for _, e := range evs[i:min(i+per, len(evs))] {
			batch.Set(append([]byte("L"+e.Project), e.ID[:]...), e.Marshal(), nil)
		}
		if err := batch.Commit(cpebble.Sync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	raw := float64(n) / time.Since(t0).Seconds()

	store, err := pebble.Open(b.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	log := projections.NewLog(store)
	ctx := context.Background()
	if _, err := log.Append(ctx, evs[0]); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0 = time.Now()
	for i := 1; i < len(evs); i += per {
		if _, err := log.Append(ctx, evs[i:min(i+per, len(evs))]...); err != nil {
			b.Fatal(err)
		}
	}
	ours := float64(n) / time.Since(t0).Seconds()
	b.StopTimer()
	b.ReportMetric(ours, "append-events/s")
	b.ReportMetric(raw, "raw-batch-events/s")
	b.ReportMetric(ours/raw, "ratio")
}

// BenchmarkRebuild1M: `dss-sync rebuild` of a project of 1,000,000 events
// (200,000 tokens written 5 times each), as its own process, whose peak RSS
// the kernel reports.
func BenchmarkRebuild1M(b *testing.B) {
	const n, tokens = 1_000_000, 200_000
	dir := b.TempDir()
	store, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	evs := withProject(benchEvents(n, tokens))
	log := projections.NewLog(store)
	t0 := time.Now()
	for i := 0; i < len(evs); i += 10_000 {
		if _, err := log.Append(context.Background(), evs[i:min(i+10_000, len(evs))]...); err != nil {
			b.Fatal(err)
		}
	}
	load := time.Since(t0)
	store.Close()
	evs = nil
	bin := buildBinary(b)
	if keep := os.Getenv("DSS_BENCH_KEEP"); keep != "" { // for profiling the rebuild by hand
		exec.Command("cp", "-r", dir, keep).Run()
	}
	b.ResetTimer()
	cmd := exec.Command(bin, "rebuild", "--data-dir", dir)
	cmd.Stderr = os.Stderr
	t0 = time.Now()
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("rebuild: %v\n%s", err, out)
	}
	took := time.Since(t0)
	b.StopTimer()
	// The process reports its own peak RSS (VmHWM): rusage's maxrss of a
	// child counts the fork of this large test process before the exec.
	var rss float64
	for _, line := range strings.Split(string(out), "\n") {
		fmt.Sscanf(line, "peak RSS %f MiB", &rss)
	}
	b.ReportMetric(took.Seconds(), "rebuild-s")
	b.ReportMetric(rss, "peak-rss-MiB")
	b.ReportMetric(float64(n)/load.Seconds(), "load-events/s")
}

// benchPeers returns two sites over Pebble stores sharing project "bench".
func benchPeers(b *testing.B) (local, peer *projections.Site, peerStore *pebble.Store) {
	b.Helper()
	mk := func(id string) (*projections.Site, *pebble.Store) {
		store, err := pebble.Open(b.TempDir(), pebble.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		s, _ := projections.NewSite(projections.SiteConfig{ID: id, Storage: store})
		return s, store
	}
	local, localStore := mk("paris")
	peer, peerStore = mk("lyon")
	if _, err := local.CreateProject(context.Background(), "bench", "", "bench"); err != nil {
		b.Fatal(err)
	}
	sync := func(to *projections.Site, from *pebble.Store) {
		var evs []*events.Event
		projections.NewLog(from).Scan(context.Background(), "bench", events.Position{}, func(e *events.Event) error {
			evs = append(evs, e)
			return nil
		})
		if _, err := to.Receive(context.Background(), "bench", evs); err != nil {
			b.Fatal(err)
		}
	}
	_ = localStore
	b.Cleanup(func() {})
	peerSync = func() { sync(local, peerStore) }
	localSync = func() { sync(peer, localStore) }
	return local, peer, peerStore
}

var peerSync, localSync func()

// BenchmarkMerge: a site with 5,000 local changes receives 3,000 changes a
// peer made concurrently, 1,500 of them conflicting (the same token value
// set to another value) and 1,500 merging cleanly (another field): the
// time for the receiving site to fold them, open the conflicts and commit.
func BenchmarkMerge(b *testing.B) {
	ctx := context.Background()
	local, peer, peerStore := benchPeers(b)
	if _, err := local.Apply(ctx, "bench", "bench", tokenChanges(5000, "m")); err != nil {
		b.Fatal(err)
	}
	localSync() // the peer starts from the same 5,000 tokens
	var mine, theirs []projections.Change
	for i, c := range tokenChanges(5000, "m") {
		mine = append(mine, projections.Change{Path: c.Path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"token %d"}`, (i*7919+1)&0xffffff, i))})
		switch {
		case i < 1500: // the same field, another value: a conflict
			theirs = append(theirs, projections.Change{Path: c.Path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"color","$value":"#%06x","$description":"token %d"}`, (i*104729+3)&0xffffff, i))})
		case i < 3000: // another field: merges
			var d map[string]json.RawMessage
			json.Unmarshal(c.Data, &d)
			theirs = append(theirs, projections.Change{Path: c.Path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"color","$value":%s,"$description":"edited elsewhere %d"}`, d["$value"], i))})
		}
	}
	if _, err := local.Apply(ctx, "bench", "paris-user", mine); err != nil {
		b.Fatal(err)
	}
	if _, err := peer.Apply(ctx, "bench", "lyon-user", theirs); err != nil {
		b.Fatal(err)
	}
	var incoming []*events.Event
	projections.NewLog(peerStore).Scan(ctx, "bench", events.Position{}, func(e *events.Event) error {
		if e.Site == "lyon" {
			incoming = append(incoming, e)
		}
		return nil
	})
	b.ResetTimer()
	if f := os.Getenv("DSS_BENCH_MERGE_PROFILE"); f != "" {
		pf, _ := os.Create(f)
		pprof.StartCPUProfile(pf)
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	t0 := time.Now()
	rc, err := local.Receive(ctx, "bench", incoming)
	took := time.Since(t0)
	b.StopTimer()
	if err != nil || len(rc.Applied) != 3000 {
		b.Fatalf("merge: %v applied %d", err, len(rc.Applied))
	}
	p, _ := local.Project(ctx, "bench")
	if p.Counts.Conflicts != 1500 {
		b.Fatalf("%d conflicts, want 1500", p.Counts.Conflicts)
	}
	b.ReportMetric(float64(took.Microseconds())/1000, "merge-ms")
	b.ReportMetric(float64(took.Microseconds())/3000, "us/incoming-event")
}

// BenchmarkLateArrival: the cost of one event arriving late (concurrent
// with the entity's last write), which recomputes its entity from a history
// of n events, for n = 10, 100, 1,000.
func BenchmarkLateArrival(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 100, 1000} {
		local, peer, peerStore := benchPeers(b)
		path := "hot.token"
		if _, err := local.ApplyOne(ctx, "bench", "u", projections.Change{Path: path, Data: json.RawMessage(`{"$type":"number","$value":0}`)}); err != nil {
			b.Fatal(err)
		}
		localSync()
		for i := 1; i < n; i++ {
			local.ApplyOne(ctx, "bench", "u", projections.Change{Path: path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"number","$value":%d}`, i))})
		}
		const rounds = 50
		var late []*events.Event
		for i := 0; i < rounds; i++ { // the peer writes on its stale copy: each is concurrent with the local history
			peer.ApplyOne(ctx, "bench", "v", projections.Change{Path: path, Data: json.RawMessage(fmt.Sprintf(`{"$type":"number","$value":%d,"$description":"late %d"}`, -i, i))})
		}
		projections.NewLog(peerStore).Scan(ctx, "bench", events.Position{}, func(e *events.Event) error {
			if e.Site == "lyon" {
				late = append(late, e)
			}
			return nil
		})
		t0 := time.Now()
		for _, e := range late {
			if _, err := local.Receive(ctx, "bench", []*events.Event{e}); err != nil {
				b.Fatal(err)
			}
		}
		per := time.Since(t0) / rounds
		b.ReportMetric(float64(per.Microseconds()), fmt.Sprintf("us/late-event@%d", n))
	}
}

// benchMain starts a site in-process (real HTTP, embedded JetStream).
func benchMain(b *testing.B, dir, site string) (*Main, string) {
	b.Helper()
	cfg, err := loadConfig([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--site", site}, env(nil))
	if err != nil {
		b.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: quiet}
	if err := m.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(context.Background()) })
	key, _ := os.ReadFile(filepath.Join(dir, "admin.key"))
	return m, strings.TrimSpace(string(key))
}

// benchSeed creates project "design" with n tokens (10% aliases) and 50
// components on a running site.
func benchSeed(b *testing.B, m *Main, n int) {
	b.Helper()
	ctx := context.Background()
	if _, err := m.Site.CreateProject(ctx, "design", "Design", "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := m.Site.Apply(ctx, "design", "bench", seedChanges(n)); err != nil {
		b.Fatal(err)
	}
}

// seedChanges are benchSeed's changes: n tokens, every tenth an alias of
// another, and 50 components using them.
func seedChanges(n int) []projections.Change {
	cs := tokenChanges(n, "t")
	for i := 0; i < n/10; i++ {
		cs[i*10+9].Data = json.RawMessage(fmt.Sprintf(`{"$value":"{%s}"}`, cs[i*10].Path))
	}
	for i := 0; i < 50; i++ {
		cs = append(cs, projections.Change{Kind: "component", Path: fmt.Sprintf("C%02d", i),
			Data: json.RawMessage(fmt.Sprintf(`{"description":"component %d","tokens":[%q]}`, i, cs[i].Path))})
	}
	return cs
}

// clientErrorDetail adds the site's problem document to a refusal, so a
// failing benchmark says which check refused.
func clientErrorDetail(err error) error {
	var ce *api.ClientError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %s", err, ce.Body)
	}
	return err
}

func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

// BenchmarkArchives10k: export of a 10,000-token project (a signed archive
// with history, and a DTCG file), its dry-run analysis on another site, and
// its import there through JetStream (spool, checks, job chunks published
// and consumed, folded), each over HTTP. Beside them, the raw JetStream
// ceiling: publish and consume-ack of the same number of messages.
func BenchmarkArchives10k(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	src, keySrc := benchMain(b, b.TempDir(), "paris")
	benchSeed(b, src, n)
	c := api.NewClient(src.HTTPURL(), keySrc)
	var archiveBytes []byte
	var exp, expDTCG []time.Duration
	for i := 0; i < 5; i++ {
		var buf bytes.Buffer
		t0 := time.Now()
		if err := c.Download(ctx, "/v1/projects/design/export", url.Values{"format": {"dss"}}, &buf, nil); err != nil {
			b.Fatal(err)
		}
		exp = append(exp, time.Since(t0))
		archiveBytes = bytes.Clone(buf.Bytes())
		buf.Reset()
		t0 = time.Now()
		if err := c.Download(ctx, "/v1/projects/design/export", url.Values{"format": {"dtcg"}}, &buf, nil); err != nil {
			b.Fatal(err)
		}
		expDTCG = append(expDTCG, time.Since(t0))
	}
	var dry, imp []time.Duration
	for i := 0; i < 3; i++ {
		dst, keyDst := benchMain(b, b.TempDir(), "lyon")
		dc := api.NewClient(dst.HTTPURL(), keyDst)
		t0 := time.Now()
		benchDryRun(b, dc, archiveBytes)
		dry = append(dry, time.Since(t0))
		t0 = time.Now()
		j := benchImport(b, dst, dc, archiveBytes)
		imp = append(imp, time.Since(t0))
		checkImported(b, dst, j, n)
	}
	raw := rawJetStream(b, n, 300)
	b.ReportMetric(float64(median(exp).Microseconds())/1000, "export-ms")
	b.ReportMetric(float64(median(expDTCG).Microseconds())/1000, "export-dtcg-ms")
	b.ReportMetric(float64(median(dry).Microseconds())/1000, "dry-run-ms")
	b.ReportMetric(float64(median(imp).Microseconds())/1000, "import-ms")
	b.ReportMetric(float64(len(archiveBytes))/1024, "archive-KiB")
	b.ReportMetric(float64(raw.Microseconds())/1000, "raw-js-10k-msgs-ms")
}

// benchDryRun posts archive to the import endpoint with dry_run=true and
// reads the whole answer.
func benchDryRun(b *testing.B, dc *api.Client, archive []byte) {
	b.Helper()
	res, err := dc.Do(context.Background(), "POST", "/v1/projects/design/import", url.Values{"dry_run": {"true"}}, "application/zip", bytes.NewReader(archive))
	if err != nil {
		b.Fatal(clientErrorDetail(err))
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// benchImport imports archive into project design of dst over HTTP and,
// when a job carries the import on, waits for the job: its end is the
// import's. It returns the job as it ended.
func benchImport(b *testing.B, dst *Main, dc *api.Client, archive []byte) api.Job {
	b.Helper()
	ctx := context.Background()
	res, err := dc.Do(ctx, "POST", "/v1/projects/design/import", nil, "application/zip", bytes.NewReader(archive))
	if err != nil {
		b.Fatalf("import: %v", clientErrorDetail(err))
	}
	var j api.Job
	err = json.NewDecoder(res.Body).Decode(&j)
	res.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if res.StatusCode == http.StatusAccepted {
		done, err := dst.Jobs.Wait(ctx, j.ID)
		if err != nil {
			b.Fatal(err)
		}
		j.State, j.Error = string(done.State), done.Error
	}
	return j
}

// checkImported fails the benchmark unless the import j succeeded and left
// project design of dst with n tokens.
func checkImported(b *testing.B, dst *Main, j api.Job, n int) {
	b.Helper()
	if j.State != "succeeded" {
		b.Fatalf("import of %d tokens: job %s: %s", n, j.State, j.Error)
	}
	p, err := dst.Site.Project(context.Background(), "design")
	if err != nil || p.Counts.Tokens != int64(n) {
		b.Fatalf("after the import: %v, %+v", err, p)
	}
}

// rawJetStream is the ceiling of JetStream on this machine: n messages of
// size bytes published asynchronously with Nats-Msg-Id into a file stream,
// then consumed and acknowledged one by one by a pull consumer.
func rawJetStream(b *testing.B, n, size int) time.Duration {
	b.Helper()
	ctx := context.Background()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{Name: "raw", Listen: "127.0.0.1:-1", StoreDir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	nc, err := jetstream.Connect(srv.URL(), "raw")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc, natsjs.WithPublishAsyncMaxPending(4096))
	st, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: natsjs.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), size)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync("raw.e", payload, natsjs.WithMsgID(strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	cons, _ := st.CreateConsumer(ctx, natsjs.ConsumerConfig{Durable: "raw", AckPolicy: natsjs.AckExplicitPolicy, MaxAckPending: 20_000})
	for got := 0; got < n; {
		batch, err := cons.Fetch(min(1000, n-got), natsjs.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			m.Ack()
			got++
		}
	}
	return time.Since(t0)
}

// BenchmarkImport1MJob: a DTCG file of 1,000,000 tokens imported as a job
// into a site running as its own process (the real binary, --cache-size
// 64), whose peak RSS (VmHWM) is read before it stops.
func BenchmarkImport1MJob(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	file := filepath.Join(dir, "big.tokens.json")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	enc := dtcg.NewEncoder(f) // tokens in path order, as the encoder streams groups
	for i := 0; i < n && err == nil; i++ {
		err = enc.Token(fmt.Sprintf("g%03d.t%07d", i/1000, i), []dtcg.Property{
			{Name: "$type", Value: json.RawMessage(`"color"`)},
			{Name: "$value", Value: json.RawMessage(fmt.Sprintf(`"#%06x"`, i&0xffffff))}})
	}
	if err == nil {
		err = enc.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(file)

	bin := buildBinary(b)
	data := filepath.Join(dir, "data")
	p := startProc(b, bin, data, "big", "--cache-size", "32", "--memory-limit", "256")
	base := p.http
	key, _ := os.ReadFile(filepath.Join(data, "admin.key"))
	c := api.NewClient(base, strings.TrimSpace(string(key)))
	ctx := context.Background()
	b.ResetTimer()
	t0 := time.Now()
	in, _ := os.Open(file)
	res, err := c.Do(ctx, "POST", "/v1/projects/big/import", nil, "application/json", in)
	in.Close()
	if err != nil {
		b.Fatalf("import: %v\n%s", clientErrorDetail(err), p.logs)
	}
	var j api.Job
	json.NewDecoder(res.Body).Decode(&j)
	res.Body.Close()
	if res.StatusCode != 202 {
		b.Fatalf("import answered %d, want 202 and a job", res.StatusCode)
	}
	done, err := c.WaitJob(ctx, j.ID, nil)
	took := time.Since(t0)
	b.StopTimer()
	if err != nil || done.State != "succeeded" {
		b.Fatalf("job %+v %v\n%s", done, err, p.logs)
	}
	hwm := vmHWM(strconv.Itoa(p.cmd.Process.Pid))
	b.ReportMetric(took.Seconds(), "import-1M-s")
	b.ReportMetric(float64(n)/took.Seconds(), "tokens/s")
	b.ReportMetric(float64(hwm)/(1<<20), "server-peak-rss-MiB")
	b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
}

// BenchmarkReplication100k: a site holding 100,000 events (10,000 tokens
// written ten times over) is joined by two new sites that name it as their
// peer; the figure is the time until both have applied every event, beside
// the raw ceiling of JetStream publishing and consuming (with acks) as many
// messages of the same size in the same run.
func BenchmarkReplication100k(b *testing.B) {
	const tokens, rounds = 10_000, 10
	ctx := context.Background()
	tmp := b.TempDir()
	originAddr := freeAddr(b)
	origin := MustRunMain(b, filepath.Join(tmp, "paris"), "paris", "--nats-listen", originAddr)
	if _, err := origin.Site.CreateProject(ctx, "design", "Design", "bench"); err != nil {
		b.Fatal(err)
	}
	want := benchRounds(b, origin, rounds, tokens, 0)
	t0 := time.Now()
	var peers []*Main
	for _, name := range []string{"lyon", "nice"} {
		peers = append(peers, MustRunMain(b, filepath.Join(tmp, name), name, "--peer", "nats://"+originAddr))
	}
	for _, m := range peers {
		awaitVector(b, m, "paris", want, t0)
	}
	took := time.Since(t0)
	raw := rawJetStream(b, int(want), 350)
	b.ReportMetric(float64(want), "events")
	b.ReportMetric(took.Seconds(), "to-two-peers-s")
	b.ReportMetric(float64(want)/took.Seconds(), "events/s")
	b.ReportMetric(raw.Seconds(), "raw-js-s")
	b.ReportMetric(raw.Seconds()/took.Seconds(), "ratio-vs-raw")
}

// benchRounds writes rounds batches of tokens changes on m (a new value
// each round: every change is an event), waits until they are published,
// and returns m's own entry of the project's version vector.
func benchRounds(b *testing.B, m *Main, rounds, tokens, offset int) uint64 {
	b.Helper()
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		cs := tokenChanges(tokens, "t")
		for i := range cs {
			cs[i].Data = json.RawMessage(fmt.Sprintf(`{"$type":"number","$value":%d}`, offset+r*tokens+i))
		}
		if _, err := m.Site.Apply(ctx, "design", "bench", cs); err != nil {
			b.Fatal(err)
		}
	}
	if err := m.Outbox.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	p, err := m.Site.Project(ctx, "design")
	if err != nil {
		b.Fatal(err)
	}
	return p.Vector[m.Config.Site]
}

// awaitVector polls m until it holds site's events through seq want.
func awaitVector(b *testing.B, m *Main, site string, want uint64, since time.Time) {
	b.Helper()
	for {
		p, err := m.Site.Project(context.Background(), "design")
		if err == nil && p.Vector[site] == want {
			return
		}
		if time.Since(since) > 5*time.Minute {
			b.Fatalf("%s: not caught up after 5 minutes: %v", m.Config.Site, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkCatchUp50k: lyon, a peer of paris, is stopped while paris takes
// 50,000 events; restarted, it resumes from its consumer's position and
// applies the backlog. Reported beside raw JetStream publish+consume of as
// many messages in the same run.
func BenchmarkCatchUp50k(b *testing.B) {
	const tokens, rounds = 10_000, 5
	ctx := context.Background()
	tmp := b.TempDir()
	originAddr := freeAddr(b)
	origin := MustRunMain(b, filepath.Join(tmp, "paris"), "paris", "--nats-listen", originAddr)
	if _, err := origin.Site.CreateProject(ctx, "design", "Design", "bench"); err != nil {
		b.Fatal(err)
	}
	before := benchRounds(b, origin, 1, 100, 0)
	lyonDir, lyonFlags := filepath.Join(tmp, "lyon"), []string{"--peer", "nats://" + originAddr}
	lyon := MustRunMain(b, lyonDir, "lyon", lyonFlags...)
	awaitVector(b, lyon, "paris", before, time.Now())
	if err := lyon.Close(ctx); err != nil {
		b.Fatal(err)
	}
	want := benchRounds(b, origin, rounds, tokens, 1000)
	backlog := want - before
	t0 := time.Now()
	lyon = MustRunMain(b, lyonDir, "lyon", lyonFlags...)
	awaitVector(b, lyon, "paris", want, t0)
	took := time.Since(t0)
	raw := rawJetStream(b, int(backlog), 350)
	b.ReportMetric(float64(backlog), "backlog-events")
	b.ReportMetric(took.Seconds(), "catch-up-s")
	b.ReportMetric(float64(backlog)/took.Seconds(), "events/s")
	b.ReportMetric(raw.Seconds(), "raw-js-s")
	b.ReportMetric(raw.Seconds()/took.Seconds(), "ratio-vs-raw")
}

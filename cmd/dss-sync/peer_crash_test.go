package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/events"
)

// meshSite is one site of TestPeerKilledMidStreamCatchesUp: the real
// binary, restarted on the same data dir with the same flags.
type meshSite struct {
	name, dir, key string
	flags          []string
	procs          []*proc // every run, the current one last
}

func (s *meshSite) start(t *testing.T, bin string) {
	t.Helper()
	s.procs = append(s.procs, startProcArgs(t, bin, append([]string{"serve", "--data-dir", s.dir, "--rate-limit-ip", "off", "--rate-limit-key", "off",
		"--http-addr", "127.0.0.1:0", "--site", s.name, "--log-format", "json"}, s.flags...)))
	if s.key == "" {
		s.key = adminKey(t, s.dir)
	}
}

func (s *meshSite) p() *proc { return s.procs[len(s.procs)-1] }

// meshProject is what GET /v1/projects/{p} says of the project.
type meshProject struct {
	Vector map[string]uint64 `json:"vector"`
	Counts struct {
		Tokens  int `json:"tokens"`
		Events  int `json:"events"`
		Pending int `json:"pending"`
	} `json:"counts"`
}

func (s *meshSite) project(t *testing.T) (meshProject, int) {
	t.Helper()
	var pr meshProject
	got := call(t, s.p().http, s.key, "GET", "/v1/projects/crash", "", &pr)
	return pr, got
}

func (s *meshSite) status(t *testing.T) (api.SyncStatus, string) {
	t.Helper()
	var st api.SyncStatus
	if got := call(t, s.p().http, s.key, "GET", "/v1/sync/status", "", &st); got != 200 {
		t.Fatalf("%s: GET /v1/sync/status: %d", s.name, got)
	}
	b, _ := json.Marshal(st)
	return st, string(b)
}

// meshWriter is the crash test's writer for a site that may outlive it: it
// PUTs new values to its own paths until stop is closed (checked between
// writes) or a write fails; it records the last acknowledged value of each
// path and, when a write failed, the value in flight.
type meshWriter struct {
	id              int
	acked, inflight map[string]string
	values          map[string]map[string]bool // every value sent, by path
	writes          *atomic.Int64              // acknowledged writes of the site's writers
	err             error                      // the failed write; nil when stop ended it
	refused         bool                       // the site answered the failed write with an error status
}

func newMeshWriter(id int, writes *atomic.Int64) *meshWriter {
	return &meshWriter{id: id, acked: map[string]string{}, inflight: map[string]string{},
		values: map[string]map[string]bool{}, writes: writes}
}

func (w *meshWriter) run(base, key string, rng *rand.Rand, stop <-chan struct{}) {
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		select {
		case <-stop:
			return
		default:
		}
		path := fmt.Sprintf("w%d.t%d", w.id, rng.Intn(25))
		value := fmt.Sprintf("#%06x", rng.Intn(1<<24))
		w.inflight[path] = value
		if w.values[path] == nil {
			w.values[path] = map[string]bool{}
		}
		w.values[path][value] = true
		req, _ := http.NewRequest("PUT", base+"/v1/projects/crash/tokens/"+path,
			strings.NewReader(`{"$type":"color","$value":"`+value+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			w.err = err // the site is gone; this write may or may not have landed
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			w.err, w.refused = fmt.Errorf("PUT %s: %d %s", path, res.StatusCode, b), true
			return
		}
		w.acked[path] = value
		delete(w.inflight, path)
		w.writes.Add(1)
	}
}

// TestPeerKilledMidStreamCatchesUp: three sites of the real binary in a full
// mesh of peers, paris and lyon taking writes all along. nice is killed
// (SIGKILL) while it is applying their streams, the writes go on, then lyon
// is killed in the middle of its own writes; both restart on their data
// dirs. All three end with the same version vector and the same tokens,
// every acknowledged write (or the write in flight after it) is on every
// site, no site's log holds an event twice, and every site's status shows
// its peers connected with nothing behind.
func TestPeerKilledMidStreamCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("peer crash test: run without -short")
	}
	seed := int64(20260101)
	if s := os.Getenv("DSS_PEER_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (replay with DSS_PEER_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	bin := buildBinary(t)
	start := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(start).Seconds(), what) }

	tmp := t.TempDir()
	names := []string{"paris", "lyon", "nice"}
	sites := map[string]*meshSite{}
	addr := map[string]string{}
	for _, n := range names {
		addr[n] = freeAddr(t)
	}
	for _, n := range names {
		s := &meshSite{name: n, dir: filepath.Join(tmp, n), flags: []string{"--nats-listen", addr[n]}}
		for _, o := range names {
			if o != n {
				s.flags = append(s.flags, "--peer", "nats://"+addr[o])
			}
		}
		sites[n] = s
	}
	paris, lyon, nice := sites["paris"], sites["lyon"], sites["nice"]
	// Registered before any site starts, so it runs after their kills: on
	// failure, what every run of every site warned about.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range names {
			for i, p := range sites[n].procs {
				t.Logf("%s, run %d: warnings and errors:\n%s", n, i+1, logProblems(p, 60))
			}
		}
	})
	for _, n := range names {
		sites[n].start(t, bin)
		if want := addr[n]; !strings.HasSuffix(sites[n].p().natsURL, want) {
			t.Fatalf("%s: NATS at %s, want %s", n, sites[n].p().natsURL, want)
		}
	}
	phase("three sites started")

	if got := call(t, paris.p().http, paris.key, "POST", "/v1/projects", `{"id":"crash","name":"Crash"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	waitFor(t, 20*time.Second, "the project on every site", func() (bool, string) {
		for _, n := range names {
			if _, got := sites[n].project(t); got != 200 {
				return false, n + ": " + strconv.Itoa(got)
			}
		}
		return true, ""
	})
	phase("the project is on every site")

	// Writers: four on paris, four on lyon, each with its own paths.
	const perSite = 4
	var parisWrites, lyonWrites atomic.Int64
	stop := make(chan struct{})
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	t.Cleanup(stopWriters)
	var parisWG, lyonWG sync.WaitGroup
	var parisW, lyonW []*meshWriter
	for i := 0; i < 2*perSite; i++ {
		wrng := rand.New(rand.NewSource(rng.Int63()))
		s, wg, n := paris, &parisWG, &parisWrites
		if i >= perSite {
			s, wg, n = lyon, &lyonWG, &lyonWrites
		}
		w := newMeshWriter(i, n)
		if s == paris {
			parisW = append(parisW, w)
		} else {
			lyonW = append(lyonW, w)
		}
		base, key := s.p().http, s.key
		wg.Add(1)
		go func() { defer wg.Done(); w.run(base, key, wrng, stop) }()
	}
	writes := func() int64 { return parisWrites.Load() + lyonWrites.Load() }

	// nice is killed mid-stream: it has applied some of both streams' events,
	// and the writes go on.
	var atKill meshProject
	waitFor(t, 20*time.Second, "nice to be applying both writers' streams", func() (bool, string) {
		pr, got := nice.project(t)
		atKill = pr
		return got == 200 && pr.Vector["paris"] >= 30 && pr.Vector["lyon"] >= 30, fmt.Sprintf("nice's vector %v", pr.Vector)
	})
	nice.p().kill()
	killedAt := writes()
	phase(fmt.Sprintf("nice killed having applied %v; %d writes acknowledged", atKill.Vector, killedAt))

	// A bounded number of writes while nice is down, then lyon is killed in
	// the middle of its writers' stream: each stops at its write in flight.
	waitFor(t, 30*time.Second, "400 more writes with nice down", func() (bool, string) {
		n := writes() - killedAt
		return n >= 400, fmt.Sprintf("%d writes", n)
	})
	before := lyonWrites.Load()
	waitFor(t, 10*time.Second, "lyon's writers to be writing", func() (bool, string) {
		return lyonWrites.Load() > before, "no write acknowledged on lyon"
	})
	lyon.p().kill()
	lyonWG.Wait()
	phase(fmt.Sprintf("lyon killed after %d acknowledged writes there (%d on paris)", lyonWrites.Load(), parisWrites.Load()))
	inflight := 0
	for _, w := range lyonW {
		if w.err == nil || w.refused {
			t.Fatalf("lyon's writer %d stopped, but not by the kill: %v", w.id, w.err)
		}
		inflight += len(w.inflight)
	}
	t.Logf("lyon's writers: %d writes in flight at the kill", inflight)

	// Both restart on their data dirs while paris goes on writing; paris's
	// writers stop after a bounded number more.
	nice.start(t, bin)
	lyon.start(t, bin)
	restartedAt := parisWrites.Load()
	phase("nice and lyon restarted")
	waitFor(t, 30*time.Second, "200 more writes on paris after the restarts", func() (bool, string) {
		n := parisWrites.Load() - restartedAt
		return n >= 200, fmt.Sprintf("%d writes", n)
	})
	stopWriters()
	parisWG.Wait()
	for _, w := range parisW {
		if w.err != nil {
			t.Fatalf("paris's writer %d failed: %v", w.id, w.err)
		}
	}
	phase(fmt.Sprintf("writers stopped: %d acknowledged on paris, %d on lyon", parisWrites.Load(), lyonWrites.Load()))

	// Convergence: the same version vector, nothing held, the same tokens.
	// The messages a killed site had been delivered but had not
	// acknowledged would stay pending on its durable consumers for their
	// AckWait (30 s), holding what follows in the causal buffer; a restarted
	// applier replaces such a consumer from its acknowledged floor, so the
	// deadline here is well under 30 s and catches that stall coming back.
	var final meshProject
	waitFor(t, 20*time.Second, "the three sites to converge", func() (bool, string) {
		var seen []string
		ok := true
		var first string
		for i, n := range names {
			pr, got := sites[n].project(t)
			st, _ := sites[n].status(t)
			var lag []string
			for _, p := range st.Peers {
				lag = append(lag, fmt.Sprintf("%s:%s/%d", p.Site, p.Connection, p.Lag.Events))
			}
			seen = append(seen, fmt.Sprintf("%s: %d vector %v pending %d peers %v", n, got, pr.Vector, pr.Counts.Pending, lag))
			v := fmt.Sprint(pr.Vector)
			if i == 0 {
				first, final = v, pr
			}
			ok = ok && got == 200 && v == first && pr.Counts.Pending == 0
		}
		if !ok {
			return false, strings.Join(seen, "; ")
		}
		p, _ := json.Marshal(fetchTokens(t, paris.p().http, paris.key))
		for _, n := range names[1:] {
			if s, _ := json.Marshal(fetchTokens(t, sites[n].p().http, sites[n].key)); string(s) != string(p) {
				return false, fmt.Sprintf("same vectors %s, but the tokens of %s differ from paris's", first, n)
			}
		}
		return true, ""
	})
	phase(fmt.Sprintf("converged on %v", final.Vector))
	if final.Vector["paris"] <= atKill.Vector["paris"] || final.Vector["lyon"] <= atKill.Vector["lyon"] {
		t.Fatalf("nice was not killed mid-stream: it had %v, the end is %v", atKill.Vector, final.Vector)
	}

	// Every acknowledged write is on every site: the last acknowledged value
	// of each path, or the value in flight after it when the site died; a
	// creation in flight may have landed or not. Nothing else is there.
	all := append(append([]*meshWriter{}, parisW...), lyonW...)
	for _, n := range names {
		toks := map[string]string{}
		for _, tok := range fetchTokens(t, sites[n].p().http, sites[n].key) {
			var v string
			if err := json.Unmarshal(tok.Value, &v); err != nil {
				t.Fatalf("%s: token %s: $value %s: %v", n, tok.Path, tok.Value, err)
			}
			toks[tok.Path] = v
		}
		written := 0
		for _, w := range all {
			for path, want := range w.acked {
				got, ok := toks[path]
				switch {
				case !ok:
					t.Errorf("%s: token %s is missing; %q was acknowledged", n, path, want)
				case got != want && got != w.inflight[path]:
					t.Errorf("%s: token %s = %q, want the acknowledged %q (or the in-flight %q)", n, path, got, want, w.inflight[path])
				}
			}
			for path, v := range w.inflight {
				if _, ok := w.acked[path]; !ok {
					if got, ok := toks[path]; ok && got != v {
						t.Errorf("%s: token %s = %q, but its only write was the unacknowledged %q", n, path, got, v)
					}
				}
			}
			for path := range w.values {
				if _, ok := toks[path]; ok {
					written++
				}
			}
		}
		if written != len(toks) {
			t.Errorf("%s: %d tokens, of which %d were written by the writers", n, len(toks), written)
		}
	}

	// Each site's log: every event once, hash chains unbroken, as many events
	// as the vector counts.
	var sum uint64
	for _, v := range final.Vector {
		sum += v
	}
	for _, n := range names {
		evs := fetchEvents(t, sites[n].p().http, sites[n].key)
		seen := map[string]int{}
		chains := events.NewChains()
		for i, e := range evs {
			id := e.ID.String()
			if j, dup := seen[id]; dup {
				t.Errorf("%s: event %s (%s seq %d) is in the log twice, at %d and %d", n, id, e.Site, e.Seq, j, i)
				continue
			}
			seen[id] = i
			if err := chains.Check(e); err != nil {
				t.Errorf("%s: event %d: %v", n, i, err)
				continue
			}
			chains.Advance(e)
		}
		if uint64(len(evs)) != sum {
			t.Errorf("%s: %d events in the log, the vector %v counts %d", n, len(evs), final.Vector, sum)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Each site's status: both peers connected, every stream drained.
	for _, n := range names {
		waitFor(t, 20*time.Second, n+"'s status to show its peers connected and nothing behind", func() (bool, string) {
			st, raw := sites[n].status(t)
			ok := st.Site == n && st.Connection == "connected" && len(st.Peers) == len(names)-1 &&
				fmt.Sprint(map[string]uint64(st.Vectors["crash"])) == fmt.Sprint(final.Vector)
			peers := map[string]bool{}
			for _, p := range st.Peers {
				peers[p.Site] = true
				ok = ok && p.Connection == "connected" && p.Error == "" && p.Lag.Events == 0 && len(p.Sites) > 0
				for _, ps := range p.Sites {
					ok = ok && ps.Behind == 0 && ps.Error == ""
				}
			}
			for _, o := range names {
				ok = ok && (o == n || peers[o])
			}
			return ok, raw
		})
	}
	phase("every status shows its peers connected and nothing behind")
}

// logProblems returns the warnings and errors of a site's log, the last max.
func logProblems(p *proc, max int) string {
	p.logMutex.Lock()
	defer p.logMutex.Unlock()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct{ Level string }
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Level == "WARN" || line.Level == "ERROR" {
			out = append(out, sc.Text())
		}
	}
	if len(out) > max {
		out = append([]string{fmt.Sprintf("(%d lines before)", len(out)-max)}, out[len(out)-max:]...)
	}
	return strings.Join(out, "\n")
}

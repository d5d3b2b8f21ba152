package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// buildBinary builds dss-sync once per test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func buildBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dss-sync-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "dss-sync")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// proc is a site running as a subprocess of the real binary.
type proc struct {
	cmd      *exec.Cmd
	http     string
	natsURL  string
	logs     *bytes.Buffer
	exited   chan struct{}
	logMutex sync.Mutex
}

// startProc starts `dss-sync serve` (with more flags) on random ports and
// waits for it to report its addresses in its log. The IP and key rate
// limits are off: the tests' clients write flat out from one address.
func startProc(t testing.TB, bin, dir, site string, flags ...string) *proc {
	t.Helper()
	return startProcArgs(t, bin, append([]string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:-1", "--site", site, "--log-format", "json",
		"--rate-limit-ip", "off", "--rate-limit-key", "off"}, flags...))
}

// startProcArgs starts the binary with the whole command line given (sites
// that name each other as peers need fixed NATS ports, and a flag may not
// be given twice), and waits for it to report its addresses in its log.
func startProcArgs(t testing.TB, bin string, args []string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	dieWithParent(cmd)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			ok := json.Unmarshal(sc.Bytes(), &line) == nil
			p.logMutex.Lock()
			p.logs.Write(append(sc.Bytes(), '\n'))
			switch {
			case !ok:
			case line["msg"] == "embedded NATS JetStream started":
				p.natsURL, _ = line["url"].(string)
			case line["msg"] == "dss-sync serving" && p.http == "":
				p.http, _ = line["http"].(string)
				close(ready)
			}
			p.logMutex.Unlock()
		}
	}()
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill) // whatever way the test ends, the site does not outlive it
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("dss-sync exited at start:\n%s", logText(p))
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("dss-sync did not start:\n%s", logText(p))
	}
	return p
}

func logText(p *proc) string {
	p.logMutex.Lock()
	defer p.logMutex.Unlock()
	return p.logs.String()
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// writer runs one client's writes until the site dies: each write is a PUT
// of a new value to one of its own paths; it records the last acknowledged
// value of each path, and the value in flight when the site died.
type writer struct {
	acked, inflight map[string]string
}

func (w *writer) run(base, key string, id int, rng *rand.Rand) {
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		path := fmt.Sprintf("w%d.t%d", id, rng.Intn(25))
		value := fmt.Sprintf("#%06x", rng.Intn(1<<24))
		w.inflight[path] = value
		req, _ := http.NewRequest("PUT", base+"/v1/projects/crash/tokens/"+path,
			strings.NewReader(`{"$type":"color","$value":"`+value+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return // the site is gone; this write may or may not have landed
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			return
		}
		w.acked[path] = value
		delete(w.inflight, path)
	}
}

// TestCrashLosesNoAcknowledgedWrite kills the real binary with SIGKILL at
// random moments under 16 concurrent writers, 20 times. After each restart:
// every acknowledged write is there, the hash chains verify, log and
// projection agree, and JetStream holds each event exactly once.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: run without -short")
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("DSS_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (replay with DSS_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	const rounds, writers = 20, 16
	ws := make([]*writer, writers)
	for i := range ws {
		ws[i] = &writer{acked: map[string]string{}, inflight: map[string]string{}}
	}
	var key string
	total := 0
	for round := 0; round <= rounds; round++ {
		p := startProc(t, bin, dir, "crash")
		if round == 0 {
			key = adminKey(t, dir)
			if got := call(t, p.http, key, "POST", "/v1/projects", `{"id":"crash"}`, nil); got != 201 {
				t.Fatalf("create project: %d", got)
			}
		}
		n := verifyAfterCrash(t, p, key, ws)
		if n < total {
			t.Fatalf("round %d: the log shrank from %d to %d events", round, total, n)
		}
		total = n
		if round == rounds {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Fatal("no exit 30 s after SIGTERM")
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit %d after SIGTERM:\n%s", code, p.logs)
			}
			break
		}
		var wg sync.WaitGroup
		for i, w := range ws {
			wg.Add(1)
			wrng := rand.New(rand.NewSource(rng.Int63()))
			go func() { defer wg.Done(); w.run(p.http, key, i, wrng) }()
		}
		time.Sleep(time.Duration(100+rng.Intn(500)) * time.Millisecond) // the random moment of the crash
		p.kill()
		wg.Wait()
	}
	acked := 0
	for _, w := range ws {
		acked += len(w.acked)
	}
	t.Logf("%d rounds, %d events in the log, %d paths with acknowledged writes", rounds, total, acked)
	if total < 500 {
		t.Fatalf("only %d events: the load was too light to test anything", total)
	}
}

// verifyAfterCrash checks a restarted site and returns its event count.
func verifyAfterCrash(t *testing.T, p *proc, key string, ws []*writer) int {
	t.Helper()
	// 1. Every acknowledged write is present (or the write in flight after it).
	for _, w := range ws {
		for path, want := range w.acked {
			var tok struct {
				Value string `json:"$value"`
			}
			if got := call(t, p.http, key, "GET", "/v1/projects/crash/tokens/"+path, "", &tok); got != 200 {
				t.Fatalf("acknowledged token %s: status %d", path, got)
			}
			if tok.Value != want && tok.Value != w.inflight[path] {
				t.Fatalf("token %s = %s, want the acknowledged %s (or the in-flight %q)", path, tok.Value, want, w.inflight[path])
			}
			w.acked[path] = tok.Value // what is durable now
			delete(w.inflight, path)
		}
		for path, v := range w.inflight { // unacknowledged creations may have landed
			var tok struct {
				Value string `json:"$value"`
			}
			if call(t, p.http, key, "GET", "/v1/projects/crash/tokens/"+path, "", &tok) == 200 && tok.Value == v {
				w.acked[path] = v
			}
			delete(w.inflight, path)
		}
	}
	// 2. The log's hash chains verify.
	evs := fetchEvents(t, p.http, key)
	chains := events.NewChains()
	for _, e := range evs {
		if err := chains.Check(e); err != nil {
			t.Fatalf("hash chain: %v", err)
		}
		chains.Advance(e)
	}
	// 3. Log and projection agree: fold the log afresh and compare the reads.
	mem := projections.NewMemory()
	if _, err := projections.NewLog(mem).Append(context.Background(), evs...); err != nil {
		t.Fatalf("refold: %v", err)
	}
	site, _ := projections.NewSite(projections.SiteConfig{ID: "verify", Storage: mem})
	want, _, err := site.Tokens(context.Background(), "crash", projections.Query{Limit: projections.MaxLimit}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := fetchTokens(t, p.http, key)
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if !bytes.Equal(wb, gb) {
		t.Fatalf("projection disagrees with its log:\nserved: %.2000s\nrefold: %.2000s", gb, wb)
	}
	// 4. JetStream holds each event once, in commit order.
	checkStream(t, p, evs)
	return len(evs)
}

func fetchEvents(t *testing.T, base, key string) []*events.Event {
	t.Helper()
	return projectEvents(t, base, key, "crash")
}

// projectEvents reads a project's whole log over the API, as NDJSON.
func projectEvents(t *testing.T, base, key, project string) []*events.Event {
	t.Helper()
	var out []*events.Event
	after := ""
	for {
		req, _ := http.NewRequest("GET", base+"/v1/projects/"+project+"/events?limit=1000&after="+after, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Accept", "application/x-ndjson")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("events of %s: %s", project, res.Status)
		}
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := 0
		for sc.Scan() {
			e, err := events.ParseJSON(sc.Bytes())
			if err != nil {
				t.Fatalf("event from the log: %v", err)
			}
			out = append(out, e)
			n++
		}
		res.Body.Close()
		if n < 1000 {
			return out
		}
		after = out[len(out)-1].ID.String()
	}
}

func fetchTokens(t *testing.T, base, key string) []*projections.Token {
	t.Helper()
	out := []*projections.Token{}
	cursor := ""
	for {
		var page struct {
			Tokens []*projections.Token
			Next   *string
		}
		if got := call(t, base, key, "GET", "/v1/projects/crash/tokens?limit=1000&cursor="+cursor, "", &page); got != 200 {
			t.Fatalf("list tokens: %d", got)
		}
		out = append(out, page.Tokens...)
		if page.Next == nil {
			return out
		}
		cursor = *page.Next
	}
}

func checkStream(t *testing.T, p *proc, evs []*events.Event) {
	t.Helper()
	nc, err := nats.Connect(p.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st natsjs.Stream
	for { // the outbox catches up after a restart; wait for it
		if st, err = js.Stream(ctx, jetstream.StreamName("crash")); err == nil {
			if info, err := st.Info(ctx); err == nil && info.State.LastSeq >= uint64(len(evs)) {
				break
			}
		} else if !errors.Is(err, natsjs.ErrStreamNotFound) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the outbox did not publish %d events in 30 s", len(evs))
		case <-time.After(20 * time.Millisecond):
		}
	}
	info, _ := st.Info(ctx)
	if info.State.LastSeq != uint64(len(evs)) || info.State.Msgs != uint64(len(evs)) {
		t.Fatalf("stream holds %d messages (last seq %d), the log %d events", info.State.Msgs, info.State.LastSeq, len(evs))
	}
	inLog := map[string]bool{}
	for _, e := range evs {
		inLog[e.ID.String()] = true
	}
	cons, err := st.OrderedConsumer(ctx, natsjs.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 1; i <= len(evs); {
		batch, err := cons.Fetch(min(1000, len(evs)-i+1), natsjs.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			id := m.Headers().Get("Nats-Msg-Id")
			if m.Headers().Get(jetstream.HeaderCommit) != strconv.Itoa(i) || seen[id] || !inLog[id] {
				t.Fatalf("message %d: commit %s, id %s (seen before: %v, in the log: %v)", i, m.Headers().Get(jetstream.HeaderCommit), id, seen[id], inLog[id])
			}
			seen[id] = true
			i++
			got++
		}
		if err := batch.Error(); err != nil || got == 0 {
			t.Fatalf("reading the stream at message %d: %v", i, err)
		}
	}
}

// TestSIGTERMUnderLoad: a site stopped with SIGTERM while 16 clients write
// as fast as they can exits 0 (the graceful stop: requests in flight
// finish, the outbox is flushed, NATS and Pebble close), and restarted, it
// holds every write it acknowledged, with its log and stream in step.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startProc(t, bin, dir, "crash")
	key := adminKey(t, dir)
	if got := call(t, p.http, key, "POST", "/v1/projects", `{"id":"crash"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	ws := make([]*writer, 16)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &writer{acked: map[string]string{}, inflight: map[string]string{}}
		wg.Add(1)
		go func() { defer wg.Done(); ws[i].run(p.http, key, i, rand.New(rand.NewSource(int64(i)))) }()
	}
	waitFor(t, 20*time.Second, "the site to be under load", func() (bool, string) {
		var pr struct{ Counts struct{ Events int } }
		call(t, p.http, key, "GET", "/v1/projects/crash", "", &pr)
		return pr.Counts.Events >= 300, fmt.Sprint(pr.Counts.Events)
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("no exit 60 s after SIGTERM")
	}
	wg.Wait()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM under load:\n%s", code, p.logs)
	}
	p.logMutex.Lock()
	flushed := bytes.Contains(p.logs.Bytes(), []byte("outbox not flushed"))
	p.logMutex.Unlock()
	if flushed {
		t.Error("the graceful stop did not flush the outbox")
	}
	p = startProc(t, bin, dir, "crash")
	n := verifyAfterCrash(t, p, key, ws)
	acked := 0
	for _, w := range ws {
		acked += len(w.acked)
	}
	t.Logf("%d events, %d paths with acknowledged writes, all there after the restart", n, acked)
}

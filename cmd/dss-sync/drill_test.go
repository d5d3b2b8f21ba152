package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
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

	"github.com/dss-sync/dss-sync/internal/faultnet"
)

var (
	drillSeed  = flag.Int64("drill.seed", 0, "seed of TestFaultDrill (0: the fixed default)")
	drillSteps = flag.Int("drill.steps", 12, "random steps of TestFaultDrill (make soak runs more)")
)

// drillDefaultSeed is the seed make test runs.
const drillDefaultSeed = 20261122

// drillSite is one site of the drill: the real binary, restarted on the
// same data dir with the same flags, reaching each other site through a
// proxy of its own (out[to]).
type drillSite struct {
	name, dir, key string
	flags          []string
	out            map[string]*faultnet.Proxy
	procs          []*proc
}

func (s *drillSite) p() *proc { return s.procs[len(s.procs)-1] }

func (s *drillSite) args() []string {
	return append([]string{"serve", "--data-dir", s.dir, "--rate-limit-ip", "off", "--rate-limit-key", "off",
		"--http-addr", "127.0.0.1:0", "--site", s.name, "--log-format", "json"}, s.flags...)
}

// start runs the site; with fsize > 0, through /bin/sh under a file-size
// limit of fsize bytes (ulimit -f, in dash's 512-byte blocks).
func (s *drillSite) start(t *testing.T, bin string, fsize int64) {
	t.Helper()
	if fsize > 0 {
		script := fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, (fsize+511)/512)
		s.procs = append(s.procs, startProcArgs(t, "/bin/sh", append([]string{"-c", script, bin}, s.args()...)))
	} else {
		s.procs = append(s.procs, startProcArgs(t, bin, s.args()))
	}
	if s.key == "" {
		s.key = adminKey(t, s.dir)
	}
}

func (s *drillSite) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	return call(t, s.p().http, s.key, method, path, body, out)
}

// state is what converged sites share: tokens, conflicts, version vector,
// and nothing held in the causal buffer.
func (s *drillSite) state(t *testing.T) (string, meshProject) {
	t.Helper()
	var pr meshProject
	if got := s.call(t, "GET", "/v1/projects/design", "", &pr); got != 200 {
		return fmt.Sprintf("no project (%d)", got), pr
	}
	var conflicts struct {
		Conflicts []struct{ Entity, Field string }
	}
	if got := s.call(t, "GET", "/v1/projects/design/conflicts", "", &conflicts); got != 200 {
		return fmt.Sprintf("conflicts: %d", got), pr
	}
	toks, _ := json.Marshal(drillTokens(t, s))
	return fmt.Sprintf("vector %v pending %d conflicts %v tokens %s", pr.Vector, pr.Counts.Pending, conflicts.Conflicts, toks), pr
}

func drillTokens(t *testing.T, s *drillSite) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	cursor := ""
	for {
		var page struct {
			Tokens []json.RawMessage
			Next   *string
		}
		if got := s.call(t, "GET", "/v1/projects/design/tokens?limit=1000&cursor="+cursor, "", &page); got != 200 {
			t.Fatalf("%s: list tokens: %d", s.name, got)
		}
		out = append(out, page.Tokens...)
		if page.Next == nil {
			return out
		}
		cursor = *page.Next
	}
}

// drillWrites records every value the drill's clients sent, by path:
// values are unique in the run, so a value names its write.
type drillWrites struct {
	mu       sync.Mutex
	next     atomic.Int64
	acked    map[string]map[string]bool // path -> acknowledged values
	inflight map[string]map[string]bool // path -> values sent, never acknowledged
	n        int                        // acknowledged writes
	refused  []string                   // error statuses, site: status body
}

func (d *drillWrites) add(m map[string]map[string]bool, path, v string) {
	if m[path] == nil {
		m[path] = map[string]bool{}
	}
	m[path][v] = true
}

// client PUTs up to n new values to shared paths on base, stopping at the
// first failure (the site is gone or refuses); it returns the status of a
// refusal (0 for none or a transport error) and whether a transport error
// stopped it.
func (d *drillWrites) client(site, base, key string, rng *rand.Rand, n int, stop <-chan struct{}) (status int, gone bool) {
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		select {
		case <-stop:
			return 0, false
		default:
		}
		path := fmt.Sprintf("d.k%02d", rng.Intn(16))
		value := fmt.Sprintf("#%06x", d.next.Add(1))
		req, _ := http.NewRequest("PUT", base+"/v1/projects/design/tokens/"+path,
			strings.NewReader(`{"$type":"color","$value":"`+value+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			d.mu.Lock()
			d.add(d.inflight, path, value)
			d.mu.Unlock()
			return 0, true
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		d.mu.Lock()
		if res.StatusCode/100 != 2 {
			d.add(d.inflight, path, value)
			d.refused = append(d.refused, fmt.Sprintf("%s: %d %.200s", site, res.StatusCode, strings.TrimSpace(string(b))))
			d.mu.Unlock()
			return res.StatusCode, false
		}
		d.add(d.acked, path, value)
		d.n++
		d.mu.Unlock()
	}
	return 0, false
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestFaultDrill is the fault drill of three real processes (paris, lyon,
// nice; nice's clock 90 s ahead) in a full mesh, each link through a
// faultnet proxy. A seeded script of bursts of concurrent writes to shared
// paths, SIGKILLs (some in the middle of a burst) and restarts, cuts and
// heals, a stopped site's JetStream store deleted, and one site run under a
// file-size limit (disk full) until its writes fail; then every link is
// healed and every site restarted. The sites must end with the same
// version vector, tokens and conflicts, nothing in the causal buffer, every
// acknowledged write in every log, no event twice, and audit exports that
// verify. make test runs the default seed's 12 steps; make soak more.
//
// Replay: go test -count=1 -run TestFaultDrill ./cmd/dss-sync/ -drill.seed=N -drill.steps=M
func TestFaultDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("fault drill: three real processes, not in -short runs")
	}
	seed, steps := *drillSeed, *drillSteps
	if steps < 1 {
		t.Fatalf("-drill.steps=%d: at least 1", steps)
	}
	if seed == 0 {
		seed = drillDefaultSeed
	}
	replay := fmt.Sprintf("go test -count=1 -run TestFaultDrill ./cmd/dss-sync/ -drill.seed=%d -drill.steps=%d", seed, steps)
	t.Logf("drill seed %d, %d steps", seed, steps)
	rng := rand.New(rand.NewSource(seed))
	bin := buildBinary(t)
	start := time.Now()
	var script []string
	step := func(format string, a ...any) {
		s := fmt.Sprintf(format, a...)
		script = append(script, s)
		t.Logf("%6.2fs %s", time.Since(start).Seconds(), s)
	}

	tmp := t.TempDir()
	names := []string{"paris", "lyon", "nice"}
	sites := map[string]*drillSite{}
	natsAddr := map[string]string{}
	for _, n := range names {
		natsAddr[n] = freeAddr(t)
	}
	out, peers := proxyMesh(t, names, natsAddr)
	for _, n := range names {
		s := &drillSite{name: n, dir: filepath.Join(tmp, n), out: out[n]}
		s.flags = []string{"--nats-listen", natsAddr[n], "--anti-entropy", "200ms"}
		if n == "nice" {
			s.flags = append(s.flags, "--clock-offset", "90s")
		}
		s.flags = append(s.flags, peers[n]...)
		sites[n] = s
	}
	// Registered before any site starts, so it runs after their kills.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range names {
			for i, p := range sites[n].procs {
				t.Logf("%s, run %d: warnings and errors:\n%s", n, i+1, logProblems(p, 40))
			}
		}
		t.Logf("script: %s", strings.Join(script, "; "))
		t.Logf("REPLAY: %s", replay)
	})
	for _, n := range names {
		sites[n].start(t, bin, 0)
	}
	paris := sites["paris"]
	if got := paris.call(t, "POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	waitFor(t, 30*time.Second, "the project on every site", func() (bool, string) {
		for _, n := range names {
			if got := sites[n].call(t, "GET", "/v1/projects/design", "", nil); got != 200 {
				return false, n + ": " + strconv.Itoa(got)
			}
		}
		return true, ""
	})

	w := &drillWrites{acked: map[string]map[string]bool{}, inflight: map[string]map[string]bool{}}
	// burst starts 2-3 clients on each site named, n writes at most each;
	// the returned wait stops nothing, it waits for them to end.
	burst := func(on []string, stop <-chan struct{}) func() (refused int, gone int) {
		var wg sync.WaitGroup
		var ref, gn atomic.Int64
		for _, n := range on {
			s := sites[n]
			for c := 2 + rng.Intn(2); c > 0; c-- {
				crng := rand.New(rand.NewSource(rng.Int63()))
				k := 10 + rng.Intn(30)
				if stop != nil {
					k = 100000
				}
				base, key := s.p().http, s.key
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, g := w.client(n, base, key, crng, k, stop)
					if st != 0 {
						ref.Add(1)
					}
					if g {
						gn.Add(1)
					}
				}()
			}
		}
		return func() (int, int) { wg.Wait(); return int(ref.Load()), int(gn.Load()) }
	}
	cut := func(x, y string, on bool) {
		for _, p := range []*faultnet.Proxy{sites[x].out[y], sites[y].out[x]} {
			if on {
				p.Cut()
			} else {
				p.Heal()
			}
		}
	}
	pause := func() { time.Sleep(time.Duration(50+rng.Intn(250)) * time.Millisecond) }

	var kills, cuts, deletions, diskFull int
	// killRestart SIGKILLs a site (in the middle of a burst of its own
	// clients when mid), deletes its JetStream store when del, and restarts it.
	killRestart := func(x string, mid, del bool) {
		s := sites[x]
		if mid {
			stop := make(chan struct{})
			wait := burst([]string{x}, stop)
			time.Sleep(time.Duration(50+rng.Intn(300)) * time.Millisecond)
			s.p().kill()
			close(stop)
			if ref, _ := wait(); ref > 0 {
				t.Fatalf("%s refused writes before its kill: %v", x, w.refused)
			}
		} else {
			s.p().kill()
		}
		kills++
		if del {
			if err := os.RemoveAll(filepath.Join(s.dir, "jetstream")); err != nil {
				t.Fatal(err)
			}
			deletions++
		}
		s.start(t, bin, 0)
		step("kill %s (mid-burst %v, JetStream store deleted %v), restart", x, mid, del)
	}
	// fullDisk restarts x under a file-size limit a little above its data,
	// writes until the site refuses or dies, then restarts it normally.
	fullDisk := func(x string) {
		s := sites[x]
		if _, err := os.Stat("/bin/sh"); err != nil {
			t.Logf("no /bin/sh: the disk-full step is skipped")
			return
		}
		s.p().kill()
		limit := dirSize(s.dir) + 256<<10
		s.start(t, bin, limit)
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", s.p().cmd.Process.Pid)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "Max file size") && !strings.Contains(l, strconv.FormatInt((limit+511)/512*512, 10)) {
					t.Fatalf("%s under ulimit -f: %s, want %d bytes", x, l, (limit+511)/512*512)
				}
			}
		}
		w.mu.Lock()
		nref := len(w.refused)
		w.mu.Unlock()
		stop := make(chan struct{})
		wait := burst([]string{x}, stop)
		// The writers stop at their first failure; cap the step at 20 s. (Go
		// ignores SIGXFSZ: writes past the limit fail with EFBIG. Pebble
		// then refuses the commit, the request gets a 500 problem, and it
		// stops the process on the fatal commit error: both are fine, as
		// long as nothing acknowledged is lost.)
		done := make(chan [2]int, 1)
		go func() { r, g := wait(); done <- [2]int{r, g} }()
		var res [2]int
		select {
		case res = <-done:
		case <-time.After(20 * time.Second):
			close(stop)
			res = <-done
			stop = nil
		}
		if stop != nil {
			close(stop)
		}
		exited := false
		select { // a site that lost its clients may be on its way out
		case <-s.p().exited:
			exited = true
		case <-time.After(2 * time.Second):
		}
		if testing.Verbose() {
			t.Logf("%s under the limit, warnings and errors:\n%s", x, logProblems(s.p(), 8))
		}
		w.mu.Lock()
		refusals := append([]string{}, w.refused[nref:]...)
		w.mu.Unlock()
		for _, r := range refusals {
			if !strings.HasPrefix(r, x+": 5") {
				t.Fatalf("disk full on %s: a write refused with other than a 5xx: %s", x, r)
			}
		}
		if res[0] == 0 && res[1] == 0 {
			t.Fatalf("disk full on %s (limit %d bytes): the writes did not fail in 20 s", x, limit)
		}
		s.p().kill()
		kills++
		diskFull++
		s.start(t, bin, 0)
		first := ""
		if len(refusals) > 0 {
			first = "; first refusal " + refusals[0]
		}
		step("disk full on %s (file-size limit %d bytes): %d clients refused (5xx), %d lost the site (exited %v)%s; restarted without the limit",
			x, limit, res[0], res[1], exited, first)
	}

	fullAt := rng.Intn(steps)
	for i := 0; i < steps; i++ {
		x := names[rng.Intn(3)]
		if i == fullAt {
			fullDisk(x)
			pause()
			continue
		}
		switch op := rng.Intn(10); {
		case op < 5:
			var on []string
			for _, n := range names {
				if rng.Intn(3) > 0 {
					on = append(on, n)
				}
			}
			if len(on) == 0 {
				on = []string{x}
			}
			before := w.n
			if ref, gone := burst(on, nil)(); ref > 0 || gone > 0 {
				t.Fatalf("a burst on %v failed with every site up: %d refused, %d lost: %v", on, ref, gone, w.refused)
			}
			step("burst on %v: %d writes acknowledged", on, w.n-before)
		case op < 7:
			y := names[(rng.Intn(2)+1+indexOf(names, x))%3]
			on := !sites[x].out[y].IsCut()
			cut(x, y, on)
			if on {
				cuts++
			}
			step("link %s-%s cut %v", x, y, on)
		default:
			killRestart(x, rng.Intn(2) == 0, deletions == 0 || rng.Intn(4) == 0)
		}
		pause()
	}
	if deletions == 0 {
		killRestart(names[rng.Intn(3)], false, true)
	}
	if cuts == 0 { // at least one partition with writes on both sides
		x := names[rng.Intn(3)]
		y := names[(rng.Intn(2)+1+indexOf(names, x))%3]
		cut(x, y, true)
		cuts++
		before := w.n
		if ref, gone := burst([]string{x, y}, nil)(); ref > 0 || gone > 0 {
			t.Fatalf("a burst on %s and %s failed: %d refused, %d lost: %v", x, y, ref, gone, w.refused)
		}
		step("link %s-%s cut, burst on both sides: %d writes acknowledged", x, y, w.n-before)
	}

	// The end: every link healed, every site restarted normally.
	for i, x := range names {
		for _, y := range names[i+1:] {
			cut(x, y, false)
		}
	}
	for _, n := range names {
		sites[n].p().kill()
		sites[n].start(t, bin, 0)
	}
	step("every link healed, every site restarted")
	var final meshProject
	var finalState string
	waitFor(t, 60*time.Second, "the three sites to converge", func() (bool, string) {
		first, pr := sites[names[0]].state(t)
		if pr.Counts.Pending != 0 {
			return false, names[0] + ": " + first
		}
		for _, n := range names[1:] {
			st, _ := sites[n].state(t)
			if st != first {
				return false, fmt.Sprintf("%s %.400s\n%s %.400s", names[0], first, n, st)
			}
		}
		final, finalState = pr, first
		return true, ""
	})
	step("converged on %v", final.Vector)

	// Every acknowledged write in every log; no event twice; the log as
	// long as the vector counts; each token's value one written to it.
	var total uint64
	for _, v := range final.Vector {
		total += v
	}
	for _, n := range names {
		s := sites[n]
		evs := projectEvents(t, s.p().http, s.key, "design")
		ids := map[string]bool{}
		inLog := map[string]bool{}
		for _, e := range evs {
			if ids[e.ID.String()] {
				t.Errorf("%s: event %s (%s seq %d) is in the log twice", n, e.ID, e.Site, e.Seq)
			}
			ids[e.ID.String()] = true
			b, _ := json.Marshal(e)
			for _, v := range strings.Split(string(b), `"#`)[1:] {
				if len(v) >= 6 {
					inLog["#"+v[:6]] = true
				}
			}
		}
		if uint64(len(evs)) != total {
			t.Errorf("%s: %d events in the log, the vector %v counts %d", n, len(evs), final.Vector, total)
		}
		for path, vs := range w.acked {
			for v := range vs {
				if !inLog[v] {
					t.Errorf("%s: the acknowledged write %s = %s is not in the log", n, path, v)
				}
			}
		}
		for _, raw := range drillTokens(t, s) {
			var tok struct {
				Path  string `json:"path"`
				Value string `json:"$value"`
			}
			if err := json.Unmarshal(raw, &tok); err != nil {
				t.Fatalf("%s: token %s: %v", n, raw, err)
			}
			if !w.acked[tok.Path][tok.Value] && !w.inflight[tok.Path][tok.Value] {
				t.Errorf("%s: token %s = %s, a value never written to it", n, tok.Path, tok.Value)
			}
		}
	}
	if t.Failed() {
		t.Logf("final state: %.3000s", finalState)
		t.FailNow()
	}

	// Audit exports verify on every site.
	for _, n := range names {
		s := sites[n]
		f := filepath.Join(tmp, n+"-audit.ndjson")
		if code, _, se := cli(t, "audit", "export", "design", "-o", f, "--server", s.p().http, "--token", s.key); code != 0 {
			t.Fatalf("%s: audit export: %d %s", n, code, se)
		}
		if code, so, se := cli(t, "audit", "verify", f); code != 0 {
			t.Fatalf("%s: audit verify: %d %s %s", n, code, so, se)
		}
	}
	lines := 0
	if f, err := os.Open(filepath.Join(tmp, "paris-audit.ndjson")); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
		}
		f.Close()
	}
	t.Logf("DRILL seed=%d steps=%d kills=%d cuts=%d store-deletions=%d disk-full=%d acknowledged=%d events=%d audit-lines=%d duration=%v: converged, nothing lost, nothing twice, audit verified",
		seed, steps, kills, cuts, deletions, diskFull, w.n, total, lines, time.Since(start).Round(time.Millisecond))
}

func indexOf(names []string, x string) int {
	for i, n := range names {
		if n == x {
			return i
		}
	}
	return -1
}

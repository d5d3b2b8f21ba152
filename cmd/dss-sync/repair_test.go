package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/faultnet"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/jetstream/jetstreamtest"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// testSite is a site run in-process for the sync tests, restartable on its
// data dir with the same flags.
type testSite struct {
	t     *testing.T
	name  string
	dir   string
	flags []string
	m     *Main
	key   string
}

func startSite(t *testing.T, dir, name string, flags ...string) *testSite {
	t.Helper()
	s := &testSite{t: t, name: name, dir: dir, flags: flags}
	s.m = MustRunMain(t, dir, name, flags...)
	s.key = adminKey(t, dir)
	return s
}

func (s *testSite) stop() {
	s.t.Helper()
	if err := s.m.Close(context.Background()); err != nil {
		s.t.Fatalf("stop %s: %v", s.name, err)
	}
}

func (s *testSite) restart() {
	s.t.Helper()
	s.m = MustRunMain(s.t, s.dir, s.name, s.flags...)
}

func (s *testSite) call(method, path, body string, out any) int {
	s.t.Helper()
	return call(s.t, s.m.HTTPURL(), s.key, method, path, body, out)
}

// write sets n number tokens prefix.t000... to base+k in one changes request.
func (s *testSite) write(prefix string, n, base int) {
	s.t.Helper()
	var changes []string
	for k := 0; k < n; k++ {
		changes = append(changes, fmt.Sprintf(`{"path":"%s.t%03d","data":{"$type":"number","$value":%d}}`, prefix, k, base+k))
	}
	if got := s.call("POST", "/v1/projects/design/changes", `{"changes":[`+strings.Join(changes, ",")+`]}`, nil); got != 200 {
		s.t.Fatalf("writes on %s: %d", s.name, got)
	}
}

// state is what must be equal on converged sites: tokens, conflicts and
// the version vector.
func (s *testSite) state() string {
	s.t.Helper()
	var conflicts struct {
		Conflicts []struct{ Entity, Field string }
	}
	if got := s.call("GET", "/v1/projects/design/conflicts", "", &conflicts); got != 200 {
		return fmt.Sprintf("no project (%d)", got)
	}
	return tokenList(s.t, s.m, s.key, "design") + fmt.Sprint(conflicts.Conflicts) + fmt.Sprint(s.vector())
}

// hasProject waits until the site holds the design project.
func (s *testSite) hasProject() {
	s.t.Helper()
	waitFor(s.t, 20*time.Second, s.name+" to hold the project", func() (bool, string) {
		got := s.call("GET", "/v1/projects/design", "", nil)
		return got == 200, fmt.Sprint(got)
	})
}

func (s *testSite) vector() map[string]uint64 {
	var p struct{ Vector map[string]uint64 }
	s.call("GET", "/v1/projects/design", "", &p)
	return p.Vector
}

func (s *testSite) status() api.SyncStatus {
	s.t.Helper()
	var st api.SyncStatus
	if got := s.call("GET", "/v1/sync/status", "", &st); got != 200 {
		s.t.Fatalf("sync status of %s: %d", s.name, got)
	}
	return st
}

// converge waits until every site has the same state, holding want
// tokens (any number when want < 0), and returns it.
func converge(t *testing.T, d time.Duration, want int, sites ...*testSite) string {
	t.Helper()
	var first string
	waitFor(t, d, "the sites to converge", func() (bool, string) {
		first = sites[0].state()
		for _, s := range sites[1:] {
			if st := s.state(); st != first {
				return false, fmt.Sprintf("%s %.300s\n%s %.300s", sites[0].name, first, s.name, st)
			}
		}
		n := strings.Count(first, `"path"`)
		return want < 0 || n == want, fmt.Sprintf("%d tokens, want %d", n, want)
	})
	return first
}

// TestAntiEntropyRepairsWhatNoStreamDelivers: paris's JetStream stream is
// purged (as if its store had been truncated) after it took writes; lyon,
// peering with paris for the first time, gets nothing through the stream,
// and its anti-entropy pass fetches every event from paris's log. The
// status and /metrics say how many events were repaired.
func TestAntiEntropyRepairsWhatNoStreamDelivers(t *testing.T) {
	tmp := t.TempDir()
	addrP := freeAddr(t)
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", "--nats-listen", addrP)
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("p", 40, 0)
	if err := paris.m.Outbox.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	js, err := natsjs.New(paris.m.Conn)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), jetstream.StreamName("paris"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}

	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--peer", "nats://"+addrP, "--anti-entropy", "50ms")
	converge(t, 20*time.Second, 40, paris, lyon)
	waitFor(t, 5*time.Second, "the repair to show in lyon's status", func() (bool, string) {
		st := lyon.status()
		ok := len(st.Peers) == 1 && st.Peers[0].AntiEntropy.Repaired == 41 && st.Peers[0].AntiEntropy.LastRun != nil
		return ok, fmt.Sprintf("%+v", st.Peers)
	})
	metrics := scrape(t, lyon)
	for _, want := range []string{
		`dss_anti_entropy_repaired_total{peer="nats://` + addrP + `"} 41`,
		`dss_peer_connected{peer="nats://` + addrP + `"} 1`,
		`dss_events_received_total{result="applied",source="peer"} 41`,
		`dss_causal_buffer_events 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("lyon's /metrics lacks %s", want)
		}
	}
	if m := scrape(t, paris); !strings.Contains(m, `dss_events_sent{site="lyon"} 41`) {
		t.Errorf("paris's /metrics lacks dss_events_sent{site=\"lyon\"} 41:\n%s", grepLines(m, "dss_events_"))
	}
}

func scrape(t *testing.T, s *testSite) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.m.HTTPURL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStoreLossRebuildsStreamAndRepairsPeers: paris's JetStream store is
// deleted while paris is down and lyon takes writes. Restarted, paris
// rebuilds its stream from its Pebble log (every commit, in order), gets
// lyon's writes, and lyon (whose consumer on paris's stream went with the
// store) gets paris's writes made after the restart. Nothing is lost and
// nothing duplicated.
func TestStoreLossRebuildsStreamAndRepairsPeers(t *testing.T) {
	tmp := t.TempDir()
	addrP, addrL := freeAddr(t), freeAddr(t)
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", "--nats-listen", addrP, "--peer", "nats://"+addrL, "--anti-entropy", "100ms")
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--nats-listen", addrL, "--peer", "nats://"+addrP, "--anti-entropy", "100ms")
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("p", 20, 0)
	converge(t, 20*time.Second, 20, paris, lyon)
	lyon.write("l", 20, 0)
	converge(t, 20*time.Second, 40, paris, lyon)

	paris.stop()
	if err := os.RemoveAll(filepath.Join(paris.dir, "jetstream")); err != nil {
		t.Fatal(err)
	}
	lyon.write("l2", 10, 0)
	paris.restart()
	paris.write("p2", 10, 0)
	converge(t, 30*time.Second, 60, paris, lyon)

	// paris's stream holds its whole log again, commit n at sequence n.
	if err := paris.m.Outbox.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	js, _ := natsjs.New(paris.m.Conn)
	st, err := js.Stream(t.Context(), jetstream.StreamName("paris"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(t.Context())
	if last := paris.m.Store.Last(); info.State.Msgs != last || info.State.LastSeq != last {
		t.Errorf("paris's rebuilt stream: %d messages, last seq %d; its log has %d commits", info.State.Msgs, info.State.LastSeq, last)
	}
	for _, s := range []*testSite{paris, lyon} {
		s.checkLog()
	}
}

// checkLog checks the site's log of design: no event twice, and as many
// events as its version vector names. It returns the ids it holds.
func (s *testSite) checkLog() map[string]bool {
	s.t.Helper()
	evs := projectEvents(s.t, s.m.HTTPURL(), s.key, "design")
	ids := map[string]bool{}
	for _, e := range evs {
		if ids[e.ID.String()] {
			s.t.Errorf("%s's log holds event %s twice", s.name, e.ID)
		}
		ids[e.ID.String()] = true
	}
	var total uint64
	for _, n := range s.vector() {
		total += n
	}
	if total != uint64(len(evs)) {
		s.t.Errorf("%s's log holds %d events, its vector %v", s.name, len(evs), s.vector())
	}
	return ids
}

// TestPartitionHealsWithConflicts: paris and lyon reach each other only
// through TCP proxies the test controls. Cut both ways, each side writes
// its own tokens and its own value of one shared token; healed, both end
// with every token and the same conflict on the shared one.
func TestPartitionHealsWithConflicts(t *testing.T) {
	tmp := t.TempDir()
	addrP, addrL := freeAddr(t), freeAddr(t)
	toP, err := faultnet.Listen("127.0.0.1:0", addrP)
	if err != nil {
		t.Fatal(err)
	}
	defer toP.Close()
	toL, err := faultnet.Listen("127.0.0.1:0", addrL)
	if err != nil {
		t.Fatal(err)
	}
	defer toL.Close()
	fast := []string{"--anti-entropy", "200ms"}
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", append([]string{"--nats-listen", addrP, "--peer", "nats://" + toL.Addr()}, fast...)...)
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", append([]string{"--nats-listen", addrL, "--peer", "nats://" + toP.Addr()}, fast...)...)
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("shared", 1, 0)
	converge(t, 20*time.Second, 1, paris, lyon)

	toP.Cut()
	toL.Cut()
	waitFor(t, 10*time.Second, "both sides to see the partition", func() (bool, string) {
		sp, sl := paris.status(), lyon.status()
		return sp.Peers[0].Connection != "connected" && sl.Peers[0].Connection != "connected", sp.Peers[0].Connection + " " + sl.Peers[0].Connection
	})
	paris.write("p", 15, 0)
	lyon.write("l", 15, 0)
	paris.write("shared", 1, 100)
	lyon.write("shared", 1, 200)
	if paris.state() == lyon.state() {
		t.Fatal("the sides agree during the partition: it did not cut")
	}

	toP.Heal()
	toL.Heal()
	final := converge(t, 30*time.Second, 31, paris, lyon)
	var tok struct{ Conflicted bool }
	lyon.call("GET", "/v1/projects/design/tokens/shared.t000", "", &tok)
	if !tok.Conflicted || !strings.Contains(final, " $value}]") || strings.Count(final, "$value}") != 1 {
		t.Errorf("the concurrent writes of shared.t000 should leave one conflict on $value: %s", final[strings.LastIndex(final, "]")+1:])
	}
}

// TestSitesShareANATSDeployment: two sites pointed at one existing NATS
// JetStream server (--nats-url) with no --peer replicate through it: each
// keeps its own stream there and pulls the other's.
func TestSitesShareANATSDeployment(t *testing.T) {
	ns := jetstreamtest.RunServer(t)
	tmp := t.TempDir()
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", "--nats-url", ns.URL())
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--nats-url", ns.URL())
	if paris.m.NATS != nil || lyon.m.NATS != nil {
		t.Fatal("a site started its embedded server despite --nats-url")
	}
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("p", 10, 0)
	lyon.hasProject()
	lyon.write("l", 10, 0)
	converge(t, 20*time.Second, 20, paris, lyon)
	nc := jetstreamtest.Connect(t, ns)
	js, _ := natsjs.New(nc)
	for _, site := range []string{"paris", "lyon"} {
		if _, err := js.Stream(t.Context(), jetstream.StreamName(site)); err != nil {
			t.Errorf("no stream of %s on the shared deployment: %v", site, err)
		}
	}
}

// TestNoDuplicateWorkOnHealthyStreams: with streams delivering everything,
// anti-entropy finds nothing to fetch: it acts only on what a peer held a
// whole interval earlier and a drained stream still has not delivered.
func TestNoDuplicateWorkOnHealthyStreams(t *testing.T) {
	tmp := t.TempDir()
	addrP := freeAddr(t)
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", "--nats-listen", addrP)
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--peer", "nats://"+addrP, "--anti-entropy", "200ms")
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	for i := 0; i < 5; i++ {
		paris.write(fmt.Sprintf("g%d", i), 30, 0)
	}
	converge(t, 20*time.Second, 150, paris, lyon)
	converged := time.Now()
	waitFor(t, 5*time.Second, "two anti-entropy passes after convergence", func() (bool, string) {
		st := lyon.status()
		last := st.Peers[0].AntiEntropy.LastRun
		return last != nil && last.After(converged.Add(450*time.Millisecond)), fmt.Sprintf("%+v", st.Peers[0].AntiEntropy)
	})
	if st := lyon.status(); st.Peers[0].AntiEntropy.Repaired != 0 || st.Peers[0].AntiEntropy.Error != "" {
		t.Errorf("anti-entropy did work the stream did: %+v", st.Peers[0].AntiEntropy)
	}
}

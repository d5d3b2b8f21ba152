package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/internal/faultnet"
	"github.com/dss-sync/dss-sync/internal/jetstream"
)

var (
	faultSeeds = flag.Int("faults.seeds", 50, "seeds TestRandomizedFaults runs (make soak runs more)")
	faultSeed  = flag.Int64("faults.seed", 0, "run only this seed of TestRandomizedFaults")
)

// faultSite is one site of the randomized fault test, run in-process. Its
// links to the other sites go through proxies it owns: out[to] carries its
// connection to the site to's NATS server.
type faultSite struct {
	*testSite
	out  map[string]*faultnet.Proxy
	down bool
}

// fastPeers makes cut links heal within a fraction of a second.
var fastPeers = &jetstream.PeersConfig{ReconnectWait: 50 * time.Millisecond, Discover: 100 * time.Millisecond, PullExpiry: 300 * time.Millisecond}

func (s *faultSite) open() {
	s.t.Helper()
	var args []string
	for _, d := range [][2]string{{"--data-dir", s.dir}, {"--http-addr", "127.0.0.1:0"}, {"--site", s.name},
		{"--rate-limit-ip", "off"}, {"--rate-limit-key", "off"}} {
		args = append(args, d[0], d[1])
	}
	cfg, err := loadConfig(append(args, s.flags...), env(nil))
	if err != nil {
		s.t.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: slog.New(slog.DiscardHandler), peerTiming: fastPeers}
	if err := m.Open(context.Background()); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	s.m, s.down = m, false
	s.t.Cleanup(func() { m.Close(context.Background()) })
	if s.key == "" {
		s.key = adminKey(s.t, s.dir)
	}
}

// crash stops the site the way a kill does, as far as a process can do it
// to itself: connections dropped, no drain, no outbox flush, the bus and
// the store closed where they stand. Every acknowledged write is already
// fsynced; whatever was in flight is lost.
func (s *faultSite) crash() {
	m := s.m
	m.httpServer.Close()
	m.httpServer = nil
	m.cancel()
	<-m.done
	m.responder.Close()
	m.responder = nil
	m.Conn.Close()
	m.NATS.Close()
	m.NATS = nil
	if err := m.Store.Close(); err != nil {
		s.t.Fatalf("crash %s: close store: %v", s.name, err)
	}
	m.Store = nil
	s.down = true
}

// TestRandomizedFaults: three sites in a full mesh, each link through a
// proxy the test controls. Per seed, a random run of writes on random
// sites (to a small set of shared paths, so conflicts happen), cuts and
// heals of random links, and crashes and restarts of random sites; then
// everything is healed and restarted. Every site must end with the same
// tokens, the same conflicts and the same version vector, every
// acknowledged event in its log, and no event twice.
//
// A failure names its seed; replay it with
// go test -run TestRandomizedFaults ./cmd/dss-sync/ -faults.seed=N
func TestRandomizedFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("three sites per seed: not in -short runs")
	}
	seeds := make([]int64, 0, *faultSeeds)
	for i := 1; i <= *faultSeeds; i++ {
		seeds = append(seeds, int64(i))
	}
	if *faultSeed != 0 {
		seeds = []int64{*faultSeed}
	}
	start := time.Now()
	var steps, writes, crashes, cuts int
	for _, seed := range seeds {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			s, w, c, k := runFaultSeed(t, seed)
			steps, writes, crashes, cuts = steps+s, writes+w, crashes+c, cuts+k
		})
		if !ok {
			t.Fatalf("seed %d failed; replay: go test -count=1 -run TestRandomizedFaults ./cmd/dss-sync/ -faults.seed=%d", seed, seed)
		}
	}
	t.Logf("%d seeds in %v: %d steps, %d acknowledged writes, %d crashes, %d cuts; all converged", len(seeds), time.Since(start).Round(time.Millisecond), steps, writes, crashes, cuts)
}

// proxyMesh gives each site of names a TCP proxy to every other site's
// NATS address, one per direction, so that a test can cut and heal each
// link on its own: out[n][o] is n's way to o, and peers[n] the --peer flags
// that send n through its proxies. The proxies close when the test ends.
func proxyMesh(t testing.TB, names []string, natsAddr map[string]string) (out map[string]map[string]*faultnet.Proxy, peers map[string][]string) {
	out, peers = map[string]map[string]*faultnet.Proxy{}, map[string][]string{}
	for _, n := range names {
		out[n] = map[string]*faultnet.Proxy{}
		for _, o := range names {
			if o == n {
				continue
			}
			p, err := faultnet.Listen("127.0.0.1:0", natsAddr[o])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			out[n][o] = p
			peers[n] = append(peers[n], "--peer", "nats://"+p.Addr())
		}
	}
	return out, peers
}

func runFaultSeed(t *testing.T, seed int64) (steps, writes, crashes, cuts int) {
	rng := rand.New(rand.NewSource(seed))
	tmp := t.TempDir()
	names := []string{"a", "b", "c"}
	sites := map[string]*faultSite{}
	natsAddr := map[string]string{}
	for _, n := range names {
		natsAddr[n] = freeAddr(t)
	}
	out, peers := proxyMesh(t, names, natsAddr)
	for _, n := range names {
		sites[n] = &faultSite{testSite: &testSite{t: t, name: n, dir: filepath.Join(tmp, n)}, out: out[n]}
		sites[n].flags = append([]string{"--nats-listen", natsAddr[n], "--anti-entropy", "100ms"}, peers[n]...)
	}
	for _, n := range names {
		sites[n].open()
	}
	a := sites["a"]
	if got := a.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	for _, n := range names[1:] {
		sites[n].hasProject()
	}

	acked := map[string]bool{} // event ids acknowledged to a client
	cut := func(x, y string, on bool) {
		for _, p := range []*faultnet.Proxy{sites[x].out[y], sites[y].out[x]} {
			if on {
				p.Cut()
			} else {
				p.Heal()
			}
		}
	}
	var script []string
	n := 8 + rng.Intn(8)
	for i := 0; i < n; i++ {
		x := names[rng.Intn(3)]
		s := sites[x]
		switch op := rng.Intn(10); {
		case op < 5: // write 1-4 changes to shared paths
			if s.down {
				s.open()
				script = append(script, "restart "+x)
			}
			var changes []string
			for k := 1 + rng.Intn(4); k > 0; k-- {
				path := fmt.Sprintf("t.k%d", rng.Intn(6))
				if rng.Intn(8) == 0 {
					changes = append(changes, fmt.Sprintf(`{"op":"delete","path":"%s"}`, path))
				} else {
					changes = append(changes, fmt.Sprintf(`{"path":"%s","data":{"$type":"number","$value":%d}}`, path, rng.Intn(1000)))
				}
			}
			var res struct {
				Results []struct{ Event *string }
			}
			got := s.call("POST", "/v1/projects/design/changes", `{"changes":[`+strings.Join(changes, ",")+`]}`, &res)
			switch got {
			case 200:
				for _, r := range res.Results {
					if r.Event != nil {
						acked[*r.Event] = true
						writes++
					}
				}
			case 404: // a delete of a path this site does not hold: nothing written
			default:
				t.Fatalf("writes on %s: %d", x, got)
			}
			script = append(script, fmt.Sprintf("write %s %d", x, got))
		case op < 7: // cut or heal a link
			y := names[(slices.Index(names, x)+1+rng.Intn(2))%3]
			on := !s.out[y].IsCut()
			cut(x, y, on)
			if on {
				cuts++
			}
			script = append(script, fmt.Sprintf("cut %s-%s %v", x, y, on))
		case op < 8: // crash, or restart a crashed site
			if s.down {
				s.open()
				script = append(script, "restart "+x)
			} else {
				s.crash()
				crashes++
				script = append(script, "crash "+x)
			}
		default: // let the outboxes publish what is committed
			for _, o := range sites {
				if !o.down {
					if err := o.m.Outbox.Flush(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
			}
			script = append(script, "flush")
		}
		steps++
	}

	// Full heal.
	for i, x := range names {
		for _, y := range names[i+1:] {
			cut(x, y, false)
		}
	}
	all := make([]*testSite, 0, 3)
	for _, x := range names {
		if sites[x].down {
			sites[x].open()
		}
		all = append(all, sites[x].testSite)
	}
	t.Logf("seed %d: %s", seed, strings.Join(script, ", "))
	state := converge(t, 30*time.Second, -1, all...)

	for _, s := range all {
		ids := s.checkLog()
		for id := range acked {
			if !ids[id] {
				t.Errorf("%s's log lacks acknowledged event %s", s.name, id)
			}
		}
	}
	if t.Failed() {
		t.Logf("final state: %.2000s", state)
	}
	return steps, writes, crashes, cuts
}

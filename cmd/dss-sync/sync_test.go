package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/api"
)

// handedOut are the ports freeAddr returned in this process.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freeAddr returns a loopback address with a port free a moment ago: sites
// that name each other as peers need their NATS ports before they start,
// and keep them across restarts. The port is taken below the kernel's
// ephemeral range (ip_local_port_range): a port from that range, free while
// a site is down, can become the local end of any outgoing connection
// (TestRandomizedFaults seed 296 met this once in 500 seeds), while the
// kernel never hands out a port below it.
func freeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := 20000, 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if n, _ := fmt.Sscan(string(b), &first, &last); n == 2 && first > 11000 {
			lo, hi = 10000, first-1
		}
	}
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		port := lo + rand.IntN(hi-lo+1)
		if handedOut.ports[port] {
			continue // free now, but another site of this process will take it
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			handedOut.ports[port] = true
			return addr
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0") // a crowded range: any free port
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond until it holds or d passes; what names the awaited
// state in the failure, with last's description of what was seen.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s: %s", d, what, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSitesReplicateThroughPeers: three sites in a chain, paris - lyon -
// nice (paris and nice do not know each other), take writes at the same
// time, including one token written on all three; every site ends with the
// same tokens and the same conflicts, paris's events reaching nice through
// lyon. /v1/sync/status shows each peer connected and nothing left behind.
func TestSitesReplicateThroughPeers(t *testing.T) {
	tmp := t.TempDir()
	names := []string{"paris", "lyon", "nice"}
	addr := map[string]string{}
	for _, n := range names {
		addr[n] = freeAddr(t)
	}
	peersOf := map[string][]string{"paris": {"lyon"}, "lyon": {"paris", "nice"}, "nice": {"lyon"}}
	sites := map[string]*Main{}
	keys := map[string]string{}
	for _, n := range names {
		flags := []string{"--nats-listen", addr[n]}
		for _, p := range peersOf[n] {
			flags = append(flags, "--peer", "nats://"+addr[p])
		}
		dir := filepath.Join(tmp, n)
		sites[n] = MustRunMain(t, dir, n, flags...)
		keys[n] = adminKey(t, dir)
	}
	if got := call(t, sites["paris"].HTTPURL(), keys["paris"], "POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	waitFor(t, 20*time.Second, "the project on every site", func() (bool, string) {
		for _, n := range names {
			if got := call(t, sites[n].HTTPURL(), keys[n], "GET", "/v1/projects/design", "", nil); got != 200 {
				return false, n + ": " + strconv.Itoa(got)
			}
		}
		return true, ""
	})
	// Writes everywhere at once: 20 tokens of each site's own, and one
	// token all three write a different value to.
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var changes []string
			for k := 0; k < 20; k++ {
				changes = append(changes, fmt.Sprintf(`{"path":"%s.t%02d","data":{"$type":"number","$value":%d}}`, n, k, k))
			}
			changes = append(changes, fmt.Sprintf(`{"path":"shared.size","data":{"$type":"number","$value":%d}}`, 100+i))
			if got := call(t, sites[n].HTTPURL(), keys[n], "POST", "/v1/projects/design/changes", `{"changes":[`+strings.Join(changes, ",")+`]}`, nil); got != 200 {
				t.Errorf("writes on %s: %d", n, got)
			}
		}()
	}
	wg.Wait()
	state := func(n string) string {
		var conflicts struct {
			Conflicts []struct{ Entity, Field string }
		}
		call(t, sites[n].HTTPURL(), keys[n], "GET", "/v1/projects/design/conflicts", "", &conflicts)
		return tokenList(t, sites[n], keys[n], "design") + fmt.Sprint(conflicts.Conflicts)
	}
	waitFor(t, 30*time.Second, "the three sites to converge", func() (bool, string) {
		p := state("paris")
		for _, n := range names[1:] {
			if s := state(n); s != p {
				return false, fmt.Sprintf("paris %.200s\n%s %.200s", p, n, s)
			}
		}
		return strings.Count(p, `"path"`) == 61, fmt.Sprintf("%d tokens", strings.Count(p, `"path"`))
	})
	var tok struct{ Conflicted bool }
	call(t, sites["nice"].HTTPURL(), keys["nice"], "GET", "/v1/projects/design/tokens/shared.size", "", &tok)
	if !tok.Conflicted {
		t.Error("three concurrent writes of shared.size left no conflict")
	}
	var p1, p2 struct{ Vector map[string]uint64 }
	call(t, sites["paris"].HTTPURL(), keys["paris"], "GET", "/v1/projects/design", "", &p1)
	call(t, sites["nice"].HTTPURL(), keys["nice"], "GET", "/v1/projects/design", "", &p2)
	if fmt.Sprint(p1.Vector) != fmt.Sprint(p2.Vector) || len(p1.Vector) != 3 {
		t.Errorf("version vectors differ: paris %v, nice %v", p1.Vector, p2.Vector)
	}

	// lyon's status: both peers connected, nothing behind.
	waitFor(t, 10*time.Second, "lyon's status to show both peers caught up", func() (bool, string) {
		var st api.SyncStatus
		if got := call(t, sites["lyon"].HTTPURL(), keys["lyon"], "GET", "/v1/sync/status", "", &st); got != 200 {
			return false, strconv.Itoa(got)
		}
		ok := st.Site == "lyon" && st.Connection == "connected" && len(st.Peers) == 2 && len(st.Vectors["design"]) == 3
		for _, p := range st.Peers {
			ok = ok && p.Connection == "connected" && p.Lag.Events == 0 && len(p.Sites) > 0 && p.Site != ""
		}
		return ok, fmt.Sprintf("%+v", st)
	})
}

// TestPeerCatchesUpAfterDowntime: while lyon is down, paris takes writes and
// its status shows the peer not connected; lyon, restarted on its data
// dir, resumes from its consumer's position on paris's stream and ends with
// everything, and paris sees lyon's writes made after the restart.
func TestPeerCatchesUpAfterDowntime(t *testing.T) {
	tmp := t.TempDir()
	addrP, addrL := freeAddr(t), freeAddr(t)
	dirP, dirL := filepath.Join(tmp, "paris"), filepath.Join(tmp, "lyon")
	paris := MustRunMain(t, dirP, "paris", "--nats-listen", addrP, "--peer", "nats://"+addrL)
	lyonFlags := []string{"--nats-listen", addrL, "--peer", "nats://" + addrP}
	lyon := MustRunMain(t, dirL, "lyon", lyonFlags...)
	keyP, keyL := adminKey(t, dirP), adminKey(t, dirL)
	count := func(m *Main, key string) int {
		var p struct{ Counts struct{ Tokens int } }
		call(t, m.HTTPURL(), key, "GET", "/v1/projects/design", "", &p)
		return p.Counts.Tokens
	}
	write := func(m *Main, key, prefix string, n int) {
		var changes []string
		for k := 0; k < n; k++ {
			changes = append(changes, fmt.Sprintf(`{"path":"%s.t%03d","data":{"$type":"number","$value":%d}}`, prefix, k, k))
		}
		if got := call(t, m.HTTPURL(), key, "POST", "/v1/projects/design/changes", `{"changes":[`+strings.Join(changes, ",")+`]}`, nil); got != 200 {
			t.Fatalf("writes: %d", got)
		}
	}
	call(t, paris.HTTPURL(), keyP, "POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	write(paris, keyP, "before", 10)
	waitFor(t, 20*time.Second, "lyon to hold paris's first writes", func() (bool, string) {
		n := count(lyon, keyL)
		return n == 10, fmt.Sprintf("%d tokens", n)
	})

	if err := lyon.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	write(paris, keyP, "during", 30)
	waitFor(t, 10*time.Second, "paris to see lyon gone", func() (bool, string) {
		var st api.SyncStatus
		call(t, paris.HTTPURL(), keyP, "GET", "/v1/sync/status", "", &st)
		return len(st.Peers) == 1 && st.Peers[0].Connection != "connected", fmt.Sprintf("%+v", st.Peers)
	})

	lyon = MustRunMain(t, dirL, "lyon", lyonFlags...)
	waitFor(t, 20*time.Second, "lyon to catch up", func() (bool, string) {
		n := count(lyon, keyL)
		return n == 40, fmt.Sprintf("%d tokens", n)
	})
	write(lyon, keyL, "after", 5)
	waitFor(t, 20*time.Second, "paris to get lyon's writes", func() (bool, string) {
		n := count(paris, keyP)
		return n == 45, fmt.Sprintf("%d tokens", n)
	})
	if tokenList(t, paris, keyP, "design") != tokenList(t, lyon, keyL, "design") {
		t.Fatal("paris and lyon differ after the catch-up")
	}
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// natsCluster is a NATS JetStream cluster run in-process for a test, in the
// manner of nats-server's own cluster tests: every node on the loopback
// interface, routing to every node, storing in a temp dir.
type natsCluster struct {
	t       *testing.T
	servers []*server.Server
}

// runNATSCluster starts a JetStream cluster of n nodes, n1 … nN, and waits
// until it is ready (as nats-server's waitOnClusterReady does): a meta
// leader that counts every node as a peer, and every node current with it.
// The nodes are shut down at cleanup.
func runNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	clientAddrs, clusterAddrs := make([]string, n), make([]string, n)
	var routes []string
	for i := range n {
		clientAddrs[i], clusterAddrs[i] = freeAddr(t), freeAddr(t)
		routes = append(routes, "nats://"+clusterAddrs[i])
	}
	c := &natsCluster{t: t}
	for i := range n {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       deployPort(t, "client", clientAddrs[i]),
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "dss", Host: "127.0.0.1", Port: deployPort(t, "cluster", clusterAddrs[i])},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
			NoSigs:     true,
			NoLog:      true,
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("NATS node %s did not start", s.Name())
		}
	}
	waitFor(t, 30*time.Second, "the JetStream cluster to be ready", func() (bool, string) {
		leader := c.metaLeader()
		if leader == nil {
			return false, "no meta leader"
		}
		if peers := leader.JetStreamClusterPeers(); len(peers) != n {
			return false, fmt.Sprintf("meta leader %s knows peers %q", leader.Name(), peers)
		}
		for _, s := range c.servers {
			if !s.JetStreamIsCurrent() {
				return false, s.Name() + " is not current with the meta leader"
			}
		}
		return true, ""
	})
	return c
}

// metaLeader returns the running node that leads the JetStream meta group,
// or nil.
func (c *natsCluster) metaLeader() *server.Server {
	for _, s := range c.servers {
		if s.Running() && s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// URLs returns every node's client URL, comma-separated (--nats-url).
func (c *natsCluster) URLs() string {
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// node returns the node of that server name.
func (c *natsCluster) node(name string) *server.Server {
	c.t.Helper()
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	c.t.Fatalf("no NATS node %q", name)
	return nil
}

// testLogger logs at level and above to t.Log, until the test's cleanup
// ends (client callbacks may fire later, and t.Log then panics).
func testLogger(t *testing.T, level slog.Level) *slog.Logger {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() }) // runs last
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Log(strings.TrimSpace(string(p)))
		}
		return len(p), nil
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// startLoggedSite is startSite with the site's warnings and errors in the
// test's log. Its defaults are MustRunMain's (the request rate limits off:
// the test polls faster than any client should).
func startLoggedSite(t *testing.T, dir, name string, flags ...string) *testSite {
	t.Helper()
	var args []string
	for _, d := range [][2]string{{"--data-dir", dir}, {"--http-addr", "127.0.0.1:0"}, {"--site", name},
		{"--rate-limit-ip", "off"}, {"--rate-limit-key", "off"}} {
		if !slices.Contains(flags, d[0]) {
			args = append(args, d[0], d[1])
		}
	}
	cfg, err := loadConfig(append(args, flags...), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: *cfg, Logger: testLogger(t, slog.LevelWarn)}
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return &testSite{t: t, name: name, dir: dir, flags: flags, m: m, key: adminKey(t, dir)}
}

// TestSitesOnAThreeNodeJetStreamCluster: two sites share a three-node
// JetStream cluster (--nats-url to every node) with --stream-replicas 3:
// their streams are replicated on all three nodes, and the sites replicate
// through them. Then the node that holds paris's own connection and leads
// both sites' event streams is shut down while both sites write: the
// clients reconnect to the other two nodes, the streams elect new leaders,
// and the writes of both sites, during and after, converge, each event
// once.
func TestSitesOnAThreeNodeJetStreamCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	nc := runNATSCluster(t, 3)
	tmp := t.TempDir()
	flags := []string{"--nats-url", nc.URLs(), "--stream-replicas", "3"}
	paris := startLoggedSite(t, filepath.Join(tmp, "paris"), "paris", flags...)
	lyon := startLoggedSite(t, filepath.Join(tmp, "lyon"), "lyon", flags...)
	if paris.m.NATS != nil || lyon.m.NATS != nil {
		t.Fatal("a site started its embedded server despite --nats-url")
	}
	if got := paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil); got != 201 {
		t.Fatalf("create project: %d", got)
	}
	paris.write("p", 10, 0)
	lyon.hasProject()
	lyon.write("l", 10, 0)
	converge(t, 20*time.Second, 20, paris, lyon)

	// Every stream of both sites has three replicas: a leader and two
	// followers, on the three nodes.
	conn, err := nats.Connect(nc.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	js, err := natsjs.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	streamInfo := func(name string) (*natsjs.StreamInfo, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		return st.Info(ctx)
	}
	for _, site := range []string{"paris", "lyon"} {
		for _, name := range []string{jetstream.StreamName(site), jetstream.InboxStream(site), jetstream.JobStreamName(site)} {
			info, err := streamInfo(name)
			if err != nil {
				t.Fatalf("stream %s: %v", name, err)
			}
			if info.Config.Replicas != 3 {
				t.Errorf("stream %s: %d replicas, want 3", name, info.Config.Replicas)
			}
			cl := info.Cluster
			if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
				t.Fatalf("stream %s: cluster %+v, want a leader and two replicas", name, cl)
			}
			nodes := []string{cl.Leader}
			for _, r := range cl.Replicas {
				nodes = append(nodes, r.Name)
			}
			if slices.Sort(nodes); !slices.Equal(nodes, []string{"n1", "n2", "n3"}) {
				t.Errorf("stream %s is on nodes %q, want n1, n2 and n3", name, nodes)
			}
		}
	}

	// The node to lose: the one paris's own connection (its outbox's) is
	// on, made the leader of both sites' event streams.
	target := paris.m.Conn.ConnectedServerName()
	parisStream, lyonStream := jetstream.StreamName("paris"), jetstream.StreamName("lyon")
	for _, name := range []string{parisStream, lyonStream} {
		waitFor(t, 20*time.Second, target+" to lead "+name, func() (bool, string) {
			info, err := streamInfo(name)
			if err != nil {
				return false, err.Error()
			}
			switch {
			case info.Cluster == nil:
				return false, "no cluster info"
			case info.Cluster.Leader == target:
				return true, ""
			case info.Cluster.Leader == "":
				return false, "no leader"
			}
			// nats.go has no call for it: the JetStream API request.
			req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, target)
			msg, err := conn.Request("$JS.API.STREAM.LEADER.STEPDOWN."+name, []byte(req), 5*time.Second)
			if err != nil {
				return false, "stepdown: " + err.Error()
			}
			return false, "stepdown: " + string(msg.Data)
		})
	}
	var onTarget []string
	for _, s := range []*testSite{paris, lyon} {
		if s.m.Conn.ConnectedServerName() == target {
			onTarget = append(onTarget, s.name)
		}
	}
	t.Logf("shutting down %s: leader of %s and %s, serving the connections of %q", target, parisStream, lyonStream, onTarget)

	// The node goes down while both sites write, and their outboxes
	// publish (lyon's, paris's events too as it applies them).
	down := nc.node(target)
	start := time.Now()
	go down.Shutdown()
	paris.write("p2", 200, 0)
	lyon.write("l2", 100, 0)
	down.WaitForShutdown()
	lyon.write("l3", 10, 0)
	paris.write("p3", 10, 0)
	converge(t, 30*time.Second, 340, paris, lyon)
	t.Logf("converged %v after the node went down", time.Since(start).Round(time.Millisecond))

	// Both event streams have a new leader among the nodes still up, and
	// each holds its site's log, commit n at sequence n.
	for _, s := range []*testSite{paris, lyon} {
		if err := s.m.Outbox.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		name := jetstream.StreamName(s.name)
		info, err := streamInfo(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == target {
			t.Errorf("stream %s after %s went down: cluster %+v", name, target, info.Cluster)
		}
		if last := s.m.Store.Last(); info.State.Msgs != last || info.State.LastSeq != last {
			t.Errorf("stream %s: %d messages, last seq %d; %s's log has %d commits", name, info.State.Msgs, info.State.LastSeq, s.name, last)
		}
	}
	for _, s := range []*testSite{paris, lyon} {
		if name := s.m.Conn.ConnectedServerName(); !s.m.Conn.IsConnected() || name == target {
			t.Errorf("%s: connected %v, to %q", s.name, s.m.Conn.IsConnected(), name)
		}
		s.checkLog()
	}
}

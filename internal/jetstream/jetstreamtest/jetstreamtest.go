// Package jetstreamtest starts real embedded JetStream servers for tests, in
// the manner of nats-server's RunBasicJetStreamServer: on a random loopback
// port, storing in a temp dir, shut down at cleanup.
package jetstreamtest

import (
	"log/slog"
	"testing"

	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/nats-io/nats.go"
)

// RunServer starts an embedded NATS server with JetStream for the test.
func RunServer(t testing.TB) *jetstream.Server {
	t.Helper()
	return RunServerIn(t, t.TempDir())
}

// RunServerIn starts a server storing in dir (to restart one on the same store).
func RunServerIn(t testing.TB, dir string) *jetstream.Server {
	t.Helper()
	s, err := jetstream.StartServer(jetstream.ServerConfig{
		Name: "test", Listen: "127.0.0.1:-1", StoreDir: dir,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start jetstream: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Connect opens a client connection to s, closed at cleanup.
func Connect(t testing.TB, s *jetstream.Server) *nats.Conn {
	t.Helper()
	nc, err := jetstream.Connect(s.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

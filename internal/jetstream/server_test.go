package jetstream_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/dss-sync/dss-sync/internal/jetstream"
)

// TestStartServerRefusesAPortInUse: a fixed NATS port another listener
// holds is an error that says so (the server's own fatal message), rather
// than a server that never becomes ready.
func TestStartServerRefusesAPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := jetstream.StartServer(jetstream.ServerConfig{Name: "taken", Listen: l.Addr().String(), StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		s.Close()
		t.Fatalf("started on %s, which is in use", l.Addr())
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("error %q, want the address and that it is in use", err)
	}
}

package jetstream_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/dss-sync/dss-sync/internal/jetstream"
)

// TestStartServerRefusesAPortInUse: a fixed NATS port another listener
// holds is an error at once, naming the address, rather than a server that
// never becomes ready.
func TestStartServerRefusesAPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := jetstream.StartServer(jetstream.ServerConfig{Name: "taken", Listen: l.Addr().String(), StoreDir: t.TempDir()})
	if err == nil {
		s.Close()
		t.Fatalf("started on %s, which is in use", l.Addr())
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %v, want address in use", err)
	}
}

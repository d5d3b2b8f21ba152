package jetstream

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Name is the server's name (the site id).
	Name string
	// Listen is the client listener, host:port; port -1 picks a free port.
	Listen string
	// StoreDir holds JetStream's file store.
	StoreDir string
	// Logger receives the server's log. Default: slog.Default().
	Logger *slog.Logger
	// TLS, when set, is the listener's TLS configuration: every client
	// must then connect over TLS.
	TLS *tls.Config
	// SiteNkey and PeerNkeys, when SiteNkey is set, make the server require
	// an nkey of every client: SiteNkey (the site's own connections) may do
	// anything; each of PeerNkeys (other sites) gets PeerPermissions.
	SiteNkey  string
	PeerNkeys []string
}

// PeerPermissions is what another site may do on a site's NATS server:
// read streams through its own consumers, ask the anti-entropy questions,
// and nothing else. It may not publish events or imports, create, change,
// purge or delete streams, delete messages, nor subscribe anywhere but its
// own reply inboxes (so it cannot take requests meant for this site). It
// may delete consumers: an applier replaces its own consumer after a crash
// (see Applier), and NATS subjects cannot tell its consumer from another
// site's (wildcards match whole tokens only). The worst another key could
// do with that is make a peer start its stream over: duplicates, which
// are dropped, never a loss.
func PeerPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "dss.*.sync.>", "_INBOX.>"},
			Deny: []string{
				"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
				"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.RESTORE.>",
				"$JS.API.STREAM.SNAPSHOT.>", "$JS.API.STREAM.PEER.>", "$JS.API.STREAM.LEADER.>",
				"$JS.API.CONSUMER.PAUSE.>", "$JS.API.META.>", "$JS.API.ACCOUNT.>", "$JS.API.SERVER.>",
			},
		},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server with JetStream storing under
// cfg.StoreDir, and waits until it accepts connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return nil, fmt.Errorf("nats listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = -1
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats store dir: %w", err)
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		MaxPayload: 8 << 20,
		TLSConfig:  cfg.TLS,
		TLSTimeout: 5,
		Nkeys:      nkeyUsers(cfg.SiteNkey, cfg.PeerNkeys),
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// A server that cannot start (its port is taken, its store cannot
	// be opened) only logs why, as fatal, and never becomes ready: that
	// message ends the wait at once and is the error.
	fatal := make(chan string, 1)
	ns.SetLoggerV2(natsLogger{l: logger.With("component", "nats"), fatal: fatal}, false, false, false)
	go ns.Start()
	for deadline := time.Now().Add(10 * time.Second); ; {
		// Over 25 ms, so that nats-server sleeps between its checks
		// rather than spinning.
		if ns.ReadyForConnections(100 * time.Millisecond) {
			return &Server{ns: ns}, nil
		}
		select {
		case why := <-fatal:
			ns.Shutdown()
			return nil, fmt.Errorf("nats server on %s: %s", cfg.Listen, why)
		default:
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("nats server on %s did not start within 10 s", cfg.Listen)
		}
	}
}

func nkeyUsers(site string, peers []string) []*server.NkeyUser {
	if site == "" {
		return nil
	}
	users := []*server.NkeyUser{{Nkey: site}}
	for _, p := range peers {
		if p != site {
			users = append(users, &server.NkeyUser{Nkey: p, Permissions: PeerPermissions()})
		}
	}
	return users
}

// URL returns the URL clients connect to.
func (s *Server) URL() string { return s.ns.ClientURL() }

// Close shuts the server down and waits for it to stop.
func (s *Server) Close() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Connect opens a client connection that reconnects forever: the server may
// restart under it (embedded) or be a remote cluster.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	return nc, nil
}

// natsLogger adapts slog to nats-server's Logger. The first fatal message
// also goes to fatal, for StartServer.
type natsLogger struct {
	l     *slog.Logger
	fatal chan<- string
}

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	n.l.Error(msg)
	select {
	case n.fatal <- msg:
	default:
	}
}
func (n natsLogger) Errorf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any) {}

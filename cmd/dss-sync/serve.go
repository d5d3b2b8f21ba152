package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/archive"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/internal/keys"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Main is a running site: everything `dss-sync serve` wires together. Open
// starts it; Close stops it gracefully. Tests run it on :0 / -1 ports.
type Main struct {
	Config Config
	Logger *slog.Logger
	Stdout io.Writer

	Store   *pebble.Store
	NATS    *jetstream.Server // nil with --nats-url
	Conn    *nats.Conn
	Outbox  *jetstream.Outbox
	Applier *jetstream.Applier
	// Peers pulls other sites' events (nil without --peer).
	Peers *jetstream.Peers
	Jobs  *jetstream.Jobs
	Site  *projections.Site
	Keys  *keys.Store
	// SigningKey signs archives and audit exports (<data-dir>/site.key).
	SigningKey ed25519.PrivateKey
	API        *api.Server

	archives  *archives
	responder *jetstream.Responder
	tlsCert   atomic.Pointer[tls.Certificate] // the HTTPS pair in use (ReloadTLS)
	holdJobs  bool                            // tests: do not start the job runner
	// keysNow, when set, is the key store's clock (tests of expiry and
	// rotation overlaps).
	keysNow func() time.Time
	// peerTiming, when set, overrides the peers' reconnect wait, stream
	// discovery interval and pull expiry (tests that cut links often).
	peerTiming *jetstream.PeersConfig
	httpServer *http.Server
	listener   net.Listener
	cancel     context.CancelFunc
	done       chan struct{}
	errc       chan error
}

// dataPath returns a path inside the data dir.
func (m *Main) dataPath(elem ...string) string {
	return filepath.Join(append([]string{m.Config.DataDir}, elem...)...)
}

// Open opens the store, starts (or connects to) NATS, the outbox and the
// HTTP server. On error everything opened so far is closed.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close(context.Background())
		}
	}()
	c := &m.Config
	if c.MemoryMiB > 0 {
		debug.SetMemoryLimit(c.heapLimitMiB() << 20)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if c.Site, err = siteID(c.DataDir, c.Site); err != nil {
		return err
	}
	m.Logger = m.Logger.With("site", c.Site)

	if m.Store, err = pebble.Open(m.dataPath("pebble"), pebble.Options{Logger: m.Logger,
		CacheSize: c.CacheMiB << 20, MemTableSize: uint64(c.memtableMiB()) << 20, ValueCacheBytes: int(max(1, c.CacheMiB/8)) << 20}); err != nil {
		return err
	}
	offset := c.ClockOffset
	if m.Site, err = projections.NewSite(projections.SiteConfig{
		ID: c.Site, Storage: m.Store, Now: func() time.Time { return time.Now().Add(offset) },
		AheadTolerance: c.SkewTol,
	}); err != nil {
		return err
	}
	if offset != 0 {
		m.Logger.Warn("wall clock shifted for a drill; wall time never orders anything", "clock_offset", offset.String())
	}

	if m.SigningKey, err = siteKey(c.DataDir); err != nil {
		return err
	}
	if m.Keys, err = keys.Open(m.Store.Bucket("keys"), keys.Options{Now: m.keysNow, Logger: m.Logger}); err != nil {
		return err
	}
	if err := m.ensureAdminKey(ctx); err != nil {
		return err
	}

	outgoing, err := m.outgoingNATSOptions()
	if err != nil {
		return err
	}
	url, own := c.NATSURL, outgoing
	if url == "" {
		serverTLS, ownOpts, err := m.embeddedNATS()
		if err != nil {
			return err
		}
		var siteNkeyPub string
		if len(c.PeerNkeys) > 0 {
			if _, siteNkeyPub, err = siteNkey(c.DataDir); err != nil {
				return err
			}
		}
		if m.NATS, err = jetstream.StartServer(jetstream.ServerConfig{
			Name: c.Site, Listen: c.NATSListen, StoreDir: m.dataPath("jetstream"), Logger: m.Logger,
			TLS: serverTLS, SiteNkey: siteNkeyPub, PeerNkeys: c.PeerNkeys,
		}); err != nil {
			return err
		}
		url, own = m.NATS.URL(), ownOpts
		m.Logger.Info("embedded NATS JetStream started", "url", url, "tls", serverTLS != nil, "peer_nkeys", len(c.PeerNkeys))
	}
	if m.Conn, err = jetstream.Connect(url, "dss-sync "+c.Site, append(own,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				m.Logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { m.Logger.Info("NATS reconnected", "url", jetstream.RedactURL(nc.ConnectedUrl())) }),
	)...); err != nil {
		return err
	}
	if m.responder, err = jetstream.Serve(m.Conn, c.Site, m.Store, m.Logger); err != nil {
		return err
	}
	if m.Outbox, err = jetstream.NewOutbox(jetstream.OutboxConfig{
		Site: c.Site, Conn: m.Conn, Feed: m.Store, Cursor: bucketCursor{m.Store.Bucket("outbox")}, Logger: m.Logger,
		Replicas: c.Replicas,
	}); err != nil {
		return err
	}

	ijs, err := natsjs.New(m.Conn)
	if err != nil {
		return err
	}
	if _, err := jetstream.EnsureInbox(ctx, ijs, c.Site, c.Replicas); err != nil {
		return err
	}
	received := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dss_events_received_total",
		Help: "Events made elsewhere, by how they came (inbox: imports and tools; peer: streams and anti-entropy) and what the applier did with them."}, []string{"source", "result"})
	skewFlags := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dss_skew_flags_total",
		Help: "Clock-skew flags raised on received events (evidence only; nothing is reordered)."}, []string{"flag"})
	// Every series exists from the start, so that rate() and increase()
	// see the first event too.
	for _, source := range []string{"peer", "inbox"} {
		for _, result := range []string{"applied", "duplicate", "held", "refused"} {
			received.WithLabelValues(source, result)
		}
	}
	for _, f := range []string{projections.FlagAheadOfReceiver, projections.FlagClockDrift, projections.FlagWallBeforeAncestor} {
		skewFlags.WithLabelValues(f)
	}
	onReceipt := func(source string) func(string, *projections.Receipt) {
		return func(_ string, rc *projections.Receipt) {
			received.WithLabelValues(source, "applied").Add(float64(len(rc.Applied)))
			received.WithLabelValues(source, "duplicate").Add(float64(rc.Duplicates))
			received.WithLabelValues(source, "held").Add(float64(len(rc.Held)))
			received.WithLabelValues(source, "refused").Add(float64(len(rc.Refused)))
			for _, f := range rc.Flags {
				skewFlags.WithLabelValues(f.Flag).Inc()
			}
		}
	}
	if m.Applier, err = jetstream.NewApplier(jetstream.ApplierConfig{
		Conn: m.Conn, Stream: jetstream.InboxStream(c.Site), Durable: "applier", Site: m.Site, Logger: m.Logger,
		OnReceipt: onReceipt("inbox"),
	}); err != nil {
		return err
	}
	// On a shared deployment (--nats-url) the other sites' streams are
	// there: it is a peer like any other.
	peerURLs := slices.Clone(c.Peers)
	if c.NATSURL != "" && !slices.Contains(peerURLs, c.NATSURL) {
		peerURLs = append(peerURLs, c.NATSURL)
	}
	if len(peerURLs) > 0 {
		pcfg := jetstream.PeersConfig{Site: c.Site, URLs: peerURLs, Options: outgoing,
			Receiver: m.Site, Store: m.Store, AntiEntropy: c.AntiEntropy, Logger: m.Logger, OnReceipt: onReceipt("peer")}
		if t := m.peerTiming; t != nil {
			pcfg.ReconnectWait, pcfg.Discover, pcfg.PullExpiry = t.ReconnectWait, t.Discover, t.PullExpiry
		}
		m.Peers = jetstream.NewPeers(pcfg)
	}

	lim := archive.DefaultImportLimits
	lim.Zip.MaxArchiveBytes, lim.DTCG.MaxTokens = c.ImportBytes, c.ImportToks
	arch := &archives{m: m, limits: lim, trusted: map[string]bool{}, syncRecords: 20_000, maxPlan: 200_000, maxReplace: 250_000, maxQueued: c.ImportQueue}
	for _, k := range c.TrustKeys {
		arch.trusted[k] = true
	}
	jcfg := arch.jobsConfig()
	jcfg.Site, jcfg.Conn, jcfg.Store, jcfg.Logger, jcfg.Replicas = c.Site, m.Conn, m.Store.Bucket("jobs"), m.Logger, c.Replicas
	if arch.jobs, err = jetstream.NewJobs(ctx, jcfg); err != nil {
		return err
	}
	m.Jobs, m.archives = arch.jobs, arch
	if err := arch.sweepSpool(); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(received, skewFlags, syncCollector{m}, healthCollector{m})
	arch.metrics = newArchiveMetrics(reg)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dss_events_committed", Help: "Events this site's log holds (local commit number)."},
			func() float64 { return float64(m.Store.Last()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dss_outbox_published", Help: "Events published to JetStream."},
			func() float64 { return float64(m.Outbox.Published()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dss_outbox_lag", Help: "Committed events not yet published to JetStream."},
			func() float64 { return float64(m.Outbox.Lag()) }),
	)
	m.API = api.NewServer(api.Config{
		Keys: keyAdmin{m.Keys},
		Site: m.Site, Auth: keyAuth{m.Keys}, Logger: m.Logger, Registry: reg, MaxBodyBytes: c.MaxBody,
		Version: version, Ready: m.ready, SigningKey: m.SigningKey,
		Archives: arch, MaxImportBytes: c.ImportBytes, Sync: syncStatus{m}, Feed: m.Store, Backups: m,
		Limits: api.Limits{PerIP: c.RateIP, PerKey: c.RateKey, AuthFailures: c.RateAuth, TrustedProxies: c.TrustedProxies},
	})

	if m.listener, err = net.Listen("tcp", c.HTTPAddr); err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", c.HTTPAddr, err)
	}
	m.httpServer = &http.Server{
		Handler:           m.API,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
		// The security log records the address failed authentications
		// come from.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return keys.WithRemoteAddr(ctx, c.RemoteAddr().String())
		},
	}
	m.httpServer.RegisterOnShutdown(m.API.CloseStreams)
	if c.TLSCert != "" {
		if err := m.ReloadTLS(); err != nil {
			return err
		}
		m.httpServer.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return m.tlsCert.Load(), nil }}
		m.listener = tls.NewListener(m.listener, m.httpServer.TLSConfig)
	}

	catchUp, err := m.holdWritesIfRestored()
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done, m.errc = cancel, make(chan struct{}), make(chan error, 1)
	var wg sync.WaitGroup
	runs := []func(context.Context) error{m.Outbox.Run, m.Applier.Run, m.Keys.Run}
	if !m.holdJobs {
		runs = append(runs, m.Jobs.Run)
	}
	if m.Peers != nil {
		runs = append(runs, m.Peers.Run)
	}
	if catchUp != nil {
		runs = append(runs, catchUp)
	}
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); run(runCtx) }()
	}
	go func() { wg.Wait(); close(m.done) }()
	srv, ln, errc := m.httpServer, m.listener, m.errc
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	m.Logger.Info("dss-sync serving", "http", m.HTTPURL(), "data_dir", c.DataDir, "version", version)
	return nil
}

// ReloadTLS reads --tls-cert and --tls-key again (SIGHUP): new handshakes
// use the new pair, open connections keep theirs. A pair that does not load
// leaves the one in use in place.
func (m *Main) ReloadTLS() error {
	cert, err := tls.LoadX509KeyPair(m.Config.TLSCert, m.Config.TLSKey)
	if err != nil {
		return fmt.Errorf("invalid --tls-cert/--tls-key: %w", err)
	}
	if cert.Leaf != nil {
		m.Logger.Info("TLS certificate loaded", "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
	m.tlsCert.Store(&cert)
	return nil
}

// HTTPURL returns the base URL of the REST API.
func (m *Main) HTTPURL() string {
	if m.listener == nil {
		return ""
	}
	scheme := "http"
	if m.Config.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + m.listener.Addr().String()
}

// Err reports a fatal serving error (the listener failed).
func (m *Main) Err() <-chan error { return m.errc }

func (m *Main) ready(ctx context.Context) error {
	if err := m.Site.WritesHeld(); err != nil {
		return err
	}
	if m.Conn == nil || !m.Conn.IsConnected() {
		return errors.New("NATS is not connected")
	}
	if _, err := m.Store.Projects(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Close stops the site: stop accepting requests and finish those in flight,
// flush the outbox, then close NATS and the store.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.httpServer != nil {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := m.httpServer.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	if m.Outbox != nil && m.cancel != nil && m.Conn != nil && m.Conn.IsConnected() {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := m.Outbox.Flush(fctx); err != nil {
			m.Logger.Warn("outbox not flushed before shutdown; it resumes at next start", "err", err)
		}
		cancel()
	}
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	if m.responder != nil {
		m.responder.Close()
	}
	if m.Conn != nil {
		m.Conn.Close()
	}
	if m.NATS != nil {
		m.NATS.Close()
	}
	if m.Keys != nil { // after the runs stopped: nothing uses keys any more
		if err := m.Keys.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close keys: %w", err))
		}
	}
	if m.Store != nil {
		if err := m.Store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ensureAdminKey creates an admin key when the site has no working one
// (first start, or every admin key expired or revoked), and writes it to
// <data-dir>/admin.key (0600): whoever holds the data dir can always get
// back in by restarting the site. The key itself is never logged. Keys that
// expire within two weeks are named in a warning.
func (m *Main) ensureAdminKey(ctx context.Context) error {
	existing, err := m.Keys.List(ctx)
	if err != nil {
		return fmt.Errorf("read keys: %w", err)
	}
	now := time.Now()
	if m.keysNow != nil {
		now = m.keysNow()
	}
	working, names := false, map[string]bool{}
	for _, k := range existing {
		st := k.State(now)
		if st != keys.StateActive && st != keys.StateRotated {
			continue
		}
		names[k.Name] = true
		if slices.Contains(k.Scopes, keys.ScopeAdmin) && len(k.Projects) == 0 {
			working = true
		}
		if !k.ExpiresAt.IsZero() && k.ExpiresAt.Sub(now) < 14*24*time.Hour && st == keys.StateActive {
			m.Logger.Warn("an API key expires soon: rotate it (dss-sync keys rotate)", "key_id", k.ID, "key_name", k.Name, "expires_at", k.ExpiresAt)
		}
	}
	if working {
		return nil
	}
	name := "admin"
	for i := 2; names[name]; i++ {
		name = "admin-" + strconv.Itoa(i)
	}
	_, token, err := m.Keys.Create(ctx, name, []string{keys.ScopeAdmin}, nil, 0)
	if err != nil {
		return fmt.Errorf("create admin key: %w", err)
	}
	path := m.dataPath("admin.key")
	if err := writeFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin key: %w", err)
	}
	if len(existing) > 0 {
		m.Logger.Warn("no admin API key works any more (expired or revoked): created a new one", "path", path, "key_name", name)
	} else {
		m.Logger.Info("created the admin API key; it is in the file named here, and shown nowhere else", "path", path)
	}
	return nil
}

// siteID returns the data dir's site id: the one recorded in
// <data-dir>/site-id, or want (generated when empty) recorded there now. A
// data dir belongs to one site forever: its events are chained under that id.
func siteID(dataDir, want string) (string, error) {
	path := filepath.Join(dataDir, "site-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if !siteRE.MatchString(have) {
			return "", fmt.Errorf("%s holds an invalid site id %q", path, have)
		}
		if want != "" && want != have {
			return "", fmt.Errorf("invalid --site %q: data dir %s belongs to site %q", want, dataDir, have)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read site id: %w", err)
	}
	if want == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		want = "site-" + strconv.FormatUint(binary.BigEndian.Uint64(b[:])%(36*36*36*36*36*36), 36)
	}
	if err := writeFileAtomic(path, []byte(want+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("record site id: %w", err)
	}
	return want, nil
}

// writeFileAtomic writes a file through a temp file and rename, fsyncing both.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// bucketCursor keeps the outbox cursor in the store.
type bucketCursor struct{ b *pebble.Bucket }

func (c bucketCursor) Load() (uint64, error) {
	v, ok, err := c.b.Get("cursor")
	if err != nil || !ok || len(v) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

func (c bucketCursor) Store(n uint64) error {
	return c.b.Set("cursor", binary.BigEndian.AppendUint64(nil, n))
}

// keyAuth adapts the key store to the API's Authenticator.
type keyAuth struct{ s *keys.Store }

func (k keyAuth) Authenticate(ctx context.Context, token string) (api.Principal, error) {
	p, err := k.s.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// runServe is `dss-sync serve`.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig(args, getenv)
	if err != nil {
		return err
	}
	m := &Main{Config: *cfg, Logger: newLogger(stderr, cfg.LogLevel, cfg.LogFormat), Stdout: stdout}
	// Signals are caught before Open logs "dss-sync serving": a SIGHUP or
	// SIGTERM sent as soon as that line appears must not meet the default
	// action, which kills the process without closing the store. One that
	// arrives during Open is acted on once Open returns.
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := m.Open(ctx); err != nil {
		return err
	}
	ctx = sigCtx
	var serveErr error
	for serving := true; serving; {
		select {
		case <-ctx.Done():
			m.Logger.Info("shutting down")
			serving = false
		case serveErr = <-m.Err():
			m.Logger.Error("serving failed", "err", serveErr)
			serving = false
		case <-hup:
			if cfg.TLSCert == "" {
				m.Logger.Info("SIGHUP: nothing to reload (no --tls-cert)")
			} else if err := m.ReloadTLS(); err != nil {
				m.Logger.Error("SIGHUP: TLS certificate not reloaded; the previous one stays in use", "err", err)
			}
		}
	}
	return errors.Join(serveErr, m.Close(context.Background()))
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

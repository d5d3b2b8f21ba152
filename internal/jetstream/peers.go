package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Replication between sites. Every site publishes every event it holds, its
// own and those it received, to its own stream (StreamName), in its commit
// order; the stream's sequence is the site's commit number. A site pulls
// from each peer: on the peer's NATS server it finds the event streams of
// the sites other than itself and consumes each through an Applier, with a
// durable pull consumer named after itself (PeerDurable). So:
//
//   - an event reaches every site that has a path of peers to its origin,
//     whatever the graph (mesh, chain, star, cycles): a site republishes what
//     it receives, and the copies that come back are duplicates;
//   - the consumer's position, kept by the peer's JetStream, is where a site
//     that was down or cut off resumes; nothing is acknowledged before the
//     events are durable in this site's Pebble log, which stays the record
//     (JetStream is the transport, with its lazy fsync);
//   - a peer whose JetStream store is lost rebuilds its stream from its log
//     (the outbox republishes) and a new consumer starts from its beginning:
//     what this site holds already is dropped as duplicate;
//   - pointed at a shared NATS JetStream deployment (--nats-url), one peer
//     URL names every other site using it: their streams are all there.

// PeerDurable is the name of the consumer a site keeps on another site's
// stream.
func PeerDurable(site string) string { return "peer-" + site }

// eventStreamRE matches the name of a site's event stream and captures the
// site (site ids are lowercase; the inbox and job streams are not matched).
var eventStreamRE = regexp.MustCompile(`^DSS-([a-z0-9-]{1,32})$`)

// PeersConfig configures Peers.
type PeersConfig struct {
	Site string   // this site
	URLs []string // the peers' NATS URLs
	// Options are added to every peer connection: credentials, TLS.
	Options  []nats.Option
	Receiver Receiver
	Logger   *slog.Logger
	// Discover is how often a connected peer is asked for site streams not
	// yet consumed. Default 2 s.
	Discover time.Duration
	// OnReceipt, when set, is called after each applied batch (metrics),
	// whether it came through a stream or an anti-entropy fetch.
	OnReceipt func(project string, rc *projections.Receipt)
	// Store is this site's log, which anti-entropy compares with the
	// peers' (see Repair). Nil: no anti-entropy.
	Store projections.Storage
	// AntiEntropy is how often each site pulled through a peer is asked
	// for its version vectors once its stream is drained. Default 30 s.
	AntiEntropy time.Duration
	// ReconnectWait is the pause between reconnection attempts to a peer.
	// Default 1 s.
	ReconnectWait time.Duration
	// PullExpiry is the appliers' (see ApplierConfig). Default 5 s.
	PullExpiry time.Duration
}

// Peers pulls events from other sites. Run starts it; Status reports on it.
type Peers struct {
	cfg   PeersConfig
	mu    sync.Mutex
	peers []*peer
}

// peer is one peer URL: its connection and the streams consumed there.
type peer struct {
	url     string
	mu      sync.Mutex
	nc      *nats.Conn
	js      natsjs.JetStream
	streams []string // remote site ids whose streams are consumed, sorted
	err     string   // the last error, "" after a success
	repair  RepairStatus
	// vectors holds each site's answer at the previous anti-entropy pass.
	vectors map[string]map[string]events.Vector
}

// RepairStatus is what anti-entropy did through one peer.
type RepairStatus struct {
	// Last is when the last pass ended (zero: none yet).
	Last time.Time
	// Repaired counts the events fetched directly and folded since start:
	// events its stream never delivered.
	Repaired uint64
	// Error is the last pass's error, "" after a success.
	Error string
}

// PeerStatus is what Status says of one peer.
type PeerStatus struct {
	URL string // credentials removed
	// Server is the name of the NATS server connected to: the peer's site
	// id when it runs the embedded server.
	Server     string
	Connection string // connected, reconnecting or disconnected
	// Sites are the sites whose events are pulled through this peer.
	Sites       []PeerSite
	AntiEntropy RepairStatus
	Error       string
}

// PeerSite is the position of this site in one other site's stream.
type PeerSite struct {
	Site string
	// Applied is the stream sequence (that site's commit number) up to
	// which every event is applied here; Behind is how many events of the
	// stream are not yet (delivered and not acknowledged, or not delivered).
	Applied, Behind uint64
	Error           string
}

// NewPeers returns a replicator; Run starts it.
func NewPeers(cfg PeersConfig) *Peers {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Discover <= 0 {
		cfg.Discover = 2 * time.Second
	}
	if cfg.AntiEntropy <= 0 {
		cfg.AntiEntropy = 30 * time.Second
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = time.Second
	}
	p := &Peers{cfg: cfg}
	for _, u := range cfg.URLs {
		p.peers = append(p.peers, &peer{url: u})
	}
	return p
}

// Run pulls from every peer until ctx ends, reconnecting as needed; it
// returns ctx's error.
func (p *Peers) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, pe := range p.peers {
		wg.Add(1)
		go func() { defer wg.Done(); p.runPeer(ctx, pe) }()
	}
	wg.Wait()
	return ctx.Err()
}

func (p *Peers) runPeer(ctx context.Context, pe *peer) {
	l := p.cfg.Logger.With("peer", RedactURL(pe.url))
	wake := make(chan struct{}, 1) // look for streams now: (re)connected
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	opts := append([]nats.Option{
		nats.Name("dss-sync " + p.cfg.Site + " peer"),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(p.cfg.ReconnectWait),
		nats.ConnectHandler(func(*nats.Conn) { l.Info("peer connected"); poke() }),
		nats.ReconnectHandler(func(*nats.Conn) { l.Info("peer reconnected"); poke() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				l.Warn("peer disconnected", "err", err)
			}
		}),
		// Failed attempts (refused, TLS, authentication) show in the status
		// and, once per kind of error, in the log.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if pe.setErr(err) {
				l.Warn("cannot connect to peer", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if pe.setErr(err) {
				l.Warn("peer error", "err", err)
			}
		}),
	}, p.cfg.Options...)
	nc, err := nats.Connect(pe.url, opts...)
	if err != nil {
		pe.setErr(err)
		l.Error("peer unusable", "err", err)
		return
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		pe.setErr(err)
		return
	}
	pe.mu.Lock()
	pe.nc, pe.js = nc, js
	pe.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	if p.cfg.Store != nil {
		wg.Add(1)
		go func() { defer wg.Done(); p.antiEntropy(ctx, pe, l) }()
	}
	consumed := map[string]bool{}
	for {
		if nc.IsConnected() {
			sites, err := p.discover(ctx, js)
			pe.setErr(err)
			for _, site := range sites {
				if consumed[site] {
					continue
				}
				a, err := NewApplier(ApplierConfig{Conn: nc, Stream: StreamName(site), Durable: PeerDurable(p.cfg.Site),
					Site: p.cfg.Receiver, Logger: l.With("origin_stream", StreamName(site)), OnReceipt: p.cfg.OnReceipt,
					PullExpiry: p.cfg.PullExpiry})
				if err != nil {
					pe.setErr(err)
					continue
				}
				consumed[site] = true
				pe.addStream(site)
				l.Info("pulling a site's events through this peer", "remote_site", site)
				wg.Add(1)
				go func() { defer wg.Done(); a.Run(ctx) }()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(p.cfg.Discover):
		}
	}
}

// discover lists the sites, other than this one, whose event streams the
// peer's JetStream holds.
func (p *Peers) discover(ctx context.Context, js natsjs.JetStream) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var sites []string
	for n := range names.Name() {
		if m := eventStreamRE.FindStringSubmatch(n); m != nil && m[1] != p.cfg.Site {
			sites = append(sites, m[1])
		}
	}
	if err := names.Err(); err != nil {
		return sites, fmt.Errorf("list streams: %w", err)
	}
	slices.Sort(sites)
	return sites, nil
}

// Status reports each peer: connected or not, and how far this site is in
// each stream pulled through it.
func (p *Peers) Status(ctx context.Context) []PeerStatus {
	out := make([]PeerStatus, 0, len(p.peers))
	for _, pe := range p.peers {
		pe.mu.Lock()
		st := PeerStatus{URL: RedactURL(pe.url), Connection: "disconnected", Error: pe.err, Sites: []PeerSite{}, AntiEntropy: pe.repair}
		if pe.nc != nil {
			switch {
			case pe.nc.IsConnected():
				st.Connection, st.Server = "connected", pe.nc.ConnectedServerName()
			case pe.nc.IsReconnecting():
				st.Connection = "reconnecting"
			}
		}
		js, streams := pe.js, slices.Clone(pe.streams)
		pe.mu.Unlock()
		for _, site := range streams {
			ps := PeerSite{Site: site}
			if st.Connection == "connected" {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				info, err := consumerInfo(cctx, js, StreamName(site), PeerDurable(p.cfg.Site))
				cancel()
				if err != nil {
					ps.Error = err.Error()
				} else {
					ps.Applied, ps.Behind = info.AckFloor.Stream, info.NumPending+uint64(info.NumAckPending)
				}
			} else {
				ps.Error = "not connected"
			}
			st.Sites = append(st.Sites, ps)
		}
		out = append(out, st)
	}
	return out
}

// antiEntropy runs a repair pass through pe every AntiEntropy interval
// until ctx ends. A site is asked only once its stream has delivered
// everything to this site's consumer: until then what is missing is on its
// way.
func (p *Peers) antiEntropy(ctx context.Context, pe *peer, l *slog.Logger) {
	t := time.NewTicker(p.cfg.AntiEntropy)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pe.mu.Lock()
		nc, js, sites := pe.nc, pe.js, slices.Clone(pe.streams)
		pe.mu.Unlock()
		if nc == nil || !nc.IsConnected() {
			continue
		}
		var errs []error
		total := 0
		for _, site := range sites {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			n, err := p.repairSite(cctx, pe, nc, js, site)
			cancel()
			total += n
			if err != nil && ctx.Err() == nil {
				errs = append(errs, err)
			}
		}
		if ctx.Err() != nil {
			return
		}
		err := errors.Join(errs...)
		if total > 0 {
			l.Warn("anti-entropy fetched events that no stream delivered", "events", total)
		}
		if err != nil {
			l.Warn("anti-entropy pass failed", "err", err)
		}
		pe.mu.Lock()
		pe.repair.Last, pe.repair.Repaired = time.Now(), pe.repair.Repaired+uint64(total)
		pe.repair.Error = ""
		if err != nil {
			pe.repair.Error = err.Error()
		}
		pe.mu.Unlock()
	}
}

// repairSite runs Repair against one site when its stream is drained, for
// what the site held both at the previous pass and now (Settled).
func (p *Peers) repairSite(ctx context.Context, pe *peer, nc *nats.Conn, js natsjs.JetStream, site string) (int, error) {
	// Messages delivered and not acknowledged do not count: they may
	// belong to a process of this site that crashed, and would wait for
	// the ack timeout (30 s); Settled keeps what is merely in flight.
	info, err := consumerInfo(ctx, js, StreamName(site), PeerDurable(p.cfg.Site))
	if err != nil || info.NumPending > 0 {
		pe.setVectors(site, nil)
		return 0, nil // not delivered yet, or being recreated: the stream goes first
	}
	f := Fetcher{Conn: nc, Site: site}
	now, err := f.Vectors(ctx)
	if errors.Is(err, nats.ErrNoResponders) {
		pe.setVectors(site, nil)
		return 0, nil // the site is not running: its stream is all there is
	}
	if err != nil {
		return 0, err
	}
	before := pe.setVectors(site, now)
	if before == nil {
		return 0, nil
	}
	return Repair(ctx, f, Settled(before, now), p.cfg.Store, p.cfg.Receiver, p.cfg.OnReceipt)
}

// setVectors records a site's latest vectors and returns the previous.
func (pe *peer) setVectors(site string, vs map[string]events.Vector) map[string]events.Vector {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if pe.vectors == nil {
		pe.vectors = map[string]map[string]events.Vector{}
	}
	before := pe.vectors[site]
	pe.vectors[site] = vs
	return before
}

// CatchUp returns once this site holds everything that every site it
// pulls through each peer held when asked: for every peer, once connected,
// it asks each site found there for its vectors and fetches what is missing
// (Repair), retrying every interval until a full round through the peer
// succeeds. A site restored from a backup runs it before it takes writes
// again. It returns early only with ctx's error.
func (p *Peers) CatchUp(ctx context.Context, interval time.Duration) error {
	done := make([]bool, len(p.peers))
	for {
		left := 0
		for i, pe := range p.peers {
			if done[i] {
				continue
			}
			pe.mu.Lock()
			nc, js := pe.nc, pe.js
			pe.mu.Unlock()
			if nc != nil && nc.IsConnected() && p.cfg.Store != nil {
				done[i] = p.catchUpPeer(ctx, nc, js) == nil
			}
			if !done[i] {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func (p *Peers) catchUpPeer(ctx context.Context, nc *nats.Conn, js natsjs.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sites, err := p.discover(ctx, js)
	if err != nil {
		return err
	}
	for _, site := range sites {
		f := Fetcher{Conn: nc, Site: site}
		vs, err := f.Vectors(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			continue // not running: nothing to ask
		}
		if err != nil {
			return err
		}
		if _, err := Repair(ctx, f, vs, p.cfg.Store, p.cfg.Receiver, p.cfg.OnReceipt); err != nil {
			return err
		}
	}
	return nil
}

// Puller is a site pulling from this site's stream, and how far it is.
type Puller struct {
	Site            string
	Applied, Behind uint64
}

// Pullers lists the sites that pull this site's stream (their PeerDurable
// consumers on it), from the stream's own JetStream.
func Pullers(ctx context.Context, nc *nats.Conn, site string) ([]Puller, error) {
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, StreamName(site))
	if err != nil {
		return nil, err
	}
	var out []Puller
	infos := st.ListConsumers(ctx)
	for info := range infos.Info() {
		if remote, ok := strings.CutPrefix(info.Name, PeerDurable("")); ok {
			out = append(out, Puller{Site: remote, Applied: info.AckFloor.Stream, Behind: info.NumPending + uint64(info.NumAckPending)})
		}
	}
	return out, infos.Err()
}

func consumerInfo(ctx context.Context, js natsjs.JetStream, stream, durable string) (*natsjs.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// setErr records the last error (nil: none) and reports whether it differs
// from the one before.
func (pe *peer) setErr(err error) bool {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	before := pe.err
	pe.err = ""
	if err != nil && !errors.Is(err, context.Canceled) {
		pe.err = err.Error()
	}
	return pe.err != before
}

func (pe *peer) addStream(site string) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	i, _ := slices.BinarySearch(pe.streams, site)
	pe.streams = slices.Insert(pe.streams, i, site)
}

// RedactURL drops credentials from a NATS URL (nats://user:pass@host).
func RedactURL(u string) string {
	var out []string
	for _, part := range strings.Split(u, ",") {
		if at := strings.LastIndex(part, "@"); at >= 0 {
			if s := strings.Index(part, "://"); s >= 0 && s < at {
				part = part[:s+3] + "***@" + part[at+1:]
			}
		}
		out = append(out, part)
	}
	return strings.Join(out, ",")
}

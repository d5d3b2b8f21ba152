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
	// yet consumed. Default 5 s.
	Discover time.Duration
	// OnReceipt, when set, is called after each applied batch (metrics).
	OnReceipt func(project string, rc *projections.Receipt)
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
}

// PeerStatus is what Status says of one peer.
type PeerStatus struct {
	URL string // credentials removed
	// Server is the name of the NATS server connected to: the peer's site
	// id when it runs the embedded server.
	Server     string
	Connection string // connected, reconnecting or disconnected
	// Sites are the sites whose events are pulled through this peer.
	Sites []PeerSite
	Error string
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
		cfg.Discover = 5 * time.Second
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
	l := p.cfg.Logger.With("peer", redactURL(pe.url))
	wake := make(chan struct{}, 1) // look for streams now: (re)connected
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	opts := append([]nats.Option{
		nats.Name("dss-sync " + p.cfg.Site + " peer"),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(*nats.Conn) { l.Info("peer connected"); poke() }),
		nats.ReconnectHandler(func(*nats.Conn) { l.Info("peer reconnected"); poke() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				l.Warn("peer disconnected", "err", err)
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
					Site: p.cfg.Receiver, Logger: l.With("origin_stream", StreamName(site)), OnReceipt: p.cfg.OnReceipt})
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
		st := PeerStatus{URL: redactURL(pe.url), Connection: "disconnected", Error: pe.err, Sites: []PeerSite{}}
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

func consumerInfo(ctx context.Context, js natsjs.JetStream, stream, durable string) (*natsjs.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

func (pe *peer) setErr(err error) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	pe.err = ""
	if err != nil && !errors.Is(err, context.Canceled) {
		pe.err = err.Error()
	}
}

func (pe *peer) addStream(site string) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	i, _ := slices.BinarySearch(pe.streams, site)
	pe.streams = slices.Insert(pe.streams, i, site)
}

// redactURL drops credentials from a NATS URL (nats://user:pass@host).
func redactURL(u string) string {
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

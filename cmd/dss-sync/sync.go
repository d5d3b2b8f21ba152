package main

import (
	"context"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/prometheus/client_golang/prometheus"
)

// syncStatus implements api.Sync: the site's bus connection and its peers.
type syncStatus struct{ m *Main }

func (s syncStatus) Connection() string {
	switch nc := s.m.Conn; {
	case nc != nil && nc.IsConnected():
		return "connected"
	case nc != nil && nc.IsReconnecting():
		return "reconnecting"
	}
	return "disconnected"
}

func (s syncStatus) Peers(ctx context.Context) []api.PeerStatus {
	out := []api.PeerStatus{}
	if s.m.Peers == nil {
		return out
	}
	for _, p := range s.m.Peers.Status(ctx) {
		ps := api.PeerStatus{URL: p.URL, Connection: p.Connection, Error: p.Error, Sites: []api.PeerSite{},
			AntiEntropy: api.AntiEntropy{Repaired: p.AntiEntropy.Repaired, Error: p.AntiEntropy.Error}}
		if last := p.AntiEntropy.Last; !last.IsZero() {
			ps.AntiEntropy.LastRun = &last
		}
		for _, st := range p.Sites {
			if st.Site == p.Server {
				ps.Site = st.Site
			}
			ps.Lag.Events += st.Behind
			ps.Sites = append(ps.Sites, api.PeerSite{Site: st.Site, Applied: st.Applied, Behind: st.Behind, Error: st.Error})
		}
		out = append(out, ps)
	}
	return out
}

// syncCollector exports the replication state to Prometheus at each scrape:
// per peer, whether it is connected, how far this site is behind each
// stream pulled through it and what anti-entropy repaired; per site pulling
// from this one, how far it is behind this site's stream; and the events
// held in the causal buffer.
type syncCollector struct{ m *Main }

var (
	descPeerConnected = prometheus.NewDesc("dss_peer_connected",
		"1 when the connection to the peer is up.", []string{"peer"}, nil)
	descPeerBehind = prometheus.NewDesc("dss_peer_behind_events",
		"Events of a site's stream, pulled through the peer, not yet applied here.", []string{"peer", "site"}, nil)
	descPeerApplied = prometheus.NewDesc("dss_peer_applied_seq",
		"Stream sequence of a site's stream, pulled through the peer, through which every event is applied here.", []string{"peer", "site"}, nil)
	descRepaired = prometheus.NewDesc("dss_anti_entropy_repaired_total",
		"Events fetched directly from a site through the peer because no stream delivered them.", []string{"peer"}, nil)
	descRepairFailing = prometheus.NewDesc("dss_anti_entropy_failing",
		"1 when the last anti-entropy pass through the peer failed.", []string{"peer"}, nil)
	descSent = prometheus.NewDesc("dss_events_sent",
		"Events of this site's stream the pulling site has applied (its consumer's acknowledged sequence).", []string{"site"}, nil)
	descSendBehind = prometheus.NewDesc("dss_events_unsent",
		"Events of this site's stream the pulling site has not applied yet.", []string{"site"}, nil)
	descHeld = prometheus.NewDesc("dss_causal_buffer_events",
		"Received events held until a dependency arrives, all projects.", nil, nil)
)

func (c syncCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerConnected, descPeerBehind, descPeerApplied, descRepaired, descRepairFailing, descSent, descSendBehind, descHeld} {
		ch <- d
	}
}

func (c syncCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	if c.m.Peers != nil {
		for _, p := range c.m.Peers.Status(ctx) {
			ch <- prometheus.MustNewConstMetric(descPeerConnected, prometheus.GaugeValue, bool01(p.Connection == "connected"), p.URL)
			for _, s := range p.Sites {
				if s.Error == "" {
					ch <- prometheus.MustNewConstMetric(descPeerBehind, prometheus.GaugeValue, float64(s.Behind), p.URL, s.Site)
					ch <- prometheus.MustNewConstMetric(descPeerApplied, prometheus.GaugeValue, float64(s.Applied), p.URL, s.Site)
				}
			}
			ch <- prometheus.MustNewConstMetric(descRepaired, prometheus.CounterValue, float64(p.AntiEntropy.Repaired), p.URL)
			ch <- prometheus.MustNewConstMetric(descRepairFailing, prometheus.GaugeValue, bool01(p.AntiEntropy.Error != ""), p.URL)
		}
	}
	if pulls, err := jetstream.Pullers(ctx, c.m.Conn, c.m.Config.Site); err == nil {
		for _, p := range pulls {
			ch <- prometheus.MustNewConstMetric(descSent, prometheus.GaugeValue, float64(p.Applied), p.Site)
			ch <- prometheus.MustNewConstMetric(descSendBehind, prometheus.GaugeValue, float64(p.Behind), p.Site)
		}
	}
	if held, err := heldEvents(ctx, c.m.Store); err == nil {
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(held))
	}
}

// heldEvents counts the events in every project's causal buffer.
func heldEvents(ctx context.Context, store projections.Storage) (int, error) {
	ps, err := store.Projects(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, p := range ps {
		err := store.View(ctx, p, func(r projections.Reader) error {
			n, err := r.PendingCount()
			total += n
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

package main

import (
	"context"

	"github.com/dss-sync/dss-sync/api"
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
		ps := api.PeerStatus{URL: p.URL, Connection: p.Connection, Error: p.Error, Sites: []api.PeerSite{}}
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

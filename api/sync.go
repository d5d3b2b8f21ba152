package api

import (
	"context"
	"net/http"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// Sync reports a site's replication: its own bus connection and its peers.
type Sync interface {
	// Connection is "connected", "reconnecting" or "disconnected".
	Connection() string
	Peers(ctx context.Context) []PeerStatus
}

// SyncStatus is GET /v1/sync/status.
type SyncStatus struct {
	Site       string                   `json:"site"`
	Connection string                   `json:"connection"`
	Peers      []PeerStatus             `json:"peers"`
	Vectors    map[string]events.Vector `json:"vectors"` // by project
}

// PeerStatus is one --peer: its connection, and this site's position in
// each site's event stream reached through it.
type PeerStatus struct {
	URL string `json:"url"` // credentials removed
	// Site is the peer's site id, when the server connected to is a site's
	// embedded server.
	Site       string     `json:"site,omitempty"`
	Connection string     `json:"connection"`
	Lag        PeerLag    `json:"lag"`
	Sites      []PeerSite `json:"sites"`
	// AntiEntropy is what the repair passes through this peer did.
	AntiEntropy AntiEntropy `json:"antiEntropy"`
	Error       string      `json:"error,omitempty"`
}

// AntiEntropy reports the repair passes through one peer.
type AntiEntropy struct {
	LastRun  *time.Time `json:"lastRun,omitempty"` // nil before the first pass
	Repaired uint64     `json:"repaired"`          // events fetched because no stream delivered them
	Error    string     `json:"error,omitempty"`
}

// PeerLag is how far this site is behind a peer.
type PeerLag struct {
	Events uint64 `json:"events"` // events the peer holds that are not applied here
}

// PeerSite is this site's position in one site's event stream.
type PeerSite struct {
	Site    string `json:"site"`
	Applied uint64 `json:"applied"` // the stream sequence applied through
	Behind  uint64 `json:"behind"`  // events of the stream not applied yet
	Error   string `json:"error,omitempty"`
}

func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request) {
	st := SyncStatus{Site: s.cfg.Site.ID(), Connection: "connected", Peers: []PeerStatus{}, Vectors: map[string]events.Vector{}}
	if s.cfg.Sync != nil {
		st.Connection, st.Peers = s.cfg.Sync.Connection(), s.cfg.Sync.Peers(r.Context())
	}
	all, err := s.cfg.Site.Projects(r.Context())
	if err != nil {
		Error(w, r, err)
		return
	}
	p := principal(r.Context())
	for _, x := range all {
		if p.Can(ScopeRead, x.ID) {
			st.Vectors[x.ID] = x.Vector
		}
	}
	JSON(w, http.StatusOK, st)
}

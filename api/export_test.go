package api_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/dss-sync/dss-sync/api"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
)

// failingArchives fails every export before it writes a byte.
type failingArchives struct{ *testArchives }

func (failingArchives) Export(context.Context, string, api.ExportQuery, io.Writer) error {
	return events.Errorf(events.EUNAVAILABLE, "the store is closing")
}

// exportServer is a server over a site holding one project, with the given
// signing key (nil: none) and archives (nil: the test archives).
func exportServer(t *testing.T, key ed25519.PrivateKey, wrap func(*testArchives) api.Archives) *api.Server {
	t.Helper()
	site, err := projections.NewSite(projections.SiteConfig{ID: "test", Storage: projections.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	ta := &testArchives{site: site, key: key, jobs: map[string]*api.Job{}}
	var arch api.Archives = ta
	if wrap != nil {
		arch = wrap(ta)
	}
	srv := api.NewServer(api.Config{Site: site, Auth: testAuth{}, Logger: slog.New(slog.DiscardHandler), SigningKey: key, Archives: arch})
	rec := do(t, srv, "POST", "/v1/projects", "write", []byte(`{"id":"design","name":"Design"}`), map[string]string{"Content-Type": "application/json"})
	if rec.Code != http.StatusCreated {
		t.Fatalf("create project: %d %s", rec.Code, rec.Body)
	}
	return srv
}

// wantProblem checks that an answer is a problem with the given status, and
// not a half-sent download.
func wantProblem(t *testing.T, what string, code int, got int, h http.Header, body []byte) {
	t.Helper()
	var p struct{ Status int }
	if got != code || h.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != code {
		t.Fatalf("%s: %d %q %s, want a %d problem", what, got, h.Get("Content-Type"), body, code)
	}
	if h.Get("Content-Disposition") != "" {
		t.Fatalf("%s: a problem offered as a download: %q", what, h.Get("Content-Disposition"))
	}
}

// TestExportWithoutSigningKey: a site without a signing key refuses a .dss
// export with a 503 problem (an unsigned archive would be refused by every
// importer), and still serves a DTCG export, which is not signed.
func TestExportWithoutSigningKey(t *testing.T) {
	srv := exportServer(t, nil, nil)
	rec := do(t, srv, "GET", "/v1/projects/design/export", "read", nil, nil)
	wantProblem(t, "dss export without a key", http.StatusServiceUnavailable, rec.Code, rec.Header(), rec.Body.Bytes())
	rec = do(t, srv, "GET", "/v1/projects/design/export?format=dtcg", "read", nil, nil)
	if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("dtcg export without a key: %d %s", rec.Code, rec.Body)
	}
}

// TestExportFailsBeforeStreaming: an export that fails before its first
// byte answers with the error's problem instead of cutting the connection.
func TestExportFailsBeforeStreaming(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	srv := exportServer(t, key, func(ta *testArchives) api.Archives { return failingArchives{ta} })
	rec := do(t, srv, "GET", "/v1/projects/design/export", "read", nil, nil)
	wantProblem(t, "failing export", http.StatusServiceUnavailable, rec.Code, rec.Header(), rec.Body.Bytes())
}

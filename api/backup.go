package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// Backups takes a site's backups: cmd/dss-sync over internal/backup.
type Backups interface {
	// Backup writes a consistent backup of the running site to w (a tar
	// stream, see internal/backup).
	Backup(ctx context.Context, w io.Writer) error
}

// backup is GET /v1/admin/backup: a consistent online backup, streamed.
// An error before the first byte is a problem; after it, the stream is cut
// (the client's check of the manifest then fails).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Backups == nil {
		Error(w, r, events.Errorf(events.ENOTIMPLEMENTED, "backups are not available on this site"))
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.dss-backup"`,
		s.cfg.Site.ID(), time.Now().UTC().Format("20060102T150405Z")))
	sw := &startWriter{w: w}
	if err := s.cfg.Backups.Backup(r.Context(), sw); err != nil {
		if !sw.started {
			w.Header().Del("Content-Disposition")
			Error(w, r, err)
			return
		}
		logger(r.Context()).Error("backup failed midway", "err", err)
		panic(http.ErrAbortHandler)
	}
}

package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// streamKeepAlive is how often an idle event stream sends a comment, so
// that proxies and clients see the connection alive.
const streamKeepAlive = 15 * time.Second

// eventStream is GET /v1/projects/{p}/events/stream: the project's events
// as this site applies them, local, imported or from a peer, as
// Server-Sent Events. Each event's id is its commit number at this site;
// a client that reconnects with Last-Event-ID (or ?after=) gets every event
// committed after it, so nothing is missed between connections. Without
// either, the stream starts with the next event. Only durable events are
// sent: nothing a crash could take back.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) {
	feed := s.cfg.Feed
	if feed == nil {
		Error(w, r, events.Errorf(events.ENOTIMPLEMENTED, "the live event stream is not available on this site"))
		return
	}
	v, err := query(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	after := feed.Last()
	for _, from := range []struct{ name, value string }{{"after", v.Get("after")}, {"Last-Event-ID", r.Header.Get("Last-Event-ID")}} {
		if from.value == "" {
			continue
		}
		n, err := strconv.ParseUint(from.value, 10, 64)
		if err != nil {
			Error(w, r, events.Errorf(events.EMALFORMED, "%s must be an event id of this stream (a commit number), not %q", from.name, from.value))
			return
		}
		after = n
	}
	project := projectVar(r)
	if _, err := s.cfg.Site.Project(r.Context(), project); err != nil {
		Error(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(": dss-sync events of " + project + "\n\n"))
	if rc.Flush() != nil {
		return
	}
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	defer context.AfterFunc(s.closing, stop)()
	// A stream ends when its key stops working (revoked, expired).
	if e, ok := principal(r.Context()).(interface{ Done() <-chan struct{} }); ok && e.Done() != nil {
		go func() {
			select {
			case <-e.Done():
				stop()
			case <-ctx.Done():
			}
		}()
	}
	var buf []byte
	for {
		batch, err := feed.Read(ctx, after, 256)
		if err != nil {
			if ctx.Err() == nil {
				logger(ctx).Error("event stream: reading the log failed", "err", err)
			}
			return
		}
		buf = buf[:0]
		for _, c := range batch {
			after = c.Seq
			if c.Event.Project != project {
				continue
			}
			buf = append(buf, "id: "...)
			buf = strconv.AppendUint(buf, c.Seq, 10)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, c.Event.Type...)
			buf = append(buf, "\ndata: "...)
			buf = append(c.Event.AppendJSON(buf), "\n\n"...)
		}
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil || rc.Flush() != nil {
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, streamKeepAlive)
		err = feed.Wait(wctx, after)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case err != nil:
			return
		}
	}
}

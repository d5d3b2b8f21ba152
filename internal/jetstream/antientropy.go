package jetstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/nats-io/nats.go"
)

// Anti-entropy. Streams are the fast path, but a stream is not the record:
// a peer's JetStream store may be lost, truncated or purged, and the events
// it held then never arrive through it. So each site answers two requests
// over core NATS about what its Pebble log holds:
//
//	dss.<site>.sync.vectors   -> {"site":..., "projects": {project: vector}}
//	dss.<site>.sync.events    {"project","origin","after","limit"}
//	                          -> NDJSON: origin's events in project, seq > after
//
// and a site pulling from a peer compares the peer's vectors with its own
// once the peer's stream has nothing more to deliver; whatever is still
// missing then is fetched directly and folded through the same causal
// applier (Receiver) as everything else. Requests ride the same NATS
// connection, and the same credentials, as the stream.

// Anti-entropy subjects.
func vectorsSubject(site string) string { return "dss." + site + ".sync.vectors" }
func eventsSubject(site string) string  { return "dss." + site + ".sync.events" }

// HeaderError carries a responder's error; the body is then empty.
const HeaderError = "Dss-Error"

// MaxFetch is the most events one events request returns.
const MaxFetch = 1000

// Vectors is the answer to a vectors request.
type Vectors struct {
	Site     string                   `json:"site"`
	Projects map[string]events.Vector `json:"projects"`
}

// FetchRequest asks for origin's events in project with seq > After.
type FetchRequest struct {
	Project string `json:"project"`
	Origin  string `json:"origin"`
	After   uint64 `json:"after"`
	Limit   int    `json:"limit"`
}

// LocalVectors returns the version vector of every project store holds.
func LocalVectors(ctx context.Context, store projections.Storage) (map[string]events.Vector, error) {
	ps, err := store.Projects(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]events.Vector, len(ps))
	for _, p := range ps {
		err := store.View(ctx, p, func(r projections.Reader) error {
			v, err := r.Vector()
			out[p] = v
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("vector of %s: %w", p, err)
		}
	}
	return out, nil
}

// Responder answers other sites' anti-entropy requests about this site's
// log. Serve starts it.
type Responder struct {
	site   string
	nc     *nats.Conn
	store  projections.Storage
	logger *slog.Logger
	subs   []*nats.Subscription
}

// Serve answers anti-entropy requests for site on nc until Close. When nc
// is connected, the server has the subscriptions by the time it returns.
func Serve(nc *nats.Conn, site string, store projections.Storage, logger *slog.Logger) (*Responder, error) {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Responder{site: site, nc: nc, store: store, logger: logger}
	for subj, h := range map[string]nats.MsgHandler{vectorsSubject(site): r.vectors, eventsSubject(site): r.events} {
		// A queue group: several processes of one site (never more than one
		// today) would share the load rather than answer twice.
		sub, err := nc.QueueSubscribe(subj, "dss-sync", h)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("anti-entropy responder: %w", err)
		}
		r.subs = append(r.subs, sub)
	}
	// A subscription reaches the server asynchronously: flush, so that
	// once Serve returns a peer's request finds the responder rather than
	// "no responders". A connection that is down keeps the subscriptions
	// and sends them when it is back, so that is no reason to fail.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		logger.Warn("anti-entropy responder: subscriptions not yet confirmed by the server", "site", site, "err", err)
	}
	return r, nil
}

// Close stops answering.
func (r *Responder) Close() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
	r.subs = nil
}

func (r *Responder) fail(m *nats.Msg, err error) {
	r.logger.Warn("anti-entropy request refused", "subject", m.Subject, "err", err)
	reply := nats.NewMsg(m.Reply)
	reply.Header.Set(HeaderError, err.Error())
	_ = m.RespondMsg(reply)
}

func (r *Responder) vectors(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	vs, err := LocalVectors(context.Background(), r.store)
	if err != nil {
		r.fail(m, err)
		return
	}
	b, err := json.Marshal(Vectors{Site: r.site, Projects: vs})
	if err != nil {
		r.fail(m, err)
		return
	}
	if max := r.nc.MaxPayload(); int64(len(b)) > max {
		r.fail(m, fmt.Errorf("vectors of %d projects take %d bytes, more than the %d a message may carry", len(vs), len(b), max))
		return
	}
	_ = m.Respond(b)
}

// ParseFetchRequest reads a FetchRequest strictly: known fields only, valid
// ids, a limit of 1 to MaxFetch.
func ParseFetchRequest(b []byte) (FetchRequest, error) {
	var req FetchRequest
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		return req, fmt.Errorf("fetch request: %w", err)
	}
	if d.More() {
		return req, errors.New("fetch request: data after the object")
	}
	switch {
	case !events.ValidProject(req.Project):
		return req, fmt.Errorf("fetch request: invalid project id %q", req.Project)
	case !events.ValidSite(req.Origin):
		return req, fmt.Errorf("fetch request: invalid site id %q", req.Origin)
	case req.Limit < 1 || req.Limit > MaxFetch:
		return req, fmt.Errorf("fetch request: limit must be 1 to %d, got %d", MaxFetch, req.Limit)
	}
	return req, nil
}

func (r *Responder) events(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	req, err := ParseFetchRequest(m.Data)
	if err != nil {
		r.fail(m, err)
		return
	}
	var evs []*events.Event
	err = r.store.View(context.Background(), req.Project, func(rd projections.Reader) error {
		evs, err = rd.SiteEvents(req.Origin, req.After, req.Limit)
		return err
	})
	if err != nil {
		r.fail(m, err)
		return
	}
	// Fill the reply up to half what a message may carry; the first event
	// always goes (one event fits: the stream carried it).
	budget := int(r.nc.MaxPayload() / 2)
	var buf bytes.Buffer
	for i, e := range evs {
		b := e.AppendJSON(nil)
		if i > 0 && buf.Len()+len(b)+1 > budget {
			break
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	_ = m.Respond(buf.Bytes())
}

// Fetcher asks a site, over a NATS connection, for what it holds.
type Fetcher struct {
	Conn *nats.Conn
	Site string // the site asked
}

// Vectors asks for the site's version vectors.
func (f Fetcher) Vectors(ctx context.Context) (map[string]events.Vector, error) {
	msg, err := f.request(ctx, vectorsSubject(f.Site), nil)
	if err != nil {
		return nil, err
	}
	var vs Vectors
	if err := json.Unmarshal(msg.Data, &vs); err != nil {
		return nil, fmt.Errorf("vectors of site %s: %w", f.Site, err)
	}
	if vs.Site != f.Site {
		return nil, fmt.Errorf("vectors of site %s answered by site %q", f.Site, vs.Site)
	}
	for p, v := range vs.Projects {
		if !events.ValidProject(p) {
			return nil, fmt.Errorf("vectors of site %s: invalid project id %q", f.Site, p)
		}
		for s := range v {
			if !events.ValidSite(s) {
				return nil, fmt.Errorf("vectors of site %s: invalid site id %q", f.Site, s)
			}
		}
	}
	return vs.Projects, nil
}

// Events asks for origin's events in project with seq > after (at most
// MaxFetch, fewer when they would not fit a message). Each is parsed
// strictly (DecodeEvents); an empty answer means none.
func (f Fetcher) Events(ctx context.Context, project, origin string, after uint64) ([]*events.Event, error) {
	req, _ := json.Marshal(FetchRequest{Project: project, Origin: origin, After: after, Limit: MaxFetch})
	msg, err := f.request(ctx, eventsSubject(f.Site), req)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(msg.Data)) == 0 {
		return nil, nil
	}
	evs, err := DecodeEvents(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("events from site %s: %w", f.Site, err)
	}
	for i, e := range evs {
		if e.Project != project || e.Site != origin || e.Seq != after+uint64(i)+1 {
			return nil, fmt.Errorf("events from site %s: asked for %s's events of %s after seq %d, got %s seq %d of %s",
				f.Site, origin, project, after, e.Site, e.Seq, e.Project)
		}
	}
	return evs, nil
}

func (f Fetcher) request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	msg, err := f.Conn.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, fmt.Errorf("ask site %s (%s): %w", f.Site, subject, err)
	}
	if e := msg.Header.Get(HeaderError); e != "" {
		return nil, fmt.Errorf("site %s refused %s: %s", f.Site, subject, e)
	}
	return msg, nil
}

// Repair fetches from f what target names and store lacks, and folds it
// through rcv, project by project: the anti-entropy pass. target is what
// f's site is known to hold (see Settled). It returns how many events were
// applied or held (those waiting for events of another origin, fetched
// later in the same pass or from another peer).
func Repair(ctx context.Context, f Fetcher, target map[string]events.Vector, store projections.Storage, rcv Receiver, onReceipt func(string, *projections.Receipt)) (int, error) {
	ours, err := LocalVectors(ctx, store)
	if err != nil {
		return 0, err
	}
	theirs := target
	n := 0
	for _, p := range slices.Sorted(maps.Keys(theirs)) {
		for _, gap := range ours[p].Missing(theirs[p]) {
			for after := gap.From - 1; after < gap.To; {
				evs, err := f.Events(ctx, p, gap.Site, after)
				if err != nil {
					return n, err
				}
				if len(evs) == 0 {
					break // the vector said more; the log no longer has it: next pass
				}
				rc, err := rcv.Receive(ctx, p, evs)
				if err != nil {
					return n, fmt.Errorf("apply %d events of %s from site %s: %w", len(evs), p, f.Site, err)
				}
				if onReceipt != nil {
					onReceipt(p, rc)
				}
				n += len(rc.Applied) + len(rc.Held)
				after = evs[len(evs)-1].Seq
			}
		}
	}
	return n, nil
}

// Settled returns, per project and origin, the lower of two answers of one
// site taken an interval apart: what it held at both times. A site's log
// runs ahead of its stream by its outbox's lag; an event missing here that
// the site already held a whole interval ago, while its stream has nothing
// left to deliver, is one the stream lost, not one on its way.
func Settled(before, now map[string]events.Vector) map[string]events.Vector {
	out := map[string]events.Vector{}
	for p, v := range now {
		b, ok := before[p]
		if !ok {
			continue
		}
		m := events.Vector{}
		for site, n := range v {
			if bn := b[site]; bn > 0 {
				m[site] = min(n, bn)
			}
		}
		out[p] = m
	}
	return out
}

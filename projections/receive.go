package projections

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/oklog/ulid/v2"
)

// Skew flags a receiver raises about an event it receives. Unlike conflict
// flags they depend on the receiver's clock, so they are reported (receipts,
// analyses, metrics, logs), never stored in the projection. None changes any
// order or winner.
const (
	// FlagAheadOfReceiver: the event's wall time is ahead of the receiver's
	// clock by more than the tolerance.
	FlagAheadOfReceiver = "ahead-of-receiver"
	// FlagClockDrift: the origin site's clock is more than the drift limit
	// ahead of the receiver's.
	FlagClockDrift = "clock-drift"
)

// Default skew limits.
const (
	DefaultAheadTolerance = 5 * time.Second
	DefaultDriftLimit     = time.Hour
	// MaxPending bounds a project's causal buffer: beyond it, Receive
	// refuses the batch (ETOOLARGE) so that the transport redelivers later.
	MaxPending = 100_000
)

// SkewFlag is evidence that a site's wall clock is off. Events are never
// reordered by it.
type SkewFlag struct {
	Flag  string        `json:"flag"`
	Event ulid.ULID     `json:"event"`
	Site  string        `json:"site"`
	By    time.Duration `json:"by"` // how far the wall time is off
}

func (f SkewFlag) String() string {
	return fmt.Sprintf("%s: event %s of site %s off by %s", f.Flag, f.Event, f.Site, f.By)
}

// Held is an event in the causal buffer and what it waits for.
type Held struct {
	Event      ulid.ULID `json:"event"`
	Site       string    `json:"site"`
	Seq        uint64    `json:"seq"`
	WaitingFor string    `json:"waitingFor"` // "parent <id>" or "<site> seq <n>"
}

// Refusal is an event Receive refused, and why.
type Refusal struct {
	Event  ulid.ULID `json:"event"`
	Site   string    `json:"site"`
	Reason string    `json:"reason"`
}

// Receipt says what Receive did with a batch.
type Receipt struct {
	Applied    []*events.Event `json:"-"`
	Duplicates int             `json:"duplicates"`
	Held       []Held          `json:"held"`
	Refused    []Refusal       `json:"refused"`
	Flags      []SkewFlag      `json:"flags"`
}

// PendingDep names what an event waits for: its parent (p/<id>) or its
// site's event with seq n (s/<site>/<n>).
func parentDep(id ulid.ULID) string { return "p/" + id.String() }

func seqDep(site string, seq uint64) string { return "s/" + site + "/" + strconv.FormatUint(seq, 10) }

// describeDep turns a dep key into words.
func describeDep(dep string) string {
	switch {
	case strings.HasPrefix(dep, "p/"):
		return "parent " + dep[2:]
	case strings.HasPrefix(dep, "s/"):
		parts := strings.SplitN(dep[2:], "/", 2)
		if len(parts) == 2 {
			return parts[0] + " seq " + parts[1]
		}
	}
	return dep
}

// missingDep returns the first thing e depends on that tx lacks: its site's
// previous event, then its parents ("" when it can be appended).
func missingDep(r Reader, e *events.Event, event func(ulid.ULID) (*events.Event, error)) (string, error) {
	head, err := r.Head(e.Site)
	if err != nil {
		return "", err
	}
	if e.Seq > head.Seq+1 {
		return seqDep(e.Site, head.Seq+1), nil
	}
	for _, p := range e.Parents {
		have, err := event(p)
		if err != nil {
			return "", err
		}
		if have == nil {
			return parentDep(p), nil
		}
	}
	return "", nil
}

// skewWatch keeps, per origin site, the largest lead of its wall clock over
// this site's clock seen in received events: the evidence behind drift flags
// and the sync status.
type skewWatch struct {
	mu   sync.Mutex
	lead map[string]time.Duration
}

// SiteSkew is what the site knows of another site's clock.
type SiteSkew struct {
	Site    string        `json:"site"`
	MaxLead time.Duration `json:"maxLead"` // largest lead over this site's clock seen
	Drift   bool          `json:"drift"`   // beyond the drift limit
}

// Skews returns, per origin site, the largest lead of its clock seen.
func (s *Site) Skews() []SiteSkew {
	s.skew.mu.Lock()
	defer s.skew.mu.Unlock()
	out := make([]SiteSkew, 0, len(s.skew.lead))
	for site, d := range s.skew.lead {
		out = append(out, SiteSkew{Site: site, MaxLead: d, Drift: d > s.driftLimit})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// receiverFlags checks an event made elsewhere against this site's clock.
func (s *Site) receiverFlags(e *events.Event, now time.Time, record bool) []SkewFlag {
	lead := e.Wall.Sub(now)
	var flags []SkewFlag
	if lead > s.aheadTolerance {
		flags = append(flags, SkewFlag{Flag: FlagAheadOfReceiver, Event: e.ID, Site: e.Site, By: lead})
	}
	if lead > s.driftLimit {
		flags = append(flags, SkewFlag{Flag: FlagClockDrift, Event: e.ID, Site: e.Site, By: lead})
	}
	if record && lead > 0 {
		s.skew.mu.Lock()
		if lead > s.skew.lead[e.Site] {
			s.skew.lead[e.Site] = lead
		}
		s.skew.mu.Unlock()
	}
	return flags
}

// ancestorFlag flags an event whose wall time is earlier than one of its
// parents' by more than SkewTolerance.
func ancestorFlag(e *events.Event, event func(ulid.ULID) (*events.Event, error)) (*SkewFlag, error) {
	var latest time.Time
	for _, p := range e.Parents {
		pe, err := event(p)
		if err != nil {
			return nil, err
		}
		if pe != nil && pe.Wall.After(latest) {
			latest = pe.Wall
		}
	}
	if d := latest.Sub(e.Wall); !latest.IsZero() && d > SkewTolerance {
		return &SkewFlag{Flag: FlagWallBeforeAncestor, Event: e.ID, Site: e.Site, By: d}, nil
	}
	return nil, nil
}

// Receive folds events made elsewhere (peers, imports) into project, in one
// transaction: the causal applier. Per event, in order:
//   - an event already in the log is a duplicate (idempotence);
//   - one that breaks the rules (shape, hash chain, fields) is refused and
//     reported; the others go on;
//   - one whose site's previous event or a parent is missing is held in the
//     durable causal buffer until that arrives, and reported;
//   - the rest are appended and folded; each wakes the held events that
//     waited for it.
//
// Wall clocks are checked and flagged, never used. It fails as a whole only
// for storage errors, or when the buffer would exceed MaxPending.
func (s *Site) Receive(ctx context.Context, project string, evs []*events.Event) (*Receipt, error) {
	if !events.ValidProject(project) {
		return nil, events.Errorf(events.EINVALID, "invalid project id %q", project)
	}
	var rc *Receipt
	now := s.now()
	err := s.store.Update(ctx, project, func(tx Tx) (err error) {
		rc, err = s.receive(tx, evs, now, true)
		return err
	})
	return rc, err
}

func (s *Site) receive(tx Tx, evs []*events.Event, now time.Time, record bool) (*Receipt, error) {
	rc := &Receipt{Held: []Held{}, Refused: []Refusal{}, Flags: []SkewFlag{}}
	f := newFolder(tx)
	queue := append([]*events.Event(nil), evs...)
	held := map[ulid.ULID]bool{}
	appliedNow := map[ulid.ULID]bool{} // an event both delivered and woken counts once
	// known memoizes the log's events this batch reads or appends (parents
	// are read for their presence and again for their wall time); absence
	// is not memoized, since an event may be appended later in the batch.
	known := map[ulid.ULID]*events.Event{}
	event := func(id ulid.ULID) (*events.Event, error) {
		if e, ok := known[id]; ok {
			return e, nil
		}
		e, err := tx.Event(id)
		if e != nil {
			known[id] = e
		}
		return e, err
	}
	// With an empty causal buffer, nothing can wake until this batch holds
	// something: the lookups for waiting events are skipped until then.
	pending, err := tx.PendingCount()
	if err != nil {
		return nil, err
	}
	mayWake := pending > 0
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		refuse := func(err error) {
			rc.Refused = append(rc.Refused, Refusal{Event: e.ID, Site: e.Site, Reason: err.Error()})
		}
		if e.Project != tx.Project() {
			refuse(fmt.Errorf("belongs to project %q, not %q", e.Project, tx.Project()))
			continue
		}
		if err := checkEventFields(e); err != nil {
			refuse(err)
			continue
		}
		have, err := event(e.ID)
		if err != nil {
			return nil, err
		}
		if have != nil {
			if !appliedNow[e.ID] {
				rc.Duplicates++
			}
			continue
		}
		dep, err := missingDep(tx, e, event)
		if err != nil {
			return nil, err
		}
		if dep != "" {
			if err := tx.HoldPending(e, dep); err != nil {
				return nil, err
			}
			mayWake = true
			if !held[e.ID] {
				held[e.ID] = true
				rc.Held = append(rc.Held, Held{Event: e.ID, Site: e.Site, Seq: e.Seq, WaitingFor: describeDep(dep)})
			}
			continue
		}
		flag, err := ancestorFlag(e, event)
		if err != nil {
			return nil, err
		}
		ok, err := f.fold(e, false, false)
		var chainErr *events.ChainError
		var gapErr *events.GapError
		switch {
		case errors.As(err, &chainErr) || errors.As(err, &gapErr) || events.ErrorCode(err) == events.EINVALID:
			refuse(err)
			continue
		case err != nil:
			return nil, err
		case !ok:
			rc.Duplicates++
			continue
		}
		rc.Applied = append(rc.Applied, e)
		appliedNow[e.ID] = true
		known[e.ID] = e
		if held[e.ID] { // held earlier in this batch, applied now
			rc.Held = removeHeld(rc.Held, e.ID)
		}
		if flag != nil {
			rc.Flags = append(rc.Flags, *flag)
		}
		if e.Site != s.id {
			rc.Flags = append(rc.Flags, s.receiverFlags(e, now, record)...)
		}
		if !mayWake {
			continue
		}
		for _, dep := range []string{parentDep(e.ID), seqDep(e.Site, e.Seq)} {
			woken, err := tx.TakePending(dep)
			if err != nil {
				return nil, err
			}
			queue = append(queue, woken...)
		}
	}
	if n, err := tx.PendingCount(); err != nil {
		return nil, err
	} else if n > MaxPending {
		return nil, events.Errorf(events.ETOOLARGE, "project %q: %d events wait for missing dependencies; the limit is %d", tx.Project(), n, MaxPending)
	}
	if err := f.settle(); err != nil {
		return nil, err
	}
	return rc, nil
}

func removeHeld(hs []Held, id ulid.ULID) []Held {
	out := hs[:0]
	for _, h := range hs {
		if h.Event != id {
			out = append(out, h)
		}
	}
	return out
}

// Pending lists the events a project holds in its causal buffer and what each
// waits for.
func (s *Site) Pending(ctx context.Context, project string) ([]Held, error) {
	out := []Held{}
	err := s.store.View(ctx, project, func(r Reader) error {
		return r.ScanPending(func(e *events.Event, dep string) error {
			out = append(out, Held{Event: e.ID, Site: e.Site, Seq: e.Seq, WaitingFor: describeDep(dep)})
			return nil
		})
	})
	return out, err
}

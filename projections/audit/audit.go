// Package audit writes and verifies audit trails: a project's events, as
// NDJSON or CSV, closed by a trailer that carries the SHA-256 of everything
// before it and the exporting site's ed25519 signature.
//
// What a verifier proves, offline: every event is intact (its hash matches its
// content); each site's events link into a hash chain (prevHash), gaplessly
// when the export is complete; events come in total order; nothing was added,
// removed, edited or reordered after export (the trailer's digest and
// signature). A filtered export (by time, actor, entity or type) says so in
// its trailer: gaps in a site's seq are then expected and reported, not
// breaks, but every pair of consecutive events of a site must still link.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/oklog/ulid/v2"
)

// Formats.
const (
	NDJSON = "ndjson"
	CSV    = "csv"
)

// Filter selects events. Zero fields select everything.
type Filter struct {
	From   time.Time   `json:"from,omitzero"` // wall time at or after
	To     time.Time   `json:"to,omitzero"`   // wall time before
	Actor  string      `json:"actor,omitempty"`
	Entity string      `json:"entity,omitempty"`
	Type   events.Type `json:"type,omitempty"`
}

// Empty reports whether the filter selects every event.
func (f Filter) Empty() bool { return f == Filter{} }

func (f Filter) match(e *events.Event) bool {
	return (f.From.IsZero() || !e.Wall.Before(f.From)) && (f.To.IsZero() || e.Wall.Before(f.To)) &&
		(f.Actor == "" || e.Actor == f.Actor) && (f.Entity == "" || e.Entity == f.Entity) && (f.Type == "" || e.Type == f.Type)
}

// Trailer closes an export. Digest is SHA-256 over every byte before the
// trailer line; Signature signs the trailer's canonical JSON without it.
type Trailer struct {
	Format        string            `json:"format"` // "dss-audit"
	FormatVersion int               `json:"formatVersion"`
	Project       string            `json:"project"`
	Site          string            `json:"site"`
	ExportedAt    string            `json:"exportedAt"`
	Filter        Filter            `json:"filter"`
	Complete      bool              `json:"complete"`
	Count         int               `json:"count"`
	Digest        string            `json:"sha256"`
	Signature     *events.Signature `json:"signature,omitempty"`
}

func (t *Trailer) signingBytes() ([]byte, error) {
	c := *t
	c.Signature = nil
	return events.SigningBytes(c)
}

// csvHeader is the CSV column order; the trailer row has "#dss-audit" in the
// first column and the trailer as JSON in the second.
var csvHeader = []string{"id", "project", "site", "seq", "lamport", "wall", "actor", "type", "entity", "path", "parents", "changes", "prevHash", "hash"}

const csvTrailerMark = "#dss-audit"

// Export writes project's events selected by f, in total order, from one
// consistent snapshot, then the signed trailer. It returns the trailer.
func Export(ctx context.Context, site *projections.Site, project string, f Filter, format string, key ed25519.PrivateKey, w io.Writer) (*Trailer, error) {
	if format == "" {
		format = NDJSON
	}
	if format != NDJSON && format != CSV {
		return nil, events.Errorf(events.EMALFORMED, "audit format must be ndjson or csv, not %q", format)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	var cw *csv.Writer
	if format == CSV {
		cw = csv.NewWriter(bw)
		if err := cw.Write(csvHeader); err != nil {
			return nil, err
		}
	}
	t := &Trailer{Format: "dss-audit", FormatVersion: 1, Project: project, Site: site.ID(),
		ExportedAt: site.Now().UTC().Format(events.WallFormat), Filter: f, Complete: f.Empty()}
	err := site.Snapshot(ctx, project, projections.Query{}, projections.Visitor{Event: func(e *events.Event) error {
		if !f.match(e) {
			return nil
		}
		t.Count++
		if cw != nil {
			return cw.Write(csvRow(e))
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		bw.Write(b)
		return bw.WriteByte('\n')
	}})
	if err != nil {
		return nil, err
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	t.Digest = hex.EncodeToString(h.Sum(nil))
	payload, err := t.signingBytes()
	if err != nil {
		return nil, err
	}
	t.Signature = events.Sign(payload, key)
	tb, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	if format == CSV {
		out := csv.NewWriter(w)
		out.Write([]string{csvTrailerMark, string(tb)})
		out.Flush()
		return t, out.Error()
	}
	_, err = fmt.Fprintf(w, "{%q:%s}\n", "dss-audit", tb)
	return t, err
}

func csvRow(e *events.Event) []string {
	parents := make([]string, len(e.Parents))
	for i, p := range e.Parents {
		parents[i] = p.String()
	}
	ch, _ := e.Changes.MarshalJSON()
	return []string{e.ID.String(), e.Project, e.Site, strconv.FormatUint(e.Seq, 10), strconv.FormatUint(e.Lamport, 10),
		e.Wall.UTC().Format(events.WallFormat), e.Actor, string(e.Type), e.Entity, e.Path, strings.Join(parents, " "),
		string(ch), e.PrevHash.String(), e.Hash.String()}
}

func fromCSV(row []string) (*events.Event, error) {
	if len(row) != len(csvHeader) {
		return nil, fmt.Errorf("%d columns, want %d", len(row), len(csvHeader))
	}
	parents := []string{}
	if row[10] != "" {
		parents = strings.Split(row[10], " ")
	}
	seq, err1 := strconv.ParseUint(row[3], 10, 64)
	lam, err2 := strconv.ParseUint(row[4], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	j := map[string]any{
		"id": row[0], "project": row[1], "site": row[2], "seq": seq, "lamport": lam, "wall": row[5], "actor": row[6],
		"type": row[7], "entity": row[8], "path": row[9], "parents": parents, "changes": json.RawMessage(row[11]),
		"prevHash": row[12], "hash": row[13],
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	return events.ParseJSON(b)
}

// Result is what Verify found.
type Result struct {
	Format   string   `json:"format"`
	Events   int      `json:"events"`
	Sites    int      `json:"sites"`
	Complete bool     `json:"complete"`
	Signer   string   `json:"signer"` // key id
	Notes    []string `json:"notes"`  // gaps in a filtered export, and the like
	// Problem is the first break found, naming its line; "" when valid.
	Problem string `json:"problem,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// Verifier checks events as they come, in the order they were exported: the
// part of verification shared with archive checks. Gaps in a site's seq are
// recorded: they are breaks in a complete export, expected in a filtered one.
type Verifier struct {
	last  map[[2]string]*events.Event
	prev  *events.Event
	Gaps  []Gap
	sites map[string]bool
}

// Gap is a run of a site's events missing before an event.
type Gap struct {
	Event    ulid.ULID
	Site     string
	From, To uint64
	Line     int
}

func (g Gap) String() string {
	return fmt.Sprintf("site %s: seq %d..%d missing before event %s", g.Site, g.From, g.To, g.Event)
}

// NewVerifier returns a verifier.
func NewVerifier() *Verifier {
	return &Verifier{last: map[[2]string]*events.Event{}, sites: map[string]bool{}}
}

// Check checks the next event, found on line (for reports).
func (v *Verifier) Check(e *events.Event, line int) error {
	if !e.VerifyHash() {
		return fmt.Errorf("event %s: its hash does not match its content", e.ID)
	}
	if v.prev != nil && v.prev.Position().Compare(e.Position()) >= 0 {
		return fmt.Errorf("event %s is out of order: it does not come after event %s in the total order", e.ID, v.prev.ID)
	}
	k := [2]string{e.Project, e.Site}
	last := v.last[k]
	var lastSeq uint64
	var lastHash events.Hash
	if last != nil {
		lastSeq, lastHash = last.Seq, last.Hash
	}
	switch {
	case e.Seq <= lastSeq:
		return fmt.Errorf("event %s: site %s seq %d again (had %d)", e.ID, e.Site, e.Seq, lastSeq)
	case e.Seq == lastSeq+1:
		if e.PrevHash != lastHash {
			return fmt.Errorf("event %s: prevHash does not match site %s's previous event (seq %d): the chain is broken", e.ID, e.Site, lastSeq)
		}
	default:
		v.Gaps = append(v.Gaps, Gap{Event: e.ID, Site: e.Site, From: lastSeq + 1, To: e.Seq - 1, Line: line})
	}
	v.last[k] = e
	v.prev = e
	v.sites[e.Site] = true
	return nil
}

// Sites returns how many sites' events were checked.
func (v *Verifier) Sites() int { return len(v.sites) }

// Verify reads an audit export (NDJSON or CSV, detected) and checks it,
// streaming. It fails only for read errors: a break in the export is the
// Result's Problem, naming the first bad line.
func Verify(r io.Reader) (*Result, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(1)
	res := &Result{Format: NDJSON, Notes: []string{}}
	if len(head) == 1 && head[0] != '{' {
		res.Format = CSV
	}
	fail := func(line int, format string, args ...any) (*Result, error) {
		res.Line, res.Problem = line, fmt.Sprintf(format, args...)
		return res, nil
	}
	h := sha256.New()
	v := NewVerifier()
	var trailer *Trailer
	trailerLine := 0
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		if trailer != nil {
			return fail(line, "data after the trailer")
		}
		var e *events.Event
		switch {
		case res.Format == NDJSON && bytes.HasPrefix(b, []byte(`{"dss-audit":`)):
			var wrap struct {
				T Trailer `json:"dss-audit"`
			}
			if err := json.Unmarshal(b, &wrap); err != nil {
				return fail(line, "the trailer cannot be read: %v", err)
			}
			trailer, trailerLine = &wrap.T, line
			continue
		case res.Format == NDJSON:
			if e, err = events.ParseJSON(bytes.TrimSpace(b)); err != nil {
				return fail(line, "%s", events.ErrorMessage(err))
			}
		default:
			row, err := csv.NewReader(bytes.NewReader(b)).Read()
			if err != nil {
				return fail(line, "not a CSV row: %v", err)
			}
			switch {
			case line == 1:
				if strings.Join(row, ",") != strings.Join(csvHeader, ",") {
					return fail(1, "the header is not the audit CSV header")
				}
				h.Write(b)
				continue
			case len(row) == 2 && row[0] == csvTrailerMark:
				trailer, trailerLine = &Trailer{}, line
				if err := json.Unmarshal([]byte(row[1]), trailer); err != nil {
					return fail(line, "the trailer cannot be read: %v", err)
				}
				continue
			}
			if e, err = fromCSV(row); err != nil {
				return fail(line, "%s", events.ErrorMessage(err))
			}
		}
		h.Write(b)
		if err := v.Check(e, line); err != nil {
			return fail(line, "%v", err)
		}
		res.Events++
	}
	if trailer == nil {
		return fail(0, "no trailer: the export is truncated, or not an audit export")
	}
	res.Complete, res.Sites = trailer.Complete, v.Sites()
	if trailer.Signature != nil {
		res.Signer = trailer.Signature.KeyID
	}
	for _, g := range v.Gaps {
		if trailer.Complete {
			return fail(g.Line, "%s: a complete export has no gaps", g)
		}
		res.Notes = append(res.Notes, g.String()+" (the export is filtered)")
	}
	if trailer.Format != "dss-audit" || trailer.FormatVersion != 1 {
		return fail(trailerLine, "not a dss-audit version 1 trailer")
	}
	if trailer.Count != res.Events {
		return fail(trailerLine, "the trailer counts %d events, the export holds %d: events were added or removed", trailer.Count, res.Events)
	}
	if hex.EncodeToString(h.Sum(nil)) != trailer.Digest {
		return fail(trailerLine, "the digest does not match: the export was edited after it was signed")
	}
	payload, err := trailer.signingBytes()
	if err != nil {
		return nil, err
	}
	if err := trailer.Signature.Verify(payload); err != nil {
		return fail(trailerLine, "trailer signature: %v", err)
	}
	return res, nil
}

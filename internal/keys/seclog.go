package keys

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// Kinds of security log records.
const (
	KindCreate      = "key.create"
	KindRotate      = "key.rotate"
	KindRevoke      = "key.revoke"
	KindAuthFailure = "auth.failure"
)

// MaxRecords is the most records Records returns at once.
const MaxRecords = 1000

const (
	headKey   = "~head"
	logPrefix = "~log/"
	usePrefix = "~use/"
)

func logKey(seq uint64) string { return fmt.Sprintf("%s%016x", logPrefix, seq) }

// Record is one entry of the security log. Seq counts from 1 without gaps;
// PrevHash is the previous record's Hash ("" for the first); Hash is the
// hex SHA-256 of Canonical. A record never holds a secret.
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Actor is the name of the key that did a key operation (SiteActor for
	// the site itself); empty for auth failures.
	Actor string `json:"actor,omitempty"`
	// KeyID and KeyName name the key operated on, or the key a failed
	// authentication presented (its id when the token has a key's shape,
	// its name when the id is known).
	KeyID   string `json:"keyId,omitempty"`
	KeyName string `json:"keyName,omitempty"`
	// NewKeyID is the successor a rotation minted.
	NewKeyID string `json:"newKeyId,omitempty"`
	// Remote is the host the request came from, when known.
	Remote string `json:"remote,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Count is how many failures an auth.failure record stands for: 1, or
	// more for a summary of failures over the record budget.
	Count    uint64 `json:"count,omitempty"`
	PrevHash string `json:"prevHash"`
	Hash     string `json:"hash"`
}

// Canonical returns the bytes a record's hash covers: a version tag, then
// every field but Hash in a fixed order, each as its length (uvarint) and
// its text; Seq and Count in decimal, Time in RFC 3339 with nanoseconds, UTC.
func (r *Record) Canonical() []byte {
	b := make([]byte, 0, 256)
	field := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	field("dss-sync security log v1")
	field(strconv.FormatUint(r.Seq, 10))
	field(r.Time.UTC().Format(time.RFC3339Nano))
	for _, s := range []string{r.Kind, r.Actor, r.KeyID, r.KeyName, r.NewKeyID, r.Remote, r.Reason} {
		field(s)
	}
	field(strconv.FormatUint(r.Count, 10))
	field(r.PrevHash)
	return b
}

// ComputeHash returns the hash the record should carry.
func (r *Record) ComputeHash() string {
	h := sha256.Sum256(r.Canonical())
	return hex.EncodeToString(h[:])
}

// ChainError is a break in the security log: the first record that does
// not follow from the ones before it.
type ChainError struct {
	Seq    uint64 // the record (or, for a missing one, the seq expected)
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("security log broken at record %d: %s", e.Seq, e.Reason)
}

// Verifier checks records one by one, in order, from the first.
type Verifier struct {
	n    uint64
	prev string
}

// Add checks the next record: its seq, its link to the one before and its
// own hash.
func (v *Verifier) Add(r *Record) error {
	switch {
	case r.Seq != v.n+1:
		return &ChainError{Seq: v.n + 1, Reason: fmt.Sprintf("found record %d instead (a record is missing or out of place)", r.Seq)}
	case r.PrevHash != v.prev:
		return &ChainError{Seq: r.Seq, Reason: "its prevHash is not the previous record's hash"}
	case r.ComputeHash() != r.Hash:
		return &ChainError{Seq: r.Seq, Reason: "its hash does not match its content (edited)"}
	}
	v.n, v.prev = r.Seq, r.Hash
	return nil
}

// Count is how many records have been checked.
func (v *Verifier) Count() uint64 { return v.n }

// Last is the hash of the last record checked.
func (v *Verifier) Last() string { return v.prev }

// logHead is the log's last record: stored under ~head in the batch of
// every append, so that appending needs no scan.
type logHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// loadHead reads the head. The caller holds logMu.
func (s *Store) loadHead() error {
	v, ok, err := s.b.Get(headKey)
	if err != nil {
		return fmt.Errorf("load security log head: %w", err)
	}
	s.head = logHead{}
	if ok {
		if err := json.Unmarshal(v, &s.head); err != nil {
			return fmt.Errorf("security log head: %w", err)
		}
	}
	return nil
}

// appendLog stamps rec (seq, time, hashes) and writes it with the new head
// and extra in one batch.
func (s *Store) appendLog(rec *Record, extra map[string][]byte) error {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	r := *rec
	r.Seq, r.PrevHash = s.head.Seq+1, s.head.Hash
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	r.Time = r.Time.UTC().Round(0)
	r.Hash = r.ComputeHash()
	rb, err := json.Marshal(&r)
	if err != nil {
		return err
	}
	head := logHead{Seq: r.Seq, Hash: r.Hash}
	hb, _ := json.Marshal(head)
	kv := map[string][]byte{logKey(r.Seq): rb, headKey: hb}
	maps.Copy(kv, extra)
	if err := s.b.SetMany(kv); err != nil {
		return fmt.Errorf("write security log: %w", err)
	}
	s.head = head
	*rec = r
	return nil
}

// Records returns up to limit records after seq after (0: from the first).
func (s *Store) Records(ctx context.Context, after uint64, limit int) ([]Record, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxRecords {
		limit = MaxRecords
	}
	s.logMu.Lock()
	last := s.head.Seq
	s.logMu.Unlock()
	out := []Record{}
	for seq := after + 1; seq <= last && len(out) < limit; seq++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, ok, err := s.b.Get(logKey(seq))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &ChainError{Seq: seq, Reason: "missing"}
		}
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, &ChainError{Seq: seq, Reason: "unreadable: " + err.Error()}
		}
		out = append(out, r)
	}
	return out, nil
}

// LastSeq returns the seq of the log's last record (0 when it is empty).
func (s *Store) LastSeq() (uint64, error) {
	if err := s.load(); err != nil {
		return 0, err
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.head.Seq, nil
}

// Verify walks the whole security log and returns how many records it
// holds, or a *ChainError naming the first record that breaks the chain:
// edited, missing, reordered, or a head that does not match the last
// record (records cut off the end).
func (s *Store) Verify(ctx context.Context) (uint64, error) {
	if err := s.load(); err != nil {
		return 0, err
	}
	var v Verifier
	err := s.b.Scan(logPrefix, func(key string, val []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var r Record
		if err := json.Unmarshal(val, &r); err != nil {
			return &ChainError{Seq: v.Count() + 1, Reason: "unreadable: " + err.Error()}
		}
		if key != logKey(r.Seq) {
			return &ChainError{Seq: v.Count() + 1, Reason: fmt.Sprintf("stored under %s but numbered %d", key, r.Seq)}
		}
		return v.Add(&r)
	})
	if err != nil && !errors.Is(err, events.StopScan) {
		return v.Count(), err
	}
	s.logMu.Lock()
	head := s.head
	s.logMu.Unlock()
	if head.Seq != v.Count() || head.Hash != v.Last() {
		return v.Count(), &ChainError{Seq: v.Count() + 1, Reason: fmt.Sprintf("the log ends at record %d but its head names record %d", v.Count(), head.Seq)}
	}
	return v.Count(), nil
}

// failureBudget is a token bucket for auth.failure records, and the count,
// by reason, of failures over it since the last summary.
type failureBudget struct {
	tokens      float64
	last        time.Time
	dropped     map[string]uint64
	lastSummary time.Time
}

// recordFailure writes an auth.failure record if the budget allows, and
// counts it for the next summary otherwise. Writing fsyncs, in the failed
// request's time: a flood of failures is slowed, and after the burst costs
// nothing but a counter. The budget bounds the log's growth under any
// flood to about FailureEvery⁻¹ + SummaryEvery⁻¹ records per second
// (defaults: 8,640 + 1,440 a day, some 3 MB).
func (s *Store) recordFailure(ctx context.Context, now time.Time, id, name, reason string) {
	s.failMu.Lock()
	f := &s.fail
	if !f.last.IsZero() {
		f.tokens += float64(now.Sub(f.last)) / float64(s.opts.FailureEvery)
	}
	f.tokens, f.last = min(f.tokens, float64(s.opts.FailureBurst)), now
	write := f.tokens >= 1
	if write {
		f.tokens--
	} else {
		f.drop(reason, 1)
	}
	s.failMu.Unlock()
	if !write {
		return
	}
	rec := &Record{Time: now, Kind: KindAuthFailure, KeyID: id, KeyName: name, Remote: remoteOf(ctx), Reason: reason, Count: 1}
	if err := s.appendLog(rec, nil); err != nil {
		s.opts.Logger.Error("security log: an auth failure could not be recorded; it is counted in the next summary", "err", err)
		s.failMu.Lock()
		s.fail.drop(reason, 1)
		s.failMu.Unlock()
	}
}

func (f *failureBudget) drop(reason string, n uint64) {
	if f.dropped == nil {
		f.dropped = map[string]uint64{}
	}
	f.dropped[reason] += n
}

// writeSummary records the failures over the budget as one record, when
// there are some and the last summary is SummaryEvery old (or force).
func (s *Store) writeSummary(force bool) error {
	now := s.now()
	s.failMu.Lock()
	f := &s.fail
	if len(f.dropped) == 0 || (!force && now.Sub(f.lastSummary) < s.opts.SummaryEvery) {
		s.failMu.Unlock()
		return nil
	}
	dropped := f.dropped
	f.dropped, f.lastSummary = nil, now
	s.failMu.Unlock()

	var total uint64
	var parts []string
	for _, reason := range slices.Sorted(maps.Keys(dropped)) {
		total += dropped[reason]
		parts = append(parts, fmt.Sprintf("%s %d", reason, dropped[reason]))
	}
	rec := &Record{Time: now, Kind: KindAuthFailure, Count: total,
		Reason: "over the record budget, not recorded one by one: " + strings.Join(parts, ", ")}
	if err := s.appendLog(rec, nil); err != nil {
		s.failMu.Lock()
		for r, n := range dropped {
			s.fail.drop(r, n)
		}
		s.failMu.Unlock()
		return err
	}
	return nil
}

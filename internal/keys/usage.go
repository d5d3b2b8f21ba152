package keys

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// usage is a key's last use and use count. Authenticate updates it in
// memory only; Flush writes the changed ones (Run does every FlushEvery,
// Close once more). A crash loses at most FlushEvery of updates; memory
// holds one entry per key.
type usage struct {
	LastUsedAt time.Time `json:"lastUsedAt"`
	UseCount   uint64    `json:"useCount"`
	dirty      bool
}

func (s *Store) used(id string, now time.Time) {
	s.useMu.Lock()
	u := s.use[id]
	if u == nil {
		u = &usage{}
		s.use[id] = u
	}
	u.UseCount++
	if now.After(u.LastUsedAt) {
		u.LastUsedAt = now.UTC().Round(0)
	}
	u.dirty = true
	s.useMu.Unlock()
}

func (s *Store) fillUsage(ks ...*Key) {
	s.useMu.Lock()
	defer s.useMu.Unlock()
	for _, k := range ks {
		if u := s.use[k.ID]; u != nil {
			k.LastUsedAt, k.UseCount = u.LastUsedAt, u.UseCount
		}
	}
}

// Flush writes the usage counters changed since the last flush, and the
// summary of auth failures over the record budget when one is due.
func (s *Store) Flush() error { return s.flush(false) }

func (s *Store) flush(final bool) error {
	if err := s.load(); err != nil {
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed && !final {
		return nil
	}
	s.useMu.Lock()
	kv := map[string][]byte{}
	var ids []string
	for id, u := range s.use {
		if !u.dirty {
			continue
		}
		b, err := json.Marshal(u)
		if err != nil {
			s.useMu.Unlock()
			return err
		}
		kv[usePrefix+id] = b
		ids = append(ids, id)
		u.dirty = false
	}
	s.useMu.Unlock()
	var errs []error
	if len(kv) > 0 {
		if err := s.b.SetMany(kv); err != nil {
			s.useMu.Lock()
			for _, id := range ids {
				s.use[id].dirty = true
			}
			s.useMu.Unlock()
			errs = append(errs, err)
		}
	}
	if err := s.writeSummary(final); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run flushes every FlushEvery until ctx ends, then flushes once more,
// writing any pending failure summary, and returns.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.flush(true)
		case <-t.C:
			if err := s.Flush(); err != nil {
				s.opts.Logger.Warn("API keys: usage counters not written; retrying", "err", err)
			}
		}
	}
}

// Close flushes what the store keeps in memory and stops its timers. The
// store must not be used after; closing it again does nothing.
func (s *Store) Close() error {
	s.flushMu.Lock()
	closed := s.closed
	s.closed = true
	s.flushMu.Unlock()
	if closed {
		return nil
	}
	err := s.flush(true)
	s.mu.Lock()
	for _, e := range s.ends {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
	s.mu.Unlock()
	return err
}

// ending is closed when a key stops working: at once when revoked, by a
// timer when it expires.
type ending struct {
	ch     chan struct{}
	closed bool
	timer  *time.Timer
	at     time.Time
}

func (e *ending) close() {
	if !e.closed {
		e.closed = true
		close(e.ch)
	}
}

// endFor brings a key's ending up to date with its record. The caller
// holds mu for writing.
func (s *Store) endFor(k *Key) {
	e := s.ends[k.ID]
	if e == nil {
		e = &ending{ch: make(chan struct{})}
		s.ends[k.ID] = e
	}
	if e.closed {
		return
	}
	now := s.now()
	if !k.live(now) {
		if e.timer != nil {
			e.timer.Stop()
		}
		e.close()
		return
	}
	if k.ExpiresAt.IsZero() || k.ExpiresAt.Equal(e.at) {
		return
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.at = k.ExpiresAt
	e.timer = time.AfterFunc(k.ExpiresAt.Sub(now), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur := s.byID[k.ID]; cur != nil && !cur.live(s.now()) {
			e.close()
		} else if cur != nil && cur.ExpiresAt.Equal(e.at) {
			// The injected clock lags the timer: look again shortly.
			e.timer.Reset(time.Second)
		}
	})
}

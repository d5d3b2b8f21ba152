package events

import (
	"fmt"

	"github.com/oklog/ulid/v2"
)

// GapError says that an event cannot be appended yet because something it
// depends on is missing: its site's chain stops before it (seqs Have+1 ..
// Want-1 are missing), or some of its parents are not in the log. It is not a
// fault of the event: it waits until what it needs arrives.
type GapError struct {
	Project, Site string
	Have, Want    uint64      // highest seq held; seq of the event that came
	Parents       []ulid.ULID // missing parents, when that is the gap
}

func (e *GapError) Error() string {
	if len(e.Parents) > 0 {
		return fmt.Sprintf("project %s: waiting for parent events %v", e.Project, e.Parents)
	}
	return fmt.Sprintf("site %s in project %s: have seq %d, event has seq %d: waiting for %d..%d",
		e.Site, e.Project, e.Have, e.Want, e.Have+1, e.Want-1)
}

// ChainError says that an event breaks its site's hash chain: its hash does
// not match its content, or its prevHash does not match the previous event, or
// another event already holds its seq (a fork). The event is refused.
type ChainError struct {
	Event  *Event
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("event %s (site %s seq %d): %s", e.Event.ID, e.Event.Site, e.Event.Seq, e.Reason)
}

type chainKey struct{ project, site string }

// Chains tracks the head of every (project, site) hash chain and checks
// events against them. It is how a log, an applier and an offline verifier
// all decide whether an event is the next honest link. Not safe for
// concurrent use.
type Chains struct {
	heads map[chainKey]Head
}

// NewChains returns an empty set of chains.
func NewChains() *Chains { return &Chains{heads: map[chainKey]Head{}} }

// Head returns the head of site's chain in project (zero when empty).
func (c *Chains) Head(project, site string) Head { return c.heads[chainKey{project, site}] }

// Set sets the head of site's chain in project.
func (c *Chains) Set(project, site string, h Head) { c.heads[chainKey{project, site}] = h }

// Check reports whether e is the next link of its chain: its hash matches its
// content, its seq is head+1 and its prevHash is the head's hash. It returns a
// *GapError when e comes too early, a *ChainError when e can never fit. Check
// does not advance the chain (see Advance).
func (c *Chains) Check(e *Event) error {
	if !e.VerifyHash() {
		return &ChainError{e, "hash does not match the event's content"}
	}
	h := c.Head(e.Project, e.Site)
	switch {
	case e.Seq > h.Seq+1:
		return &GapError{Project: e.Project, Site: e.Site, Have: h.Seq, Want: e.Seq}
	case e.Seq <= h.Seq:
		return &ChainError{e, fmt.Sprintf("seq %d is already taken (head is %d)", e.Seq, h.Seq)}
	case e.PrevHash != h.Hash:
		return &ChainError{e, fmt.Sprintf("prevHash %s does not match the hash %s of seq %d", e.PrevHash, h.Hash, h.Seq)}
	}
	return nil
}

// Advance makes e the head of its chain. Call it only after Check passed.
func (c *Chains) Advance(e *Event) {
	c.heads[chainKey{e.Project, e.Site}] = Head{Seq: e.Seq, Hash: e.Hash}
}

// Package events is the domain core of dss-sync: the event every change
// becomes, its canonical encoding and hash chain, Lamport clocks, version
// vectors, the Log contract and the domain error type.
//
// It imports nothing else of the project. Everything here is deterministic:
// the same events give the same bytes, hashes and orders on every site.
//
// An event is made once, by one site (Stamp), and never rewritten. Within a
// project each site numbers its events 1, 2, 3... (Seq) and chains them by
// hash (PrevHash, Hash), so that any edit, removal or reordering is detected
// (Chains). Events are ordered in total by (Lamport, Site, Seq) (Position),
// an order that extends causality because a new event's Lamport time exceeds
// that of everything its site had seen (Clock). Parents name the entity's
// heads the writer had seen, which is what lets a projection tell concurrent
// edits from sequential ones.
package events

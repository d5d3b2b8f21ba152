package events

import (
	"fmt"
	"sort"
)

// Vector is a version vector: for each site, the highest seq of that site's
// events in a project that this holder has, with every lower seq present too
// (logs keep each site's events gapless, so the highest seq says it all).
// Two holders with equal vectors hold the same set of events.
type Vector map[string]uint64

// Clone returns a copy of v.
func (v Vector) Clone() Vector {
	out := make(Vector, len(v))
	for k, n := range v {
		out[k] = n
	}
	return out
}

// Merge raises v to at least o, entry by entry.
func (v Vector) Merge(o Vector) {
	for k, n := range o {
		if n > v[k] {
			v[k] = n
		}
	}
}

// Covers reports whether v has every event o has.
func (v Vector) Covers(o Vector) bool {
	for k, n := range o {
		if v[k] < n {
			return false
		}
	}
	return true
}

// Equal reports whether v and o name the same events (missing entries count as 0).
func (v Vector) Equal(o Vector) bool { return v.Covers(o) && o.Covers(v) }

// Gap is a run of one site's events one holder lacks: seqs From..To inclusive.
type Gap struct {
	Site     string
	From, To uint64
}

// Missing returns what o has and v lacks, one Gap per site, sorted by site.
func (v Vector) Missing(o Vector) []Gap {
	var gaps []Gap
	for k, n := range o {
		if have := v[k]; have < n {
			gaps = append(gaps, Gap{Site: k, From: have + 1, To: n})
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].Site < gaps[j].Site })
	return gaps
}

// Total returns the number of events v names.
func (v Vector) Total() uint64 {
	var t uint64
	for _, n := range v {
		t += n
	}
	return t
}

// String renders v deterministically, e.g. "{lyon:3 paris:12}".
func (v Vector) String() string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := "{"
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s:%d", k, v[k])
	}
	return s + "}"
}

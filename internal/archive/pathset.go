package archive

import (
	"bytes"
	"sort"

	"github.com/oklog/ulid/v2"
)

// pathSet is the set of token paths of an input, built while it is read
// and queried once it is sealed. The paths live in one byte arena, not as
// strings in a map: a million paths cost their bytes and 8 bytes each,
// which keeps Check's memory within the limits' bounds for large inputs.
type pathSet struct {
	arena  []byte
	ends   []uint32 // end of path i in arena; it starts where i-1 ends
	order  []uint32 // path indexes sorted by path, once sealed
	ids    []idAt   // tokens' ids, to find two tokens claiming one
	sealed bool
}

type idAt struct {
	id   ulid.ULID
	path uint32
}

func (s *pathSet) add(path string) uint32 {
	s.arena = append(s.arena, path...)
	s.ends = append(s.ends, uint32(len(s.arena)))
	return uint32(len(s.ends) - 1)
}

// addID notes that token i carries id (a valid ULID string; others are
// refused before).
func (s *pathSet) addID(i uint32, id string) {
	if u, err := ulid.ParseStrict(id); err == nil {
		s.ids = append(s.ids, idAt{u, i})
	}
}

func (s *pathSet) at(i uint32) []byte {
	var from uint32
	if i > 0 {
		from = s.ends[i-1]
	}
	return s.arena[from:s.ends[i]]
}

// seal sorts the set and returns the paths present more than once, and the
// ids carried by more than one token (as [id, path, other path]).
func (s *pathSet) seal() (dupPaths []string, dupIDs [][3]string) {
	s.sealed = true
	s.order = make([]uint32, len(s.ends))
	for i := range s.order {
		s.order[i] = uint32(i)
	}
	sort.Slice(s.order, func(a, b int) bool { return bytes.Compare(s.at(s.order[a]), s.at(s.order[b])) < 0 })
	for k := 1; k < len(s.order); k++ {
		if bytes.Equal(s.at(s.order[k-1]), s.at(s.order[k])) {
			dupPaths = append(dupPaths, string(s.at(s.order[k])))
		}
	}
	sort.Slice(s.ids, func(a, b int) bool { return s.ids[a].id.Compare(s.ids[b].id) < 0 })
	for k := 1; k < len(s.ids); k++ {
		if s.ids[k-1].id == s.ids[k].id {
			dupIDs = append(dupIDs, [3]string{s.ids[k].id.String(), string(s.at(s.ids[k-1].path)), string(s.at(s.ids[k].path))})
		}
	}
	s.ids = nil
	return dupPaths, dupIDs
}

// has says whether path is in the sealed set.
func (s *pathSet) has(path string) bool {
	k := sort.Search(len(s.order), func(k int) bool { return string(s.at(s.order[k])) >= path })
	return k < len(s.order) && string(s.at(s.order[k])) == path
}

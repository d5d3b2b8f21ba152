package pebble

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/dss-sync/dss-sync/events"
)

// The store's key space. The first byte names the table; project ids, site
// ids and entity ids never contain 0x00, which separates them from what
// follows. Integers are 8-byte big-endian so keys sort numerically. A
// position suffix is lamport(8) site 0x00 seq(8): byte order is the total
// order (Lamport, Site, Seq).
//
//	L project 0x00 position             -> event (events.Event.Marshal)
//	I project 0x00 id(16)               -> position
//	S project 0x00 site 0x00 seq(8)     -> hash(32) position
//	N project 0x00 entity 0x00 position -> event (the same bytes as L): an entity's history is one range scan
//	C commit(8)                         -> project 0x00 n position... (events commit..commit+n-1)
//	V project 0x00 gen(8) projection-key -> projection value, in the project's generation gen
//	M "gen" 0x00 project                -> the project's current projection generation (8 bytes)
//	P project                           -> (empty): the project has a log
//	W project 0x00 dep 0x00 id(16)      -> an event held until dep arrives (the causal buffer)
//	W project 0x00 0x00                 -> how many events are held (8 bytes)
//	B bucket 0x00 key                   -> subsystem data (API keys, jobs)
//	M name                              -> store metadata
const (
	tLog      = 'L'
	tID       = 'I'
	tSite     = 'S'
	tEntity   = 'N'
	tCommit   = 'C'
	tView     = 'V'
	tProject  = 'P'
	tPending  = 'W'
	tBucket   = 'B'
	tMetadata = 'M'
)

func prefix(table byte, parts ...string) []byte {
	k := []byte{table}
	for _, p := range parts {
		k = append(k, p...)
		k = append(k, 0)
	}
	return k
}

func appendPos(k []byte, p events.Position) []byte {
	k = binary.BigEndian.AppendUint64(k, p.Lamport)
	k = append(k, p.Site...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, p.Seq)
}

var errBadKey = errors.New("pebble: malformed position in key")

func parsePos(b []byte) (events.Position, error) {
	if len(b) < 8+1+8 {
		return events.Position{}, errBadKey
	}
	i := bytes.IndexByte(b[8:], 0)
	if i < 0 || len(b) != 8+i+1+8 {
		return events.Position{}, errBadKey
	}
	return events.Position{
		Lamport: binary.BigEndian.Uint64(b),
		Site:    string(b[8 : 8+i]),
		Seq:     binary.BigEndian.Uint64(b[8+i+1:]),
	}, nil
}

func logKey(project string, p events.Position) []byte {
	return appendPos(prefix(tLog, project), p)
}

func idKey(project string, id [16]byte) []byte { return append(prefix(tID, project), id[:]...) }

func siteKey(project, site string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix(tSite, project, site), seq)
}

func entityIndexKey(project, entity string, p events.Position) []byte {
	return appendPos(prefix(tEntity, project, entity), p)
}

func commitKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tCommit}, seq) }

func viewPrefix(project string, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix(tView, project), gen)
}

func viewKey(project string, gen uint64, k []byte) []byte {
	return append(viewPrefix(project, gen), k...)
}

func genKey(project string) []byte { return append([]byte{tMetadata}, "gen\x00"+project...) }

func projectKey(project string) []byte { return append([]byte{tProject}, project...) }

func pendingPrefix(project, dep string) []byte { return prefix(tPending, project, dep) }

func pendingCountKey(project string) []byte { return append(prefix(tPending, project), 0) }

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// encodeCommit encodes a commit record: the project and the positions of
// the transaction's events, in commit order.
func encodeCommit(project string, evs []*events.Event) []byte {
	b := append([]byte(project), 0)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, e := range evs {
		pos := appendPos(nil, e.Position())
		b = binary.AppendUvarint(b, uint64(len(pos)))
		b = append(b, pos...)
	}
	return b
}

// decodeCommit returns a commit record's project and positions.
func decodeCommit(v []byte) (string, [][]byte, error) {
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return "", nil, errBadKey
	}
	project, rest := string(v[:i]), v[i+1:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return "", nil, errBadKey
	}
	rest = rest[k:]
	out := make([][]byte, 0, n)
	for j := uint64(0); j < n; j++ {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return "", nil, errBadKey
		}
		out = append(out, rest[k:k+int(l)])
		rest = rest[k+int(l):]
	}
	if len(rest) != 0 {
		return "", nil, errBadKey
	}
	return project, out, nil
}

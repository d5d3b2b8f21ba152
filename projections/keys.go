package projections

import "github.com/dss-sync/dss-sync/events"

// The projection's key space within a project. Every key starts with one
// letter naming its table; paths never contain 0x00 (ValidatePath refuses
// control characters), so 0x00 separates a path from what follows it and a
// prefix scan on "path\x00" matches that path only.
//
//	e <kind> <entity id>                      -> entity state (Entity, JSON)
//	p <kind> <path> 0x00 <entity id>          -> claim: a live entity holds path (value: Ref of its path write)
//	r <path> 0x00 <kind> <entity id>          -> reference: a live entity's winning value names token path
//	c <subject>                               -> open conflict (Conflict, JSON)
//	i <kind> <entity id> 0x00 <subject>       -> the conflict <subject> involves the entity
//	m                                         -> project counters (Counts, JSON)
const (
	tableEntity   = 'e'
	tableClaim    = 'p'
	tableRef      = 'r'
	tableConflict = 'c'
	tableInvolves = 'i'
	tableMeta     = 'm'
)

// kindByte is the one-byte code of an entity kind in keys.
func kindByte(kind string) byte {
	switch kind {
	case events.KindToken:
		return 't'
	case events.KindComponent:
		return 'c'
	case events.KindProject:
		return 'P'
	}
	return '?'
}

func kindOf(b byte) string {
	switch b {
	case 't':
		return events.KindToken
	case 'c':
		return events.KindComponent
	case 'P':
		return events.KindProject
	}
	return ""
}

func entityKey(kind, id string) []byte {
	return append([]byte{tableEntity, kindByte(kind)}, id...)
}

func claimPrefix(kind, path string) []byte {
	k := append([]byte{tableClaim, kindByte(kind)}, path...)
	return append(k, 0)
}

func claimKindPrefix(kind string) []byte { return []byte{tableClaim, kindByte(kind)} }

func claimKey(kind, path, id string) []byte { return append(claimPrefix(kind, path), id...) }

func refPrefix(path string) []byte {
	k := append([]byte{tableRef}, path...)
	return append(k, 0)
}

func refKey(path, kind, id string) []byte {
	return append(append(refPrefix(path), kindByte(kind)), id...)
}

func conflictKey(subject string) []byte { return append([]byte{tableConflict}, subject...) }

func involvesPrefix(kind, id string) []byte {
	k := append([]byte{tableInvolves, kindByte(kind)}, id...)
	return append(k, 0)
}

func involvesKey(kind, id, subject string) []byte {
	return append(involvesPrefix(kind, id), subject...)
}

var metaKey = []byte{tableMeta}

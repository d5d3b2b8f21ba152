package projections

import "github.com/dss-sync/dss-sync/events"

// The projection's key space within a project. Every key starts with one
// letter naming its table. Indexes are posting lists under one key each, so
// that the write path does point reads (which Pebble's bloom filters make
// cheap) instead of opening an iterator per lookup.
//
//	e <kind> <entity id>   -> entity state (Entity, binary)
//	p <kind> <path>        -> claims: the live entities holding path, winner last
//	r <path>               -> references: "kind:id" of the live entities naming token path
//	c <subject>            -> open conflict (Conflict, JSON)
//	i <kind> <entity id>   -> subjects of the open conflicts involving the entity
//	m                      -> project counters (Counts, JSON)
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

func entityKey(kind, id string) []byte {
	return append([]byte{tableEntity, kindByte(kind)}, id...)
}

func claimKey(kind, path string) []byte { return append([]byte{tableClaim, kindByte(kind)}, path...) }

func claimKindPrefix(kind string) []byte { return []byte{tableClaim, kindByte(kind)} }

func refKey(path string) []byte { return append([]byte{tableRef}, path...) }

func conflictKey(subject string) []byte { return append([]byte{tableConflict}, subject...) }

func involvesKey(kind, id string) []byte {
	return append([]byte{tableInvolves, kindByte(kind)}, id...)
}

var metaKey = []byte{tableMeta}

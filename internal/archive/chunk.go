package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
)

// An import chunk is the payload of one message of an import job: a run of
// records in the order Records yielded them, in a compact binary layout
// (the job stream is internal to a site, and a 10,000-token import is 5
// such messages, not 20,000):
//
//	chunk  = "DSC1" record* sha256(everything before it)
//	record = 'E' uvarint(len) event        (events.Marshal: canonical bytes and hash)
//	       | 'I' str(kind) str(path) str(id) str(rev) uvarint(n) (str(field) str(value))*
//	str    = uvarint(len) bytes
//
// Fields are written in name order with canonical values. The trailing
// SHA-256 makes any damage to a stored chunk an error, not other records.
var chunkMagic = []byte("DSC1")

// Size is roughly how many bytes r takes in a chunk (or in memory): what a
// producer bounds its chunks by.
func (r Record) Size() int {
	if r.Event != nil {
		return eventSize(r.Event)
	}
	return itemSize(r.Item)
}

// EncodeRecords writes records as an import chunk.
func EncodeRecords(recs []Record) ([]byte, error) {
	b := append(make([]byte, 0, 256*len(recs)+len(chunkMagic)), chunkMagic...)
	for _, r := range recs {
		switch {
		case r.Event != nil:
			ev := r.Event.Marshal()
			b = append(b, 'E')
			b = binary.AppendUvarint(b, uint64(len(ev)))
			b = append(b, ev...)
		case r.Item != nil:
			it := r.Item
			b = append(b, 'I')
			for _, s := range []string{it.Kind, it.Path, it.ID, it.Rev} {
				b = appendChunkString(b, s)
			}
			names := make([]string, 0, len(it.Fields))
			for k := range it.Fields {
				names = append(names, k)
			}
			sort.Strings(names)
			b = binary.AppendUvarint(b, uint64(len(names)))
			for _, k := range names {
				b = appendChunkString(b, k)
				b = binary.AppendUvarint(b, uint64(len(it.Fields[k])))
				b = append(b, it.Fields[k]...)
			}
		default:
			return nil, errors.New("import record: neither an event nor an item")
		}
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...), nil
}

func appendChunkString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeRecords reads an import chunk. Chunks come from this site's own job
// stream, but are checked as strictly as any input: an event's hash and
// rules (events.Unmarshal, Validate), an item's fields and path by the same
// rules as a write.
func DecodeRecords(b []byte) ([]Record, error) {
	if !bytes.HasPrefix(b, chunkMagic) {
		return nil, errors.New("import chunk: not a chunk of this dss-sync version (no DSC1 header)")
	}
	if len(b) < len(chunkMagic)+sha256.Size {
		return nil, errors.New("import chunk: truncated")
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sha256.Sum256(body) != [sha256.Size]byte(sum) {
		return nil, errors.New("import chunk: checksum does not match: the chunk was damaged")
	}
	d := chunkReader{b: body[len(chunkMagic):]}
	var out []Record
	for len(d.b) > 0 && d.err == nil {
		switch tag := d.b[0]; tag {
		case 'E':
			d.b = d.b[1:]
			raw := d.bytes()
			if d.err != nil {
				break
			}
			e, err := events.Unmarshal(raw)
			if err == nil {
				err = e.Validate()
			}
			if err != nil {
				return nil, fmt.Errorf("import chunk, record %d: %w", len(out)+1, err)
			}
			out = append(out, Record{Event: e})
		case 'I':
			d.b = d.b[1:]
			it, err := d.item()
			if d.err != nil {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("import chunk, record %d: %w", len(out)+1, err)
			}
			out = append(out, Record{Item: it})
		default:
			return nil, fmt.Errorf("import chunk, record %d: unknown tag %q", len(out)+1, tag)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("import chunk, record %d: %w", len(out)+1, d.err)
	}
	return out, nil
}

var errTruncatedChunk = errors.New("truncated")

// chunkReader reads a chunk's primitives; the first failure sticks in err.
type chunkReader struct {
	b   []byte
	err error
}

func (d *chunkReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errTruncatedChunk, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *chunkReader) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = errTruncatedChunk, nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *chunkReader) str() string { return string(d.bytes()) }

// item reads an item's body and checks it as a write's data would be.
func (d *chunkReader) item() (*projections.Item, error) {
	it := &projections.Item{Kind: d.str(), Path: d.str(), ID: d.str(), Rev: d.str()}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = errTruncatedChunk, nil
	}
	obj := []byte{'{'}
	for i := uint64(0); i < n && d.err == nil; i++ {
		if i > 0 {
			obj = append(obj, ',')
		}
		name := d.bytes()
		if !utf8.Valid(name) {
			return nil, errors.New("a field name is not UTF-8")
		}
		obj = append(append(obj, events.JSONString(string(name))...), ':')
		obj = append(obj, d.bytes()...)
	}
	if d.err != nil {
		return nil, d.err
	}
	fields, err := projections.ParseItemData(it.Kind, append(obj, '}'))
	if err != nil {
		return nil, err
	}
	if err := projections.CheckItemPath(it.Kind, it.Path); err != nil {
		return nil, err
	}
	if err := checkIdentity(it.ID, it.Rev); err != nil {
		return nil, err
	}
	it.Fields = fields
	return it, nil
}

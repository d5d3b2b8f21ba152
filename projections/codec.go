package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The projection's values are encoded in a compact binary form: it is on
// the hot path of every write (read, change, write back an entity), where
// JSON cost more than the rest of the fold. The encoding is deterministic,
// so equal states are equal bytes, which is what convergence is checked on.
// Integers are uvarints, strings and values are length-prefixed.

const entityCodecVersion = 1

var errCodec = errors.New("projections: malformed stored value")

type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(s []byte)   { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *enc) ref(r Ref) {
	e.b = append(e.b, r.ID[:]...)
	e.uvarint(r.Lamport)
	e.str(r.Site)
	e.uvarint(r.Seq)
	e.varint(r.Wall)
	e.str(r.Actor)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err, d.b = errCodec, nil }

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

// count reads a length and checks it against what is left (each item takes
// at least min bytes), so a corrupt count cannot make a huge allocation.
func (d *dec) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) ref() Ref {
	var r Ref
	if len(d.b) < 16 {
		d.fail()
		return r
	}
	copy(r.ID[:], d.b)
	d.b = d.b[16:]
	r.Lamport = d.uvarint()
	r.Site = d.str()
	r.Seq = d.uvarint()
	r.Wall = d.varint()
	r.Actor = d.str()
	return r
}

func encodeEntity(en *Entity) []byte {
	e := enc{b: make([]byte, 0, 256)}
	e.b = append(e.b, entityCodecVersion)
	e.str(en.ID)
	e.str(en.Kind)
	e.uvarint(uint64(len(en.Heads)))
	for _, h := range en.Heads {
		e.ref(h)
	}
	e.uvarint(uint64(len(en.Fields)))
	for _, f := range en.Fields {
		e.str(f.Name)
		e.uvarint(uint64(len(f.Writers)))
		for _, w := range f.Writers {
			e.ref(w.Ref)
			e.bytes(w.Value)
		}
	}
	return e.b
}

func decodeEntity(b []byte) (*Entity, error) {
	if len(b) == 0 || b[0] != entityCodecVersion {
		return nil, fmt.Errorf("%w: entity codec version", errCodec)
	}
	d := dec{b: b[1:]}
	en := &Entity{ID: d.str(), Kind: d.str()}
	en.Heads = make([]Ref, d.count(20))
	for i := range en.Heads {
		en.Heads[i] = d.ref()
	}
	en.Fields = make([]Field, d.count(2))
	for i := range en.Fields {
		f := &en.Fields[i]
		f.Name = d.str()
		f.Writers = make([]Write, d.count(21))
		for j := range f.Writers {
			f.Writers[j].Ref = d.ref()
			f.Writers[j].Value = d.bytes()
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: entity %q", errCodec, en.ID)
	}
	return en, nil
}

// claim is a live entity holding a path.
type claim struct {
	id  string
	ref Ref // the event that wrote the entity's winning path
}

func encodeClaims(cl []claim) []byte {
	e := enc{}
	e.uvarint(uint64(len(cl)))
	for _, c := range cl {
		e.str(c.id)
		e.ref(c.ref)
	}
	return e.b
}

func decodeClaims(b []byte) ([]claim, error) {
	d := dec{b: b}
	out := make([]claim, d.count(21))
	for i := range out {
		out[i].id = d.str()
		out[i].ref = d.ref()
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: claims", errCodec)
	}
	return out, nil
}

// encodeStrings encodes a sorted list of strings (references, subjects).
func encodeStrings(ss []string) []byte {
	e := enc{}
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
	return e.b
}

func decodeStrings(b []byte) ([]string, error) {
	d := dec{b: b}
	out := make([]string, d.count(1))
	for i := range out {
		out[i] = d.str()
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: list", errCodec)
	}
	return out, nil
}

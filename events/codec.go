package events

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// The canonical encoding, version 1. It is the input of the event hash and
// the form events are stored in. Integers are unsigned varints (Go's
// encoding/binary uvarint), wall time a signed varint of Unix milliseconds,
// strings and values a uvarint length followed by their bytes:
//
//	"DE" 0x01                      magic and version
//	id                             16 bytes
//	project site                   strings
//	seq lamport                    uvarints
//	wall                           varint, Unix ms
//	actor type entity path         strings
//	nparents, then 16 bytes each   sorted ascending
//	nchanges, then field value     sorted by field; value is canonical JSON
//	prevHash                       32 bytes
//
// An encoded event as stored is the canonical bytes followed by the 32-byte
// hash of those bytes.
const (
	codecMagic0  = 'D'
	codecMagic1  = 'E'
	codecVersion = 1
)

var errTruncated = errors.New("truncated event encoding")

// AppendCanonical appends e's canonical encoding (everything but Hash) to dst.
func (e *Event) AppendCanonical(dst []byte) []byte {
	dst = append(dst, codecMagic0, codecMagic1, codecVersion)
	dst = append(dst, e.ID[:]...)
	dst = appendString(dst, e.Project)
	dst = appendString(dst, e.Site)
	dst = binary.AppendUvarint(dst, e.Seq)
	dst = binary.AppendUvarint(dst, e.Lamport)
	dst = binary.AppendVarint(dst, e.Wall.UnixMilli())
	dst = appendString(dst, e.Actor)
	dst = appendString(dst, string(e.Type))
	dst = appendString(dst, e.Entity)
	dst = appendString(dst, e.Path)
	dst = binary.AppendUvarint(dst, uint64(len(e.Parents)))
	for _, p := range e.Parents {
		dst = append(dst, p[:]...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Changes)))
	for _, c := range e.Changes {
		dst = appendString(dst, c.Field)
		dst = binary.AppendUvarint(dst, uint64(len(c.Value)))
		dst = append(dst, c.Value...)
	}
	return append(dst, e.PrevHash[:]...)
}

// ComputeHash returns SHA-256 of e's canonical encoding.
func (e *Event) ComputeHash() Hash {
	var buf [512]byte
	return sha256.Sum256(e.AppendCanonical(buf[:0]))
}

// Marshal returns the stored form of e: canonical bytes followed by e.Hash.
func (e *Event) Marshal() []byte {
	b := e.AppendCanonical(make([]byte, 0, 256))
	return append(b, e.Hash[:]...)
}

// Unmarshal decodes the stored form produced by Marshal. It checks the
// encoding (lengths, counts, UTF-8, no trailing bytes) and that the stored
// hash matches the canonical bytes, so a flipped bit anywhere is an error.
// It does not run Validate, and does not re-canonicalize values (they were
// canonical when hashed): both are done where events enter from outside.
func Unmarshal(b []byte) (*Event, error) {
	if len(b) < 3+16+32 {
		return nil, errTruncated
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if sha256.Sum256(body) != Hash(sum) {
		return nil, errors.New("event encoding: hash does not match content")
	}
	e, err := decodeCanonical(body)
	if err != nil {
		return nil, err
	}
	copy(e.Hash[:], sum)
	return e, nil
}

func decodeCanonical(b []byte) (*Event, error) {
	d := decoder{b: b, utf8ok: true}
	if d.byte() != codecMagic0 || d.byte() != codecMagic1 {
		return nil, errors.New("event encoding: bad magic")
	}
	if v := d.byte(); v != codecVersion {
		return nil, fmt.Errorf("event encoding: unsupported version %d", v)
	}
	e := &Event{}
	copy(e.ID[:], d.bytes(16))
	e.Project = d.string()
	e.Site = d.string()
	e.Seq = d.uvarint()
	e.Lamport = d.uvarint()
	e.Wall = time.UnixMilli(d.varint()).UTC()
	e.Actor = d.string()
	e.Type = Type(d.string())
	e.Entity = d.string()
	e.Path = d.string()
	np := d.uvarint()
	if np > MaxParents || np*16 > uint64(d.remaining()) {
		return nil, errors.New("event encoding: bad parent count")
	}
	if np > 0 {
		e.Parents = make([]ulid.ULID, np)
		for i := range e.Parents {
			copy(e.Parents[i][:], d.bytes(16))
		}
	}
	nc := d.uvarint()
	if nc > MaxChanges || nc > uint64(d.remaining()) {
		return nil, errors.New("event encoding: bad change count")
	}
	if nc > 0 {
		e.Changes = make(Changes, nc)
		for i := range e.Changes {
			e.Changes[i].Field = d.string()
			e.Changes[i].Value = append([]byte(nil), d.lenBytes()...)
		}
	}
	copy(e.PrevHash[:], d.bytes(32))
	if d.err != nil {
		return nil, d.err
	}
	if d.remaining() != 0 {
		return nil, errors.New("event encoding: trailing bytes")
	}
	if !d.utf8ok {
		return nil, errors.New("event encoding: invalid UTF-8")
	}
	return e, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type decoder struct {
	b      []byte
	err    error
	utf8ok bool
}

func (d *decoder) remaining() int { return len(d.b) }

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errTruncated
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n int) []byte {
	if len(d.b) < n {
		d.fail()
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) lenBytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	return d.bytes(int(n))
}

func (d *decoder) string() string {
	b := d.lenBytes()
	if d.err == nil && !utf8.Valid(b) {
		d.utf8ok = false
	}
	return string(b)
}

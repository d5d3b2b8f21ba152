package archive

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/dss-sync/dss-sync/projections/dtcg"
	"github.com/oklog/ulid/v2"
)

// The .dss archive, format version 1 (CONTRACT.md §3).
const (
	FormatName    = "dss-archive"
	FormatVersion = 1
	// ExtensionKey is where tokens and components carry their dss-sync
	// identity in $extensions: {"id", "rev", "lamport"}.
	ExtensionKey = "org.dss-sync"
)

// Manifest describes an archive. Files lists every other entry with its
// SHA-256 and size; Signature signs the manifest's canonical JSON without it.
type Manifest struct {
	Format        string              `json:"format"`
	FormatVersion int                 `json:"formatVersion"`
	Project       ManifestProject     `json:"project"`
	Site          string              `json:"site"`
	ExportedAt    string              `json:"exportedAt"`
	Lamport       uint64              `json:"lamport"`
	Vector        events.Vector       `json:"vector"`
	Counts        Counts              `json:"counts"`
	History       bool                `json:"history"`
	Filter        *Filter             `json:"filter,omitempty"`
	Files         map[string]FileInfo `json:"files"`
	Signature     *events.Signature   `json:"signature,omitempty"`
}

// ManifestProject names the exported project.
type ManifestProject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Counts counts what an archive holds.
type Counts struct {
	Tokens     int `json:"tokens"`
	Components int `json:"components"`
	Events     int `json:"events"`
}

// Filter records a selective export: an archive of part of a project.
type Filter struct {
	Prefix string `json:"prefix,omitempty"`
	Type   string `json:"type,omitempty"`
}

func (m *Manifest) signingBytes() ([]byte, error) {
	c := *m
	c.Signature = nil
	return events.SigningBytes(c)
}

// ExportOptions select what an export holds.
type ExportOptions struct {
	History bool   // include events.ndjson (never with a filter: a part of a history has gaps)
	Prefix  string // only tokens and components in this group
	Type    string // only tokens of this type
	Key     ed25519.PrivateKey
}

// tokenProps returns a token's DTCG properties, with its identity added to
// $extensions[ExtensionKey].
func tokenProps(t *projections.Token) ([]dtcg.Property, error) {
	var props []dtcg.Property
	for _, p := range []dtcg.Property{{Name: "$type", Value: t.Type}, {Name: "$value", Value: t.Value},
		{Name: "$description", Value: t.Description}, {Name: "$deprecated", Value: t.Deprecated}} {
		if p.Value != nil {
			props = append(props, p)
		}
	}
	ext, err := withIdentity(t.Extensions, t.ID, t.Rev, t.Lamport)
	if err != nil {
		return nil, err
	}
	return append(props, dtcg.Property{Name: "$extensions", Value: ext}), nil
}

// withIdentity adds {id, rev, lamport} under ExtensionKey to an $extensions
// object (nil: a new one), replacing what was there, and returns the object
// canonical.
func withIdentity(ext json.RawMessage, id, rev string, lamport uint64) (json.RawMessage, error) {
	var ms []events.Member
	if ext != nil {
		var err error
		if ms, err = events.Members(ext); err != nil {
			return nil, err
		}
	}
	return events.AppendObject(nil, setMember(ms, ExtensionKey, identityJSON(id, rev, lamport))), nil
}

// identityJSON is the canonical {id, lamport, rev} object.
func identityJSON(id, rev string, lamport uint64) json.RawMessage {
	b := make([]byte, 0, 24+len(id)+len(rev))
	b = append(b, `{"id":`...)
	b = append(b, events.JSONString(id)...)
	b = append(b, `,"lamport":`...)
	b = strconv.AppendUint(b, lamport, 10)
	b = append(b, `,"rev":`...)
	b = append(b, events.JSONString(rev)...)
	return append(b, '}')
}

// setMember sets key to v in members sorted by key, keeping them sorted.
func setMember(ms []events.Member, key string, v json.RawMessage) []events.Member {
	i := sort.Search(len(ms), func(i int) bool { return ms[i].Key >= key })
	if i < len(ms) && ms[i].Key == key {
		ms[i].Value = v
		return ms
	}
	return slices.Insert(ms, i, events.Member{Key: key, Value: v})
}

// Export writes a signed archive of a project, streaming, from one consistent
// snapshot: tokens.json (a DTCG document), components.json, events.ndjson
// (with opt.History and no filter), then manifest.json.
func Export(ctx context.Context, site *projections.Site, project string, opt ExportOptions, w io.Writer) (*Manifest, error) {
	if opt.Key == nil {
		return nil, events.Errorf(events.EUNAVAILABLE, "no signing key")
	}
	zw := NewWriter(w)
	m := &Manifest{Format: FormatName, FormatVersion: FormatVersion, Site: site.ID(),
		ExportedAt: site.Now().UTC().Format(events.WallFormat)}
	if opt.Prefix != "" || opt.Type != "" {
		m.Filter = &Filter{Prefix: opt.Prefix, Type: opt.Type}
	}
	m.History = opt.History && m.Filter == nil
	var enc *dtcg.Encoder
	var cw *bufio.Writer
	var ew io.Writer
	stage := 0 // 0 before, 1 tokens, 2 components, 3 events
	advance := func(to int) error {
		for stage < to {
			switch stage {
			case 0:
				tw, err := zw.Create(TokensName)
				if err != nil {
					return err
				}
				enc = dtcg.NewEncoder(tw)
			case 1:
				if err := enc.Close(); err != nil {
					return err
				}
				f, err := zw.Create(ComponentsName)
				if err != nil {
					return err
				}
				cw = bufio.NewWriter(f)
				cw.WriteString("{")
			case 2:
				if m.Counts.Components > 0 {
					cw.WriteString("\n")
				}
				cw.WriteString("}\n")
				if err := cw.Flush(); err != nil {
					return err
				}
				if m.History {
					var err error
					if ew, err = zw.Create(EventsName); err != nil {
						return err
					}
				}
			}
			stage++
		}
		return nil
	}
	v := projections.Visitor{
		FileReferences: true,
		Project: func(p *projections.Project) error {
			m.Project, m.Lamport, m.Vector = ManifestProject{ID: p.ID, Name: p.Name}, p.Lamport, p.Vector
			return advance(1)
		},
		Token: func(t *projections.Token) error {
			props, err := tokenProps(t)
			if err != nil {
				return err
			}
			m.Counts.Tokens++
			return enc.Token(t.Path, props)
		},
		Component: func(c *projections.Component) error {
			if err := advance(2); err != nil {
				return err
			}
			b, err := componentJSON(c)
			if err != nil {
				return err
			}
			if m.Counts.Components > 0 {
				cw.WriteString(",")
			}
			m.Counts.Components++
			cw.WriteString("\n  ")
			cw.Write(events.JSONString(c.Name))
			cw.WriteString(": ")
			cw.Write(b)
			return nil
		},
	}
	if m.History {
		var line []byte
		v.Event = func(e *events.Event) error {
			if err := advance(3); err != nil {
				return err
			}
			line = append(e.AppendJSON(line[:0]), '\n')
			m.Counts.Events++
			_, err := ew.Write(line)
			return err
		}
	}
	if err := site.Snapshot(ctx, project, projections.Query{Prefix: opt.Prefix, Type: opt.Type}, v); err != nil {
		return nil, err
	}
	if err := advance(3); err != nil {
		return nil, err
	}
	mf, err := zw.Create(ManifestName)
	if err != nil {
		return nil, err
	}
	m.Files = zw.Files()
	payload, err := m.signingBytes()
	if err != nil {
		return nil, err
	}
	m.Signature = events.Sign(payload, opt.Key)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := mf.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	return m, zw.Close()
}

// componentJSON is a component as components.json holds it: its fields
// (canonical, as the projection keeps them) and its identity, as one
// canonical object.
func componentJSON(c *projections.Component) ([]byte, error) {
	ext, err := withIdentity(nil, c.ID, c.Rev, c.Lamport)
	if err != nil {
		return nil, err
	}
	ms := make([]events.Member, 0, 5)
	// In key order: "$extensions" < "description" < "props" < "tokens" < "variants".
	for _, m := range []events.Member{{Key: "$extensions", Value: ext}, {Key: "description", Value: c.Description},
		{Key: "props", Value: c.Props}, {Key: "tokens", Value: c.Tokens}, {Key: "variants", Value: c.Variants}} {
		if m.Value != nil {
			ms = append(ms, m)
		}
	}
	return events.AppendObject(nil, ms), nil
}

// ExportDTCG writes a project's tokens (optionally filtered) as one DTCG
// document, with their identity in $extensions, and returns how many.
func ExportDTCG(ctx context.Context, site *projections.Site, project, prefix, typ string, w io.Writer) (int, error) {
	enc := dtcg.NewEncoder(w)
	n := 0
	err := site.Snapshot(ctx, project, projections.Query{Prefix: prefix, Type: typ}, projections.Visitor{FileReferences: true, Token: func(t *projections.Token) error {
		props, err := tokenProps(t)
		if err != nil {
			return err
		}
		n++
		return enc.Token(t.Path, props)
	}})
	if err != nil {
		return 0, err
	}
	return n, enc.Close()
}

// Record is one thing an import applies: an event of the archive's history,
// or an item of its snapshot.
type Record struct {
	Event *events.Event     `json:"event,omitempty"`
	Item  *projections.Item `json:"item,omitempty"`
}

// splitIdentity removes ExtensionKey from an $extensions object and returns
// what it said; ext is nil when nothing else remains.
func splitIdentity(raw json.RawMessage) (ext json.RawMessage, id, rev string, err error) {
	if raw == nil {
		return nil, "", "", nil
	}
	ms, err := events.Members(raw)
	if err != nil {
		return nil, "", "", fmt.Errorf("$extensions: %w", err)
	}
	for i, m := range ms {
		if m.Key != ExtensionKey {
			continue
		}
		if id, rev, err = identity(m.Value); err != nil {
			return nil, "", "", err
		}
		ms = append(ms[:i], ms[i+1:]...)
		break
	}
	if len(ms) == 0 {
		return nil, id, rev, nil
	}
	return events.AppendObject(nil, ms), id, rev, nil
}

// identity reads {"id", "rev", ...} (canonical JSON), and checks them.
func identity(raw json.RawMessage) (id, rev string, err error) {
	ms, err := events.Members(raw)
	if err != nil {
		return "", "", fmt.Errorf("$extensions[%q]: %w", ExtensionKey, err)
	}
	for _, m := range ms {
		if m.Key != "id" && m.Key != "rev" {
			continue
		}
		s, err := strconv.Unquote(string(m.Value)) // canonical strings are Go-quoted strings
		if err != nil || m.Value[0] != '"' {
			return "", "", fmt.Errorf("$extensions[%q].%s must be a string", ExtensionKey, m.Key)
		}
		if m.Key == "id" {
			id = s
		} else {
			rev = s
		}
	}
	return id, rev, checkIdentity(id, rev)
}

// checkIdentity checks an item's id and rev, when present.
func checkIdentity(id, rev string) error {
	if id != "" {
		if _, err := ulid.ParseStrict(id); err != nil {
			return fmt.Errorf("$extensions[%q].id %q is not an id dss-sync made", ExtensionKey, id)
		}
	}
	if rev != "" {
		if _, err := projections.ParseRev(rev); err != nil {
			return fmt.Errorf("$extensions[%q].rev %q is not a rev dss-sync made", ExtensionKey, rev)
		}
	}
	return nil
}

// tokenItem turns a parsed DTCG token into an import item.
func tokenItem(t dtcg.Token) (*projections.Item, error) {
	path := strings.TrimSuffix(t.Path, "."+dtcg.RootSegment)
	if err := projections.CheckItemPath(events.KindToken, path); err != nil {
		return nil, err
	}
	ext, id, rev, err := splitIdentity(t.Extensions)
	if err != nil {
		return nil, err
	}
	value, err := events.Canonicalize(t.Value)
	if err != nil {
		return nil, fmt.Errorf("$value: %w", err)
	}
	data := make(map[string]json.RawMessage, 5)
	data["$value"] = value
	if t.Type != "" {
		data["$type"] = events.JSONString(t.Type)
	}
	if t.Description != nil {
		data["$description"] = events.JSONString(*t.Description)
	}
	if t.Deprecated != nil {
		if data["$deprecated"], err = events.Canonicalize(t.Deprecated); err != nil {
			return nil, fmt.Errorf("$deprecated: %w", err)
		}
	}
	if ext != nil {
		data["$extensions"] = ext
	}
	fields, err := projections.CheckItemFields(events.KindToken, data)
	if err != nil {
		return nil, err
	}
	return &projections.Item{Kind: events.KindToken, Path: path, ID: id, Rev: rev, Fields: fields}, nil
}

// componentItem turns one entry of components.json into an import item.
func componentItem(name string, raw json.RawMessage) (*projections.Item, error) {
	if err := projections.CheckItemPath(events.KindComponent, name); err != nil {
		return nil, err
	}
	ms, err := events.Members(raw)
	if err != nil {
		return nil, fmt.Errorf("a component is an object: %w", err)
	}
	data := make(map[string]json.RawMessage, len(ms))
	for _, m := range ms {
		if m.Key == "$extensions" {
			continue
		}
		data[m.Key] = m.Value
	}
	var id, rev string
	for _, m := range ms {
		if m.Key == "$extensions" {
			if _, id, rev, err = splitIdentity(m.Value); err != nil {
				return nil, err
			}
		}
	}
	fields, err := projections.CheckItemFields(events.KindComponent, data)
	if err != nil {
		return nil, err
	}
	return &projections.Item{Kind: events.KindComponent, Path: name, ID: id, Rev: rev, Fields: fields}, nil
}

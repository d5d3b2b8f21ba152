package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections"
	"github.com/dss-sync/dss-sync/projections/audit"
	"github.com/dss-sync/dss-sync/projections/dtcg"
)

// Input kinds.
const (
	KindArchive = "dss-archive"
	KindDTCG    = "dtcg"
)

// Stage names, in the order Check runs them (CONTRACT.md §3).
const (
	StageArchive     = "archive"
	StageManifest    = "manifest"
	StageSchema      = "schema"
	StageStructure   = "structure"
	StageReferential = "referential"
	StageMerge       = "merge"
)

// ImportLimits bound what Check reads. Zero fields mean the default.
type ImportLimits struct {
	Zip           Limits      // the container
	DTCG          dtcg.Limits // tokens.json or a DTCG file: depth, strings, token count, bytes
	MaxComponents int         // default 100,000
	MaxEvents     int         // default 10,000,000
	// CacheBytes is roughly how much memory Check may keep the records it
	// parsed in, so that Records replays them instead of reading and
	// parsing the input again (default 16 MiB; negative: never). A larger
	// input is read again: memory stays bounded whatever its size.
	CacheBytes int64
}

// DefaultImportLimits are the documented defaults.
var DefaultImportLimits = ImportLimits{Zip: DefaultLimits, DTCG: dtcg.DefaultLimits, MaxComponents: 100_000, MaxEvents: 10_000_000, CacheBytes: 16 << 20}

func (l ImportLimits) withDefaults() ImportLimits {
	if l.MaxComponents <= 0 {
		l.MaxComponents = DefaultImportLimits.MaxComponents
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultImportLimits.MaxEvents
	}
	if l.DTCG == (dtcg.Limits{}) {
		l.DTCG = dtcg.DefaultLimits
	}
	if l.CacheBytes == 0 {
		l.CacheBytes = DefaultImportLimits.CacheBytes
	}
	return l
}

// Stage is one stage of a check: what it found.
type Stage struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
}

// maxListed caps the errors and warnings a stage lists.
const maxListed = 50

func (s *Stage) errorf(format string, args ...any) {
	s.OK = false
	if len(s.Errors) < maxListed {
		s.Errors = append(s.Errors, fmt.Sprintf(format, args...))
	} else if len(s.Errors) == maxListed {
		s.Errors = append(s.Errors, "(more errors not listed)")
	}
}

func (s *Stage) warnf(format string, args ...any) {
	if len(s.Warnings) < maxListed {
		s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
	}
}

// Report is what Check (and, with a site, the merge analysis) found.
type Report struct {
	Kind          string                `json:"kind"`
	FormatVersion int                   `json:"formatVersion,omitempty"`
	Valid         bool                  `json:"valid"`
	Stages        []*Stage              `json:"stages"`
	Manifest      *Manifest             `json:"manifest,omitempty"`
	Counts        Counts                `json:"counts"`
	Signer        string                `json:"signer,omitempty"` // key id
	Plan          *projections.Analysis `json:"plan,omitempty"`
}

// Stage returns the named stage, added if missing.
func (r *Report) Stage(name string) *Stage {
	for _, s := range r.Stages {
		if s.Name == name {
			return s
		}
	}
	s := &Stage{Name: name, OK: true, Errors: []string{}, Warnings: []string{}}
	r.Stages = append(r.Stages, s)
	return s
}

func (r *Report) finish() *Report {
	r.Valid = true
	for _, s := range r.Stages {
		r.Valid = r.Valid && s.OK
	}
	return r
}

// Input is a checked import (an archive or a DTCG document): what Records
// replays.
type Input struct {
	r    io.ReaderAt
	size int64
	lim  ImportLimits
	zip  *Reader

	Kind       string
	Version    int
	Project    ManifestProject // the archive's project ("" for a DTCG file)
	HasHistory bool
	Counts     Counts
	aliases    map[string]bool // token paths whose values have references
	refs       *refs
	cache      recordCache
}

// recordCache holds the records Check parsed, in the order Records yields
// them, while they fit in ImportLimits.CacheBytes.
type recordCache struct {
	bytes                 int64
	over                  bool // the budget was exceeded: nothing is kept
	events                []*events.Event
	plain, aliased, comps []*projections.Item
}

// keep adds a record's approximate size to the cache's account, and says
// whether it may be kept.
func (in *Input) keep(size int) bool {
	c := &in.cache
	if c.over {
		return false
	}
	c.bytes += int64(size) + 256 // the structs, maps and slices around the bytes
	if in.lim.CacheBytes < 0 || c.bytes > in.lim.CacheBytes {
		*c = recordCache{over: true}
		return false
	}
	return true
}

func itemSize(it *projections.Item) int {
	n := len(it.Path) + len(it.ID) + len(it.Rev)
	for k, v := range it.Fields {
		n += len(k) + len(v) + 64
	}
	return n
}

func eventSize(e *events.Event) int {
	n := len(e.Project) + len(e.Site) + len(e.Actor) + len(e.Entity) + len(e.Path) + 16*len(e.Parents) + 200
	for _, c := range e.Changes {
		n += len(c.Field) + len(c.Value) + 40
	}
	return n
}

// Check reads an import from r (size bytes) and runs the stages a site and
// `dss-sync analyze` run before anything is applied: archive (the
// container), manifest (hashes, signature), schema (format version; older
// versions are migrated), structure (JSON shapes, DTCG types and values,
// events and their chains), referential (aliases resolve, no cycles,
// components name existing tokens). trusted, when not nil, says whether a
// signer's key id is trusted; an unknown one is an error. It returns the
// input for Records when the report is valid.
func Check(r io.ReaderAt, size int64, lim ImportLimits, trusted func(keyID string) bool) (*Report, *Input) {
	lim = lim.withDefaults()
	rep := &Report{Stages: []*Stage{}}
	in := &Input{r: r, size: size, lim: lim, aliases: map[string]bool{}}
	head := make([]byte, 4)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	st := rep.Stage(StageArchive)
	switch {
	case bytes.HasPrefix(head, []byte("PK")):
		in.Kind = KindArchive
	case len(bytes.TrimLeft(head, " \t\r\n\ufeff")) > 0 && bytes.TrimLeft(head, " \t\r\n")[0] == '{':
		in.Kind = KindDTCG
	default:
		st.errorf("neither a .dss archive (a zip) nor a DTCG document (a JSON object)")
		return rep.finish(), nil
	}
	rep.Kind = in.Kind
	if in.Kind == KindDTCG {
		st.warnf("not an archive: read as one DTCG JSON document (tokens only, no history, unsigned)")
		rep.Stage(StageManifest).warnf("a DTCG document has no manifest")
		rep.Stage(StageSchema).warnf("DTCG format 2025.10")
		in.checkTokens(rep, io.NewSectionReader(r, 0, size), false)
		in.checkReferences(rep, false)
		return in.result(rep)
	}
	zr, err := Open(r, size, nil, lim.Zip)
	if err != nil {
		for _, p := range Problems(err) {
			st.errorf("%s", p.Error())
		}
		if len(Problems(err)) == 0 {
			st.errorf("%v", err)
		}
		return rep.finish(), nil
	}
	in.zip = zr
	if !zr.Has(ManifestName) || !zr.Has(TokensName) {
		st.errorf("an archive holds manifest.json and tokens.json at least")
		return rep.finish(), nil
	}
	mst := rep.Stage(StageManifest)
	raw, err := zr.ReadAll(ManifestName, 1<<20)
	if err != nil {
		mst.errorf("%v", err)
		return rep.finish(), nil
	}
	var probe struct {
		Format        string `json:"format"`
		FormatVersion *int   `json:"formatVersion"`
		ExportHash    string `json:"exportHash"`
	}
	canon, err := events.Canonicalize(raw)
	if err == nil {
		err = json.Unmarshal(canon, &probe)
	}
	if err != nil {
		mst.errorf("manifest.json is not a JSON object: %v", err)
		return rep.finish(), nil
	}
	sch := rep.Stage(StageSchema)
	switch {
	case probe.FormatVersion == nil && probe.ExportHash != "":
		in.Version, rep.FormatVersion = 0, 0
		sch.warnf("format 0 (the seed system's layout): migrated to format 1 on import; it carries no signature and no history")
		return in.checkV0(rep, canon)
	case probe.Format != FormatName || probe.FormatVersion == nil:
		sch.errorf("manifest.json does not describe a dss-archive (format %q)", probe.Format)
		return rep.finish(), nil
	case *probe.FormatVersion > FormatVersion:
		sch.errorf("archive format version %d is newer than this dss-sync reads (%d): upgrade dss-sync to import it", *probe.FormatVersion, FormatVersion)
		return rep.finish(), nil
	case *probe.FormatVersion < 1:
		sch.errorf("unknown archive format version %d", *probe.FormatVersion)
		return rep.finish(), nil
	}
	in.Version, rep.FormatVersion = FormatVersion, FormatVersion
	m := &Manifest{}
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		mst.errorf("manifest.json: %v", err)
		return rep.finish(), nil
	}
	rep.Manifest = m
	in.Project, in.HasHistory = m.Project, zr.Has(EventsName)
	if !events.ValidProject(m.Project.ID) {
		mst.errorf("the manifest names an invalid project id %q", m.Project.ID)
	}
	if m.History != in.HasHistory {
		mst.errorf("the manifest says history is %v, but events.ndjson is %s", m.History, map[bool]string{true: "present", false: "absent"}[in.HasHistory])
	}
	for _, name := range zr.Names() {
		if _, ok := m.Files[name]; !ok && name != ManifestName {
			mst.errorf("%s is not listed in the manifest", name)
		}
	}
	for name := range m.Files {
		if !zr.Has(name) {
			mst.errorf("the manifest lists %s, which the archive does not hold", name)
		}
	}
	if payload, err := m.signingBytes(); err != nil {
		mst.errorf("%v", err)
	} else if err := m.Signature.Verify(payload); err != nil {
		mst.errorf("signature: %v", err)
	} else {
		rep.Signer = m.Signature.KeyID
		if trusted != nil && !trusted(m.Signature.KeyID) {
			mst.errorf("signed by key %s, which this site does not trust", m.Signature.KeyID)
		}
	}
	if !mst.OK {
		return rep.finish(), nil
	}
	// Structure: each entry, its hash checked as it is read.
	entry := func(name string) (*EntryReader, bool) {
		e, err := zr.Entry(name)
		if err != nil {
			rep.Stage(StageArchive).errorf("%v", err)
			return nil, false
		}
		return e, true
	}
	checkSum := func(name string, e *EntryReader) {
		want := m.Files[name]
		sum := e.Sum()
		if hex.EncodeToString(sum[:]) != want.SHA256 || e.Size() != want.Size {
			mst.errorf("%s does not match the manifest's hash and size: it was altered", name)
		}
	}
	if e, ok := entry(TokensName); ok {
		in.checkTokens(rep, e, m.Filter == nil)
		io.Copy(io.Discard, e)
		checkSum(TokensName, e)
		e.Close()
	}
	if zr.Has(ComponentsName) {
		if e, ok := entry(ComponentsName); ok {
			in.checkComponents(rep, e)
			io.Copy(io.Discard, e)
			checkSum(ComponentsName, e)
			e.Close()
		}
	}
	if in.HasHistory {
		if e, ok := entry(EventsName); ok {
			in.checkEvents(rep, e, m.Project.ID)
			io.Copy(io.Discard, e)
			checkSum(EventsName, e)
			e.Close()
		}
	}
	sst := rep.Stage(StageStructure)
	if in.Counts != m.Counts {
		sst.errorf("the archive holds %+v, the manifest says %+v", in.Counts, m.Counts)
	}
	in.checkReferences(rep, m.Filter == nil)
	return in.result(rep)
}

func (in *Input) result(rep *Report) (*Report, *Input) {
	rep.Counts = in.Counts
	rep.Stage(StageReferential)
	if rep.finish().Valid {
		return rep, in
	}
	return rep, nil
}

// refs holds, while checking, the token paths of the input and what each
// alias names.
type refs struct {
	paths pathSet
	names map[string][]string // token path -> paths it references
	comps map[string][]string // component -> token paths
}

// checkTokens runs the structure stage over a DTCG document.
func (in *Input) checkTokens(rep *Report, r io.Reader, complete bool) {
	st := rep.Stage(StageStructure)
	in.refs = &refs{names: map[string][]string{}, comps: map[string][]string{}}
	err := dtcg.ParseDocument(r, in.lim.DTCG, func(t dtcg.Token) error {
		it, err := tokenItem(t)
		if err != nil {
			st.errorf("token %s: %s", t.Path, events.ErrorMessage(err))
			return nil
		}
		i := in.refs.paths.add(it.Path)
		if it.ID != "" {
			in.refs.paths.addID(i, it.ID)
		}
		if rs, err := dtcg.References(it.Fields["$value"]); err == nil && len(rs) > 0 {
			for i := range rs {
				rs[i] = strings.TrimSuffix(rs[i], "."+dtcg.RootSegment)
			}
			in.refs.names[it.Path] = rs
			in.aliases[it.Path] = true
		}
		if in.keep(itemSize(it)) {
			if in.aliases[it.Path] {
				in.cache.aliased = append(in.cache.aliased, it)
			} else {
				in.cache.plain = append(in.cache.plain, it)
			}
		}
		in.Counts.Tokens++
		return nil
	})
	if err != nil {
		st.errorf("%s: %v", TokensName, err)
	}
}

func (in *Input) checkComponents(rep *Report, r io.Reader) {
	st := rep.Stage(StageStructure)
	err := eachComponent(r, in.lim, func(name string, raw json.RawMessage) error {
		it, err := componentItem(name, raw)
		if err != nil {
			st.errorf("component %s: %s", name, events.ErrorMessage(err))
			return nil
		}
		var toks []string
		json.Unmarshal(it.Fields[projections.FieldTokens], &toks)
		in.refs.comps[name] = toks
		if in.keep(itemSize(it)) {
			in.cache.comps = append(in.cache.comps, it)
		}
		in.Counts.Components++
		return nil
	})
	if err != nil {
		st.errorf("%s: %v", ComponentsName, err)
	}
}

// eachComponent walks components.json ({"Name": {...}, ...}) streaming.
func eachComponent(r io.Reader, lim ImportLimits, fn func(name string, raw json.RawMessage) error) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("components.json is a JSON object of components by name")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("component %q appears twice", name)
		}
		seen[name] = true
		if len(seen) > lim.MaxComponents {
			return fmt.Errorf("more than %d components", lim.MaxComponents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("component %q: %w", name, err)
		}
		if err := fn(name, raw); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

func (in *Input) checkEvents(rep *Report, r io.Reader, project string) {
	st := rep.Stage(StageStructure)
	v := audit.NewVerifier()
	err := eachEvent(r, in.lim, func(line int, e *events.Event, err error) error {
		if err != nil {
			st.errorf("%s line %d: %s", EventsName, line, events.ErrorMessage(err))
			return errStop
		}
		if e.Project != project {
			st.errorf("%s line %d: an event of project %q", EventsName, line, e.Project)
			return errStop
		}
		if err := v.Check(e, line); err != nil {
			st.errorf("%s line %d: %v", EventsName, line, err)
			return errStop
		}
		if in.keep(eventSize(e)) {
			in.cache.events = append(in.cache.events, e)
		}
		in.Counts.Events++
		return nil
	})
	if err != nil && err != errStop {
		st.errorf("%s: %v", EventsName, err)
	}
	for _, g := range v.Gaps {
		st.errorf("%s line %d: %s: a history must be complete", EventsName, g.Line, g)
		break
	}
}

var errStop = errors.New("stop")

// eachEvent walks events.ndjson.
func eachEvent(r io.Reader, lim ImportLimits, fn func(line int, e *events.Event, err error) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for line := 1; ; line++ {
		b, err := readLine(br, 2*events.MaxValueBytes)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if line > lim.MaxEvents {
			return fmt.Errorf("more than %d events", lim.MaxEvents)
		}
		e, perr := events.ParseJSON(b)
		if err := fn(line, e, perr); err != nil {
			return err
		}
	}
}

// readLine reads one line, refusing lines longer than max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > max {
			return nil, fmt.Errorf("a line longer than %d bytes", max)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(out) > 0 {
			return bytes.TrimRight(out, "\r\n"), nil
		}
		if err != nil {
			return nil, err
		}
		return bytes.TrimRight(out, "\r\n"), nil
	}
}

// checkReferences runs the referential stage: in a complete export, every
// alias and component token names a token of the input, and no alias loops;
// in a partial one (a filtered export, a DTCG file), names outside it are
// warnings: they must exist where the input is imported.
func (in *Input) checkReferences(rep *Report, complete bool) {
	if in.refs == nil {
		return
	}
	sst := rep.Stage(StageStructure)
	dupPaths, dupIDs := in.refs.paths.seal()
	for _, p := range dupPaths {
		sst.errorf("token %s appears twice (as a group's $root and a token?)", p)
	}
	for _, d := range dupIDs {
		sst.errorf("tokens %s and %s carry the same id %s", d[1], d[2], d[0])
	}
	st := rep.Stage(StageReferential)
	missing := func(what, name, target string) {
		if complete {
			st.errorf("%s %s names token %s, which the archive does not hold", what, name, target)
		} else {
			st.warnf("%s %s names token %s, which must exist where this is imported", what, name, target)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(in.refs.names)) {
		for _, t := range in.refs.names[p] {
			if !in.refs.paths.has(t) {
				missing("token", p, t)
			}
		}
	}
	for _, c := range slices.Sorted(maps.Keys(in.refs.comps)) {
		for _, t := range in.refs.comps[c] {
			if !in.refs.paths.has(t) {
				missing("component", c, t)
			}
		}
	}
	// Cycles, by depth-first search over the aliases.
	state := map[string]int{} // 1 visiting, 2 done
	var stack []string
	var visit func(p string) bool
	visit = func(p string) bool {
		switch state[p] {
		case 1:
			i := len(stack) - 1
			for i > 0 && stack[i] != p {
				i--
			}
			st.errorf("aliases loop: %s -> %s", strings.Join(stack[i:], " -> "), p)
			return true
		case 2:
			return false
		}
		state[p] = 1
		stack = append(stack, p)
		for _, t := range in.refs.names[p] {
			if visit(t) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		state[p] = 2
		return false
	}
	for _, p := range slices.Sorted(maps.Keys(in.refs.names)) {
		if visit(p) {
			break
		}
	}
}

// RecordOptions say what Records yields.
type RecordOptions struct {
	// History yields the archive's events (when it has them): right only
	// for an import into the archive's own project.
	History bool
	// Revs keeps items' revs (a rev names events of the archive's
	// project): false for a copy into another project.
	Revs bool
}

// Records yields what an import applies, in order: the history's events;
// then tokens without references; then tokens with references (so targets
// mostly come before what names them); then components. It reads the input
// again, streaming: memory does not grow with its size.
func (in *Input) Records(ctx context.Context, opt RecordOptions, fn func(Record) error) error {
	if in.cached() {
		return in.cachedRecords(ctx, opt, fn)
	}
	if opt.History && in.HasHistory {
		e, err := in.zip.Entry(EventsName)
		if err != nil {
			return err
		}
		err = eachEvent(e, in.lim, func(_ int, ev *events.Event, err error) error {
			if err != nil {
				return err
			}
			return fn(Record{Event: ev})
		})
		e.Close()
		if err != nil {
			return err
		}
	}
	if in.Version == 0 && in.Kind == KindArchive {
		return in.recordsV0(ctx, opt, fn)
	}
	for _, withRefs := range []bool{false, true} {
		r, closer, err := in.tokensReader()
		if err != nil {
			return err
		}
		err = dtcg.ParseDocument(r, in.lim.DTCG, func(t dtcg.Token) error {
			it, err := tokenItem(t)
			if err != nil {
				return err
			}
			if in.aliases[it.Path] != withRefs {
				return nil
			}
			if !opt.Revs {
				it.Rev = ""
			}
			return fn(Record{Item: it})
		})
		closer()
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if in.Kind == KindArchive && in.zip.Has(ComponentsName) {
		e, err := in.zip.Entry(ComponentsName)
		if err != nil {
			return err
		}
		defer e.Close()
		return eachComponent(e, in.lim, func(name string, raw json.RawMessage) error {
			it, err := componentItem(name, raw)
			if err != nil {
				return err
			}
			if !opt.Revs {
				it.Rev = ""
			}
			return fn(Record{Item: it})
		})
	}
	return nil
}

// RecordCount is how many records Records yields with opt.
func (in *Input) RecordCount(opt RecordOptions) int {
	n := in.Counts.Tokens + in.Counts.Components
	if opt.History && in.HasHistory {
		n += in.Counts.Events
	}
	return n
}

// cached says whether Check kept every record: a format 0 archive is
// migrated as it is read, and is never cached.
func (in *Input) cached() bool {
	return !in.cache.over && in.Version == FormatVersion || in.Kind == KindDTCG && !in.cache.over
}

func (in *Input) cachedRecords(ctx context.Context, opt RecordOptions, fn func(Record) error) error {
	if opt.History && in.HasHistory {
		for _, e := range in.cache.events {
			if err := fn(Record{Event: e}); err != nil {
				return err
			}
		}
	}
	for _, items := range [][]*projections.Item{in.cache.plain, in.cache.aliased, in.cache.comps} {
		for _, it := range items {
			if !opt.Revs && it.Rev != "" {
				cp := *it
				cp.Rev = ""
				it = &cp
			}
			if err := fn(Record{Item: it}); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (in *Input) tokensReader() (io.Reader, func(), error) {
	if in.Kind == KindDTCG {
		return io.NewSectionReader(in.r, 0, in.size), func() {}, nil
	}
	e, err := in.zip.Entry(TokensName)
	if err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}

// The seed system's layout, format 0: manifest.json {"project", "name",
// "exportedAt", "exportHash": hex SHA-256 of tokens.json's bytes followed by
// components.json's}, tokens.json {"tokens": [{"path", "type", "value",
// "description"}]}, components.json {"components": [{"name", "description",
// "props", "variants", "tokens"}]}. It migrates to format 1's items.

type v0Manifest struct {
	Project    string `json:"project"`
	Name       string `json:"name"`
	ExportedAt string `json:"exportedAt"`
	ExportHash string `json:"exportHash"`
}

type v0Token struct {
	Path        string          `json:"path"`
	Type        string          `json:"type"`
	Value       json.RawMessage `json:"value"`
	Description *string         `json:"description"`
}

type v0Component struct {
	Name        string          `json:"name"`
	Description json.RawMessage `json:"description"`
	Props       json.RawMessage `json:"props"`
	Variants    json.RawMessage `json:"variants"`
	Tokens      json.RawMessage `json:"tokens"`
}

func (in *Input) checkV0(rep *Report, manifest []byte) (*Report, *Input) {
	mst := rep.Stage(StageManifest)
	var m v0Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		mst.errorf("manifest.json (format 0): %v", err)
		return rep.finish(), nil
	}
	if !events.ValidProject(m.Project) {
		mst.errorf("the manifest names an invalid project id %q", m.Project)
	}
	in.Project = ManifestProject{ID: m.Project, Name: m.Name}
	h := sha256.New()
	in.refs = &refs{names: map[string][]string{}, comps: map[string][]string{}}
	sst := rep.Stage(StageStructure)
	err := in.eachV0(h, func(it *projections.Item, err error) error {
		if err != nil {
			sst.errorf("%s", events.ErrorMessage(err))
			return nil
		}
		if it.Kind == events.KindToken {
			in.Counts.Tokens++
			in.refs.paths.add(it.Path)
			if rs, err := dtcg.References(it.Fields["$value"]); err == nil && len(rs) > 0 {
				in.refs.names[it.Path], in.aliases[it.Path] = rs, true
			}
		} else {
			in.Counts.Components++
			var toks []string
			json.Unmarshal(it.Fields[projections.FieldTokens], &toks)
			in.refs.comps[it.Path] = toks
		}
		return nil
	})
	if err != nil {
		sst.errorf("%v", err)
	}
	if hex.EncodeToString(h.Sum(nil)) != m.ExportHash {
		mst.errorf("exportHash does not match tokens.json and components.json: the archive was altered")
	}
	in.checkReferences(rep, true)
	return in.result(rep)
}

// eachV0 reads a format-0 archive's tokens, then components, into items,
// hashing the entries' bytes into h.
func (in *Input) eachV0(h io.Writer, fn func(*projections.Item, error) error) error {
	for _, name := range []string{TokensName, ComponentsName} {
		if !in.zip.Has(name) {
			continue
		}
		e, err := in.zip.Entry(name)
		if err != nil {
			return err
		}
		var r io.Reader = e
		if h != nil {
			r = io.TeeReader(e, h)
		}
		dec := json.NewDecoder(r)
		err = func() error {
			defer e.Close()
			if name == TokensName {
				var doc struct{ Tokens []v0Token }
				if err := dec.Decode(&doc); err != nil {
					return fmt.Errorf("%s (format 0): %w", name, err)
				}
				if len(doc.Tokens) > in.lim.DTCG.MaxTokens {
					return fmt.Errorf("more than %d tokens", in.lim.DTCG.MaxTokens)
				}
				for _, t := range doc.Tokens {
					data := map[string]any{"$value": t.Value}
					if t.Type != "" {
						data["$type"] = t.Type
					}
					if t.Description != nil {
						data["$description"] = *t.Description
					}
					raw, _ := json.Marshal(data)
					fields, err := projections.ParseItemData(events.KindToken, raw)
					if err == nil {
						err = projections.CheckItemPath(events.KindToken, t.Path)
					}
					if err != nil {
						err = fmt.Errorf("token %s: %s", t.Path, events.ErrorMessage(err))
					}
					if err := fn(&projections.Item{Kind: events.KindToken, Path: t.Path, Fields: fields}, err); err != nil {
						return err
					}
				}
			} else {
				var doc struct{ Components []v0Component }
				if err := dec.Decode(&doc); err != nil {
					return fmt.Errorf("%s (format 0): %w", name, err)
				}
				for _, c := range doc.Components {
					data := map[string]json.RawMessage{}
					for k, v := range map[string]json.RawMessage{"description": c.Description, "props": c.Props, "variants": c.Variants, "tokens": c.Tokens} {
						if v != nil {
							data[k] = v
						}
					}
					raw, _ := json.Marshal(data)
					fields, err := projections.ParseItemData(events.KindComponent, raw)
					if err == nil {
						err = projections.CheckItemPath(events.KindComponent, c.Name)
					}
					if err != nil {
						err = fmt.Errorf("component %s: %s", c.Name, events.ErrorMessage(err))
					}
					if err := fn(&projections.Item{Kind: events.KindComponent, Path: c.Name, Fields: fields}, err); err != nil {
						return err
					}
				}
			}
			_, err := io.Copy(io.Discard, r) // hash what follows the document too
			return err
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func (in *Input) recordsV0(ctx context.Context, _ RecordOptions, fn func(Record) error) error {
	var later []*projections.Item // aliases and components after plain tokens
	err := in.eachV0(nil, func(it *projections.Item, err error) error {
		if err != nil {
			return err
		}
		if it.Kind == events.KindToken && !in.aliases[it.Path] {
			return fn(Record{Item: it})
		}
		later = append(later, it)
		return nil
	})
	if err != nil {
		return err
	}
	for _, it := range later {
		if err := fn(Record{Item: it}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

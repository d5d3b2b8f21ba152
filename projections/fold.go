package projections

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections/dtcg"
)

// SkewTolerance is how far an event's wall time may fall behind a causal
// ancestor's before conflicts flag it. It is a constant, not a setting: the
// flags it produces are part of a conflict, which must read the same on
// every site.
const SkewTolerance = 5 * time.Second

// Counts are a project's live tokens and components and open conflicts.
type Counts struct {
	Tokens     int64 `json:"tokens"`
	Components int64 `json:"components"`
	Conflicts  int64 `json:"conflicts"`
}

// ReadCounts returns the project's counts.
func ReadCounts(r Reader) (Counts, error) {
	var c Counts
	b, ok, err := r.Get(metaKey)
	if err != nil || !ok {
		return c, err
	}
	err = json.Unmarshal(b, &c)
	return c, err
}

// Fold appends evs to tx's log, in order, and folds each into the
// projection; events already in the log are skipped. It returns the events
// it appended. It is the only way events enter a store, which is what keeps
// log and projection in agreement. The projection after Fold is a function
// of the set of events in the log only.
func Fold(tx Tx, evs []*events.Event) ([]*events.Event, error) {
	f := newFolder(tx)
	var appended []*events.Event
	for _, e := range evs {
		ok, err := f.fold(e, false, false)
		if err != nil {
			return nil, err
		}
		if ok {
			appended = append(appended, e)
		}
	}
	if err := f.settle(); err != nil {
		return nil, err
	}
	return appended, nil
}

// fold appends one event and folds it, leaving conflicts and counts to
// settle. Entities, claims and references are current after it: a later
// decision in the same transaction sees them. fresh: this site just stamped
// e; newEntity: e creates an entity whose id this site just made.
func (f *folder) fold(e *events.Event, fresh, newEntity bool) (bool, error) {
	if err := checkEventFields(e); err != nil {
		return false, err
	}
	ok, err := f.tx.AppendLog(e, fresh)
	if err != nil || !ok {
		return false, err
	}
	if err := f.applyNew(e, newEntity); err != nil {
		return false, fmt.Errorf("fold event %s: %w", e.ID, err)
	}
	return true, nil
}

// Rebuilder builds a projection afresh from a log, one entity at a time:
// each entity's state is recompute over its whole history (the definition
// of the projection), written once; claims, references and conflicts are
// settled once at the end. The tx must hold an empty projection and the
// events must already be in its log.
type Rebuilder struct{ f *folder }

// NewRebuilder returns a rebuilder writing into tx.
func NewRebuilder(tx Tx) *Rebuilder { return &Rebuilder{f: newFolder(tx)} }

// Entity folds the complete history of one entity id (its events in total
// order; an id reused across kinds holds one entity per kind).
func (r *Rebuilder) Entity(evs []*events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	done := map[string]bool{}
	for _, e := range evs {
		kind := e.Type.Kind()
		if done[kind] {
			continue
		}
		done[kind] = true
		en := recompute(kind, e.Entity, evs)
		if err := r.f.tx.Set(entityKey(kind, en.ID), encodeEntity(en)); err != nil {
			return err
		}
		if err := r.f.noteChange(nil, en); err != nil {
			return fmt.Errorf("rebuild entity %s: %w", en.ID, err)
		}
	}
	return nil
}

// Finish settles conflicts and writes the counts.
func (r *Rebuilder) Finish() error { return r.f.settle() }

var componentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidComponentName reports whether s may name a component.
func ValidComponentName(s string) bool { return componentNameRE.MatchString(s) }

// checkPath validates a path of the given kind.
func checkPath(kind, path string) error {
	switch kind {
	case events.KindToken:
		if path == dtcg.RootSegment || strings.HasSuffix(path, "."+dtcg.RootSegment) {
			return fmt.Errorf("%q: a group's own token ($root in a DTCG file) lives at the group's path", path)
		}
		return dtcg.ValidatePath(path)
	case events.KindComponent:
		if !ValidComponentName(path) {
			return fmt.Errorf("component name %q must be a letter or digit then up to 127 of letters, digits, '.', '_', '-'", path)
		}
	case events.KindProject:
		if !events.ValidProject(path) {
			return fmt.Errorf("invalid project id %q", path)
		}
	}
	return nil
}

// checkEventFields checks what an event writes, independently of any state:
// fields the kind has, a path that is a valid path of the kind, and the
// envelope's path agreeing with a written path. Merged results (values that
// fit types, aliases that resolve) are not checked here: they become
// conflicts, because concurrent valid writes can combine into them.
func checkEventFields(e *events.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	kind := e.Type.Kind()
	bad := func(format string, args ...any) error {
		return events.Errorf(events.EINVALID, "event %s: %s", e.ID, fmt.Sprintf(format, args...))
	}
	if kind == events.KindProject && e.Entity != e.Project {
		return bad("a project event's entity must be the project id")
	}
	if err := checkPath(kind, e.Path); err != nil {
		return bad("%v", err)
	}
	for _, c := range e.Changes {
		if !fieldAllowed(kind, c.Field) {
			return bad("a %s has no field %q", kind, c.Field)
		}
		if c.Field == FieldPath {
			var p string
			if err := json.Unmarshal(c.Value, &p); err != nil || p != e.Path {
				return bad("written path %s does not match the event's path %q", c.Value, e.Path)
			}
		}
	}
	return nil
}

// folder carries what a Fold call has to settle once every event is in.
type folder struct {
	tx        Tx
	conflicts conflictStore
	counts    Counts
	touched   bool
	entities  map[string]bool // entity refs whose own conflicts to re-evaluate
	paths     map[string]bool // kind + 0x00 + path whose claims changed
	claimed   map[string]bool // kind + 0x00 + path whose claimers changed (collision to re-check)
	collided  map[string]bool // kind + 0x00 + path held by two or more entities at some point of the transaction
	refChecks map[string]bool // entity refs whose references to re-check
	chains    map[string]bool // token paths whose transitive referrers to re-check
}

func newFolder(tx Tx) *folder {
	return &folder{
		tx:        tx,
		conflicts: conflictStore{tx: tx},
		entities:  map[string]bool{},
		paths:     map[string]bool{},
		claimed:   map[string]bool{},
		collided:  map[string]bool{},
		refChecks: map[string]bool{},
		chains:    map[string]bool{},
	}
}

func (f *folder) loadEntity(kind, id string) (*Entity, error) {
	b, ok, err := f.tx.Get(entityKey(kind, id))
	if err != nil || !ok {
		return nil, err
	}
	return decodeEntity(b)
}

// apply folds one appended event into the projection.
func (f *folder) apply(e *events.Event) error { return f.applyNew(e, false) }

// applyNew is apply, knowing (newEntity) that the entity cannot exist yet.
func (f *folder) applyNew(e *events.Event, newEntity bool) error {
	kind := e.Type.Kind()
	var old *Entity
	if !newEntity {
		var err error
		if old, err = f.loadEntity(kind, e.Entity); err != nil {
			return err
		}
	}
	var cur *Entity
	if (old == nil && len(e.Parents) == 0) || (old != nil && old.descendsFromAll(e)) {
		cur = applyOnTop(old, e)
	} else {
		// A late or concurrent event: recompute this entity from its history.
		evs, err := f.tx.EntityEvents(e.Entity)
		if err != nil {
			return err
		}
		cur = recompute(kind, e.Entity, evs)
	}
	if err := f.tx.Set(entityKey(kind, e.Entity), encodeEntity(cur)); err != nil {
		return err
	}
	return f.noteChange(old, cur)
}

// noteChange updates claims, references and counts for an entity that went
// from old (nil: new) to cur, and records what must be settled.
func (f *folder) noteChange(old, cur *Entity) error {
	kind, id := cur.Kind, cur.ID
	er := entityRef(kind, id)
	oldLive, curLive := old != nil && old.claims(), cur.claims()
	var oldPath, curPath string
	var oldClaim, curClaim Ref
	if oldLive {
		oldPath, oldClaim = old.Path(), old.Field(FieldPath).Winner().Ref
	}
	if curLive {
		curPath, curClaim = cur.Path(), cur.Field(FieldPath).Winner().Ref
	}
	if oldLive != curLive || oldPath != curPath || oldClaim != curClaim {
		if oldLive {
			before, err := dropClaim(f.tx, kind, oldPath, id)
			if err != nil {
				return err
			}
			f.paths[kind+"\x00"+oldPath] = true
			f.collided[kind+"\x00"+oldPath] = f.collided[kind+"\x00"+oldPath] || before >= 2
		}
		if curLive {
			before, err := setClaim(f.tx, kind, curPath, id, curClaim)
			if err != nil {
				return err
			}
			f.paths[kind+"\x00"+curPath] = true
			f.collided[kind+"\x00"+curPath] = f.collided[kind+"\x00"+curPath] || before+1 >= 2
		}
	}
	if oldLive != curLive {
		d := int64(1)
		if oldLive {
			d = -1
		}
		switch kind {
		case events.KindToken:
			f.counts.Tokens += d
		case events.KindComponent:
			f.counts.Components += d
		}
		f.touched = true
	}
	var oldRefs, curRefs []string
	if oldLive {
		oldRefs = references(old)
	}
	if curLive {
		curRefs = references(cur)
	}
	if !equalStrings(oldRefs, curRefs) {
		for _, p := range oldRefs {
			if err := removeString(f.tx, refKey(p), er); err != nil {
				return err
			}
		}
		for _, p := range curRefs {
			if err := addString(f.tx, refKey(p), er); err != nil {
				return err
			}
		}
		if kind == events.KindToken && curLive {
			f.chains[curPath] = true
		}
	}
	if len(oldRefs) > 0 || len(curRefs) > 0 {
		f.refChecks[er] = true
	}
	if curLive {
		// A collision at its path shows each claimer's value: keep it current.
		f.claimed[kind+"\x00"+curPath] = true
	}
	if hasEntityConflicts(old) || hasEntityConflicts(cur) {
		f.entities[er] = true
	}
	return nil
}

// settle re-evaluates every conflict whose inputs changed, from the final
// state: so the open conflicts are a function of the projection, not of the
// order in which it was reached. It also writes the counts.
func (f *folder) settle() (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("settle projection: %w", err)
		}
	}()
	for _, kp := range slices.Sorted(maps.Keys(f.paths)) {
		kind, path, _ := strings.Cut(kp, "\x00")
		f.claimed[kp] = true
		if kind == events.KindToken {
			f.chains[path] = true
		}
	}
	for _, kp := range slices.Sorted(maps.Keys(f.claimed)) {
		kind, path, _ := strings.Cut(kp, "\x00")
		if err := f.evalPath(kind, path); err != nil {
			return err
		}
	}
	// Everything whose alias chain passes through a changed path.
	seen := map[string]bool{}
	queue := slices.Sorted(maps.Keys(f.chains))
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		users, err := getStrings(f.tx, refKey(p))
		if err != nil {
			return err
		}
		for _, u := range users {
			f.refChecks[u] = true
			kind, id := splitEntityRef(u)
			if kind != events.KindToken {
				continue
			}
			en, err := f.loadEntity(kind, id)
			if err != nil {
				return err
			}
			if en != nil && en.claims() {
				queue = append(queue, en.Path())
			}
		}
	}
	for _, er := range slices.Sorted(maps.Keys(f.refChecks)) {
		kind, id := splitEntityRef(er)
		if err := f.evalRefs(kind, id); err != nil {
			return err
		}
	}
	for _, er := range slices.Sorted(maps.Keys(f.entities)) {
		kind, id := splitEntityRef(er)
		if err := f.evalEntity(kind, id); err != nil {
			return err
		}
	}
	if f.touched || f.conflicts.delta != 0 {
		c, err := ReadCounts(f.tx)
		if err != nil {
			return err
		}
		c.Tokens += f.counts.Tokens
		c.Components += f.counts.Components
		c.Conflicts += int64(f.conflicts.delta)
		b, _ := json.Marshal(c)
		if err := f.tx.Set(metaKey, b); err != nil {
			return err
		}
	}
	return nil
}

// hasEntityConflicts reports whether an entity's own state holds a conflict.
func hasEntityConflicts(en *Entity) bool {
	if en == nil {
		return false
	}
	for i := range en.Fields {
		if en.Fields[i].Conflicted() {
			return true
		}
	}
	return invalidValue(en) != nil
}

// invalidValue returns why a live token's merged $value does not fit its
// $type, or nil.
func invalidValue(en *Entity) error {
	if en.Kind != events.KindToken || !en.Exists() {
		return nil
	}
	typ := en.StringValue(FieldType)
	if typ == "" {
		return nil
	}
	v := en.Value(FieldValue)
	if v == nil {
		return fmt.Errorf("$value is missing")
	}
	if !dtcg.IsType(typ) {
		return fmt.Errorf("unknown $type %q", typ)
	}
	return dtcg.ValidateValue(typ, v)
}

// evalEntity re-evaluates an entity's own conflicts: value, delete-update
// and invalid-value.
func (f *folder) evalEntity(kind, id string) error {
	en, err := f.loadEntity(kind, id)
	if err != nil {
		return err
	}
	want := map[string]*Conflict{}
	if en != nil {
		var evs []*events.Event // loaded once, for skew flags, when needed
		loadEvents := func() []*events.Event {
			if evs == nil {
				evs, _ = f.tx.EntityEvents(id)
			}
			return evs
		}
		exists := en.Field(FieldExists)
		if exists.Conflicted() || en.Exists() {
			for i := range en.Fields {
				fd := &en.Fields[i]
				if !fd.Conflicted() {
					continue
				}
				c := &Conflict{Kind: ConflictValue, EntityKind: kind, Entity: id, Path: en.Path(), Field: fd.Name,
					Entities: []string{entityRef(kind, id)}}
				if fd.Name == FieldExists {
					c.Kind, c.Field = ConflictDeleteUpdate, ""
				}
				for _, w := range fd.Writers {
					c.Candidates = append(c.Candidates, candidateOf(id, w))
				}
				flagWallSkew(c.Candidates, loadEvents(), SkewTolerance)
				subject := entitySubjectPrefix(kind, id) + fd.Name
				want[subject] = c.finish(subject)
			}
		}
		if err := invalidValue(en); err != nil {
			c := &Conflict{Kind: ConflictInvalidValue, EntityKind: kind, Entity: id, Path: en.Path(), Field: FieldValue,
				Detail: err.Error(), Entities: []string{entityRef(kind, id)}}
			tw, vw := en.Field(FieldType).Winner(), en.Field(FieldValue).Winner()
			cands := []Write{tw, vw}
			sort.Slice(cands, func(i, j int) bool { return cands[i].Position().Compare(cands[j].Position()) < 0 })
			for i, w := range cands {
				if i > 0 && w.ID == cands[i-1].ID {
					continue
				}
				c.Candidates = append(c.Candidates, candidateOf(id, w))
			}
			subject := entitySubjectPrefix(kind, id) + "\x01invalid"
			want[subject] = c.finish(subject)
		}
	}
	have, err := f.conflicts.subjectsWithPrefix(kind, id, entitySubjectPrefix(kind, id))
	if err != nil {
		return err
	}
	for _, s := range have {
		if want[s] == nil {
			if err := f.conflicts.clear(s); err != nil {
				return err
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(want)) {
		if err := f.conflicts.put(want[s]); err != nil {
			return err
		}
	}
	return nil
}

// evalPath re-evaluates the path-collision conflict at one path.
func (f *folder) evalPath(kind, path string) error {
	subject := pathSubject(kind, path)
	cl, err := claims(f.tx, kind, path)
	if err != nil {
		return err
	}
	if len(cl) < 2 {
		// A collision conflict exists only if the path had two claimers;
		// claims change only in transactions, which note when they had.
		if !f.collided[kind+"\x00"+path] {
			return nil
		}
		return f.conflicts.clear(subject)
	}
	c := &Conflict{Kind: ConflictPathCollision, EntityKind: kind, Path: path, Field: FieldPath}
	for _, x := range cl {
		en, err := f.loadEntity(kind, x.id)
		if err != nil {
			return err
		}
		v := json.RawMessage("null")
		if kind == events.KindToken && en.Value(FieldValue) != nil {
			v = en.Value(FieldValue)
		}
		c.Candidates = append(c.Candidates, candidateOf(x.id, Write{Ref: x.ref, Value: v}))
		c.Entities = append(c.Entities, entityRef(kind, x.id))
	}
	c.Entity = c.Candidates[len(c.Candidates)-1].Entity
	return f.conflicts.put(c.finish(subject))
}

// references returns the token paths a live entity's winning values name:
// a token's aliases, a component's token list. Sorted, unique.
func references(en *Entity) []string {
	switch en.Kind {
	case events.KindToken:
		v := en.Value(FieldValue)
		if v == nil {
			return nil
		}
		refs, err := dtcg.References(v)
		if err != nil {
			return nil
		}
		return rootless(refs)
	case events.KindComponent:
		var paths []string
		if err := json.Unmarshal(en.Value(FieldTokens), &paths); err != nil {
			return nil
		}
		slices.Sort(paths)
		return slices.Compact(paths)
	}
	return nil
}

// rootless maps alias targets "g.$root" to the group's own path "g" (where
// this model keeps a group's root token), keeping the list sorted and unique.
func rootless(paths []string) []string {
	changed := false
	for i, p := range paths {
		if t, ok := strings.CutSuffix(p, "."+dtcg.RootSegment); ok {
			paths[i], changed = t, true
		}
	}
	if !changed {
		return paths
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}

// aliasTarget returns the token path a whole-value alias names, its "$root"
// mapped to the group's path.
func aliasTarget(v json.RawMessage) (string, bool) {
	p, ok := dtcg.ParseAlias(v)
	if !ok {
		return "", false
	}
	return strings.TrimSuffix(p, "."+dtcg.RootSegment), true
}

// winnerAt returns the live token holding path (the collision winner), or nil.
func winnerAt(r Reader, kind, path string) (*Entity, error) {
	cl, err := claims(r, kind, path)
	if err != nil || len(cl) == 0 {
		return nil, err
	}
	b, ok, err := r.Get(entityKey(kind, cl[len(cl)-1].id))
	if err != nil || !ok {
		return nil, err
	}
	return decodeEntity(b)
}

// evalRefs re-evaluates an entity's dangling-alias and alias-cycle conflicts.
func (f *folder) evalRefs(kind, id string) error {
	en, err := f.loadEntity(kind, id)
	if err != nil {
		return err
	}
	refField := FieldValue
	if kind == events.KindComponent {
		refField = FieldTokens
	}
	var dangling, cycle *Conflict
	if en != nil && en.claims() {
		refs := references(en)
		var missing []string
		for _, p := range refs {
			cl, err := claims(f.tx, events.KindToken, p)
			if err != nil {
				return err
			}
			if len(cl) == 0 {
				missing = append(missing, p)
			}
		}
		w := en.Field(refField)
		if len(missing) > 0 {
			dangling = &Conflict{Kind: ConflictDanglingAlias, EntityKind: kind, Entity: id, Path: en.Path(), Field: refField,
				Candidates: []Candidate{candidateOf(id, w.Winner())},
				Detail:     "names no live token: " + strings.Join(missing, ", "),
				Entities:   []string{entityRef(kind, id)}}
		}
		if kind == events.KindToken && len(refs) > 0 {
			loop, err := aliasCycle(f.tx, en)
			if err != nil {
				return err
			}
			if loop != nil {
				cycle = &Conflict{Kind: ConflictAliasCycle, EntityKind: kind, Entity: id, Path: en.Path(), Field: refField,
					Candidates: []Candidate{candidateOf(id, w.Winner())},
					Detail:     "aliases loop: " + strings.Join(loop, " -> "),
					Entities:   []string{entityRef(kind, id)}}
			}
		}
	}
	open, err := getStrings(f.tx, involvesKey(kind, id))
	if err != nil {
		return err
	}
	for subject, c := range map[string]*Conflict{refSubject(kind, id): dangling, cycleSubject(id): cycle} {
		if kind != events.KindToken && subject == cycleSubject(id) {
			continue
		}
		if c == nil {
			if !contains(open, subject) {
				continue // nothing open to clear
			}
			err = f.conflicts.clear(subject)
		} else {
			err = f.conflicts.put(c.finish(subject))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// aliasCycle reports whether following aliases from token en comes back to
// en, and returns the loop of paths when it does. Paths are visited in
// sorted order, so the loop found is the same on every site.
func aliasCycle(r Reader, en *Entity) ([]string, error) {
	start := en.Path()
	onPath := map[string]bool{}
	done := map[string]bool{}
	var stack []string
	var visit func(path string, refs []string) ([]string, error)
	visit = func(path string, refs []string) ([]string, error) {
		onPath[path] = true
		stack = append(stack, path)
		for _, p := range refs {
			if p == start {
				return append(append([]string(nil), stack...), start), nil
			}
			if onPath[p] || done[p] {
				continue
			}
			t, err := winnerAt(r, events.KindToken, p)
			if err != nil {
				return nil, err
			}
			if t == nil {
				continue
			}
			if loop, err := visit(p, references(t)); loop != nil || err != nil {
				return loop, err
			}
		}
		stack = stack[:len(stack)-1]
		onPath[path] = false
		done[path] = true
		return nil, nil
	}
	return visit(start, references(en))
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

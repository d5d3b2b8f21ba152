package projections

import (
	"encoding/json"
	"strings"

	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/projections/dtcg"
)

// A reference to a group's own token has two spellings: "{color.accent}",
// the path where this model keeps the token, and "{color.accent.$root}",
// the name DTCG 2025.10 (section 6.2) gives it in a file, where
// "color.accent" is then a group. The store keeps the first (writes
// normalize to it, reads resolve both, for events written before); a file
// export writes the second wherever the token is written as "$root".

// rootSuffix ends a reference to a group's own token in a file.
const rootSuffix = "." + dtcg.RootSegment

// rewriteReferences returns v with every alias "{target}" in it (the whole
// value, or a string nested in arrays and objects) renamed to
// "{name(target)}"; v itself when no name changes. v is canonical JSON; so
// is the result.
func rewriteReferences(v json.RawMessage, name func(target string) (string, error)) (json.RawMessage, error) {
	refs, err := dtcg.References(v)
	if err != nil || len(refs) == 0 {
		return v, err
	}
	renamed := map[string]string{}
	for _, t := range refs {
		n, err := name(t)
		if err != nil {
			return nil, err
		}
		if n != t {
			renamed[t] = n
		}
	}
	if len(renamed) == 0 {
		return v, nil
	}
	return mapAliases(v, func(target string) (any, bool) {
		n, ok := renamed[target]
		return "{" + n + "}", ok
	})
}

// storedReference is how the store spells a reference: a group's own token
// by the group's path.
func storedReference(target string) (string, error) {
	return strings.TrimSuffix(target, rootSuffix), nil
}

// fileReferences names references as a DTCG file of a selection (a
// snapshot's tokens under q) writes them: a token of the selection with
// tokens of the selection under it is written as its group's "$root", and
// is referenced so; one without is referenced by its path. A token outside
// the selection is named as a file of the whole project would write it; a
// target that does not exist is left as it is. What it learns of a target
// is kept, up to a bound.
type fileReferences struct {
	r     Reader
	q     Query
	known map[string]string
}

// maxKnownReferences bounds what fileReferences keeps.
const maxKnownReferences = 100_000

func (f *fileReferences) name(target string) (string, error) {
	path := strings.TrimSuffix(target, rootSuffix)
	if n, ok := f.known[path]; ok {
		return n, nil
	}
	n, err := f.lookup(path, target)
	if err != nil {
		return "", err
	}
	if len(f.known) >= maxKnownReferences {
		clear(f.known)
	}
	f.known[path] = n
	return n, nil
}

func (f *fileReferences) lookup(path, target string) (string, error) {
	en, err := winnerAt(f.r, events.KindToken, path)
	if err != nil || en == nil {
		return target, err
	}
	// A target in the selection is written in the file: its children in
	// the file decide. One outside is named as a whole export would.
	inFile, err := f.selected(path, en)
	if err != nil {
		return "", err
	}
	root := false
	err = scanWinners(f.r, events.KindToken, Query{Prefix: path}, func(p string, child *Entity) (bool, error) {
		if p == path {
			return true, nil
		}
		ok := true
		if inFile {
			var err error
			if ok, err = f.selected(p, child); err != nil {
				return false, err
			}
		}
		root = ok
		return !ok, nil
	})
	if err != nil {
		return "", err
	}
	if root {
		return path + rootSuffix, nil
	}
	return path, nil
}

// selected reports whether the live token en at path is in the selection.
func (f *fileReferences) selected(path string, en *Entity) (bool, error) {
	if p := strings.TrimSuffix(f.q.Prefix, "."); p != "" && path != p && !strings.HasPrefix(path, p+".") {
		return false, nil
	}
	if f.q.Type == "" {
		return true, nil
	}
	typ, err := effectiveType(f.r, en, 0)
	return typ == f.q.Type, err
}

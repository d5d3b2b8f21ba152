package projections

import (
	"context"

	"github.com/dss-sync/dss-sync/events"
)

// Visitor receives a snapshot of a project (Site.Snapshot). Any callback may
// be nil; returning an error stops the walk.
type Visitor struct {
	Project   func(*Project) error
	Token     func(*Token) error     // in path order
	Component func(*Component) error // in name order
	Event     func(*events.Event) error
	// FileReferences, when set, has the references in each token's $value
	// spelled as a DTCG file of the selection needs them: "{g.$root}" for
	// a token written as its group's $root (it has tokens of the selection
	// under it), "{g}" otherwise (see references.go).
	FileReferences bool
}

// Snapshot walks one consistent point of a project: the project, then its
// tokens selected by q (prefix, type), then its components (prefix), then
// its events in total order. Everything comes from one snapshot of the
// store, so what an export writes agrees with itself however long it takes.
func (s *Site) Snapshot(ctx context.Context, project string, q Query, v Visitor) error {
	return s.view(ctx, project, func(r Reader) error {
		if v.Project != nil {
			p, err := ReadProject(r)
			if err != nil {
				return err
			}
			if err := v.Project(p); err != nil {
				return err
			}
		}
		if v.Token != nil {
			var refs *fileReferences
			if v.FileReferences {
				refs = &fileReferences{r: r, q: q, known: map[string]string{}}
			}
			err := scanWinners(r, events.KindToken, Query{Prefix: q.Prefix}, func(_ string, en *Entity) (bool, error) {
				if err := ctx.Err(); err != nil {
					return false, err
				}
				if q.Type != "" {
					typ, err := effectiveType(r, en, 0)
					if err != nil || typ != q.Type {
						return err == nil, err
					}
				}
				t, err := tokenOf(r, en)
				if err != nil {
					return false, err
				}
				if refs != nil {
					if t.Value, err = rewriteReferences(t.Value, refs.name); err != nil {
						return false, err
					}
				}
				return true, v.Token(t)
			})
			if err != nil {
				return err
			}
		}
		if v.Component != nil {
			err := scanWinners(r, events.KindComponent, Query{Prefix: q.Prefix}, func(_ string, en *Entity) (bool, error) {
				c, err := componentOf(r, en)
				if err != nil {
					return false, err
				}
				return true, v.Component(c)
			})
			if err != nil {
				return err
			}
		}
		if v.Event != nil {
			return r.ScanEvents(events.Position{}, func(e *events.Event) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				return v.Event(e)
			})
		}
		return nil
	})
}

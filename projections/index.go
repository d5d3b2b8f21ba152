package projections

import "sort"

// Posting lists: a sorted list of strings, or of claims, under one key.
// An empty list is no key at all.

func getStrings(r Reader, key []byte) ([]string, error) {
	b, ok, err := r.Get(key)
	if err != nil || !ok {
		return nil, err
	}
	return decodeStrings(b)
}

func putStrings(tx Tx, key []byte, ss []string) error {
	if len(ss) == 0 {
		return tx.Delete(key)
	}
	return tx.Set(key, encodeStrings(ss))
}

// addString inserts s into the sorted list under key.
func addString(tx Tx, key []byte, s string) error {
	ss, err := getStrings(tx, key)
	if err != nil {
		return err
	}
	i := sort.SearchStrings(ss, s)
	if i < len(ss) && ss[i] == s {
		return nil
	}
	ss = append(ss, "")
	copy(ss[i+1:], ss[i:])
	ss[i] = s
	return putStrings(tx, key, ss)
}

// removeString removes s from the sorted list under key.
func removeString(tx Tx, key []byte, s string) error {
	ss, err := getStrings(tx, key)
	if err != nil {
		return err
	}
	i := sort.SearchStrings(ss, s)
	if i == len(ss) || ss[i] != s {
		return nil
	}
	return putStrings(tx, key, append(ss[:i], ss[i+1:]...))
}

// claims returns the live entities of kind holding path, winner last (in
// total order of the events that wrote their paths).
func claims(r Reader, kind, path string) ([]claim, error) {
	b, ok, err := r.Get(claimKey(kind, path))
	if err != nil || !ok {
		return nil, err
	}
	return decodeClaims(b)
}

// setClaim records that entity id holds path through the path write ref.
// It returns how many entities held the path before.
func setClaim(tx Tx, kind, path, id string, ref Ref) (int, error) {
	cl, err := claims(tx, kind, path)
	if err != nil {
		return 0, err
	}
	out := append(withoutClaim(cl, id), claim{id: id, ref: ref})
	sort.Slice(out, func(i, j int) bool { return out[i].ref.Position().Compare(out[j].ref.Position()) < 0 })
	return len(cl), tx.Set(claimKey(kind, path), encodeClaims(out))
}

// dropClaim records that entity id no longer holds path. It returns how
// many entities held the path before.
func dropClaim(tx Tx, kind, path, id string) (int, error) {
	cl, err := claims(tx, kind, path)
	if err != nil {
		return 0, err
	}
	out := withoutClaim(cl, id)
	if len(out) == 0 {
		return len(cl), tx.Delete(claimKey(kind, path))
	}
	return len(cl), tx.Set(claimKey(kind, path), encodeClaims(out))
}

// withoutClaim returns the claims other than entity id's (a new slice).
func withoutClaim(cl []claim, id string) []claim {
	out := make([]claim, 0, len(cl)+1)
	for _, c := range cl {
		if c.id != id {
			out = append(out, c)
		}
	}
	return out
}

package projections

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// TestOverlayScan checks an overlay's merged scans against a plain model
// (a map, sorted on every scan) through interleaved writes, deletions and
// scans with prefixes and cursors: the sorted key index must follow every
// write, whenever it comes.
func TestOverlayScan(t *testing.T) {
	base := NewMemoryTx("p")
	model := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() string {
		return string([]byte{"ab"[rng.IntN(2)], "xyz"[rng.IntN(3)], byte('0' + rng.IntN(10))})
	}
	for i := 0; i < 40; i++ {
		k := key()
		base.Set([]byte(k), []byte("base"))
		model[k] = "base"
	}
	o := newOverlay(base)
	for step := 0; step < 2000; step++ {
		switch rng.IntN(4) {
		case 0:
			k := key()
			o.Delete([]byte(k))
			delete(model, k)
		case 1, 2:
			k, v := key(), string(rune('A'+rng.IntN(26)))
			o.Set([]byte(k), []byte(v))
			model[k] = v
		default:
			prefix := key()[:rng.IntN(3)]
			var after []byte
			if rng.IntN(2) == 0 {
				after = []byte(key())
			}
			var want []string
			for k, v := range model {
				if strings.HasPrefix(k, prefix) && (after == nil || k > string(after)) {
					want = append(want, k+"="+v)
				}
			}
			sort.Strings(want)
			var got []string
			if err := o.Scan([]byte(prefix), after, func(k, v []byte) error {
				got = append(got, string(k)+"="+string(v))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("step %d: scan %q after %q:\n got %v\nwant %v", step, prefix, after, got, want)
			}
		}
	}
}

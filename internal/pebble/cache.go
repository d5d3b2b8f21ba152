package pebble

// genCache is a bounded cache with two generations: entries live in the
// current map; when it holds more than max bytes it becomes the previous map
// (its entries still readable, and promoted on use) and the one before is
// dropped. It approximates LRU at the cost of two map lookups. Not safe for
// concurrent use: the store uses it under the append lock only.
type genCache[K comparable, V any] struct {
	cur, prev map[K]V
	size      func(K, V) int
	bytes     int
	max       int
}

func newGenCache[K comparable, V any](max int, size func(K, V) int) *genCache[K, V] {
	return &genCache[K, V]{cur: map[K]V{}, prev: map[K]V{}, size: size, max: max}
}

func (c *genCache[K, V]) get(k K) (V, bool) {
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	if v, ok := c.prev[k]; ok {
		c.put(k, v)
		return v, true
	}
	var zero V
	return zero, false
}

func (c *genCache[K, V]) put(k K, v V) {
	if _, ok := c.cur[k]; !ok {
		c.bytes += c.size(k, v)
	}
	c.cur[k] = v
	if c.bytes > c.max {
		c.prev, c.cur, c.bytes = c.cur, make(map[K]V, len(c.cur)), 0
	}
}

func (c *genCache[K, V]) clear() {
	c.cur, c.prev, c.bytes = map[K]V{}, map[K]V{}, 0
}

package pebble

// Bucket is a named key-value namespace in the store, for a subsystem's small
// state (API keys, the outbox cursor, jobs). Writes are fsynced. Buckets do
// not take the append lock: they never touch logs or projections.
type Bucket struct {
	s      *Store
	prefix []byte
}

// Bucket returns the bucket called name.
func (s *Store) Bucket(name string) *Bucket { return &Bucket{s: s, prefix: prefix(tBucket, name)} }

func (b *Bucket) key(k string) []byte { return append(append([]byte(nil), b.prefix...), k...) }

// Get returns the value under key and whether it exists.
func (b *Bucket) Get(key string) ([]byte, bool, error) { return get(b.s.db, b.key(key)) }

// Set stores value under key, durably.
func (b *Bucket) Set(key string, value []byte) error {
	return b.s.db.Set(b.key(key), value, b.s.writeOpts())
}

// SetMany stores every pair in one batch, durably: all of them or none.
func (b *Bucket) SetMany(kv map[string][]byte) error {
	batch := b.s.db.NewBatch()
	defer batch.Close()
	for k, v := range kv {
		if err := batch.Set(b.key(k), v, nil); err != nil {
			return err
		}
	}
	return batch.Commit(b.s.writeOpts())
}

// Delete removes key, durably.
func (b *Bucket) Delete(key string) error { return b.s.db.Delete(b.key(key), b.s.writeOpts()) }

// Scan calls fn for each key starting with prefix, in order.
func (b *Bucket) Scan(prefix string, fn func(key string, value []byte) error) error {
	lo := b.key(prefix)
	return scan(b.s.db, lo, upperBound(lo), func(k, v []byte) error {
		return fn(string(k[len(b.prefix):]), append([]byte(nil), v...))
	})
}

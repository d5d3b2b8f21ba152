// Package keys manages a site's API keys: minting them, storing them hashed,
// checking a presented key in constant time, rotating and revoking them, and
// keeping a tamper-evident security log of everything done with them.
//
// A key reads "dss_<id>_<secret>": id is a public identifier (it names the
// key in lists and logs), secret is 256 random bits. Only SHA-256 of the
// secret is stored; the key itself is shown once, when created or rotated.
// SHA-256 is enough here (no slow hash) because the secret has full entropy.
// No secret, and no part of a presented key but its id, is ever stored or
// logged.
//
// Every key expires (DefaultTTL, 90 days, when none is given); there is no
// "never". Records written before expiry was required may have none: they
// keep working until rotated or revoked. Rotation mints a successor with the
// same name, scopes and projects and shortens the old key's life to an
// overlap (DefaultOverlap, 7 days) during which both work. Revocation is
// effective at once: the Store keeps every key in memory and each change
// updates memory and the bucket together, under one lock, so no request that
// starts after Revoke returns is let in with the key.
//
// The security log is append-only and hash-chained: each Record carries the
// hash of the one before it, and its own hash over a canonical encoding
// (Record.Canonical). It lives in the key bucket under its own prefix; a key
// operation's record is written in the same batch as the key's new state.
//
// Storage layout in the Bucket (key order matters: "~" sorts after every id):
//
//	<id>            a Key, as JSON (no secret; the hash of the secret)
//	~head           the log's last seq and hash
//	~log/<seq>      a Record (seq as 16 hex digits)
//	~use/<id>       a key's last-used time and use count
package keys

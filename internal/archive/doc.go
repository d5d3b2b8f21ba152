// Package archive reads and writes the zip container of a .dss archive, the
// file dss-sync exports a project as. It is the low level only: it knows the
// entry names a version-1 archive may hold (manifest.json, tokens.json,
// components.json and, optionally, events.ndjson) but nothing of what they
// mean; another package parses the JSON.
//
// # Threat model
//
// Archives come from outside, as HTTP uploads or files a user passes to the
// CLI, so every byte is hostile until checked. An attacker may send a body
// that is not a zip at all, is truncated, lies in its headers, tries to write
// outside a folder when someone unpacks it (zip slip), smuggles directories,
// links, devices, hidden or unexpected files, or expands to far more bytes
// than it occupies (a zip bomb). This package must never panic on such input,
// never read outside the size it was given, never let memory grow with what
// the archive claims, and refuse each problem with a message a user can act on
// (an [*Error]).
//
// # What is checked, and when
//
// [Open] checks the structure before any entry is decompressed, in this order.
// A refusal in steps 1 to 3 ends the checks (nothing further can be trusted,
// or the report would be long); steps 4 and 5 report every problem they find,
// not only the first ([Problems]); of the checks on a name, only the first
// that applies is reported:
//
//  1. The size: an empty file is refused, and so is one larger than
//     MaxArchiveBytes, before a single byte is read.
//  2. The zip structure, parsed with archive/zip from the end-of-central-
//     directory record: a body that is not a zip, or is truncated, is refused,
//     and so is a source that ends before the size it was said to hold.
//     Reading the central directory is capped at a byte budget derived from
//     MaxEntries, so a directory of millions of tiny records cannot exhaust
//     memory before it is counted.
//  3. The number of entries: at most MaxEntries.
//  4. Each entry of the central directory, in order: its name (empty,
//     absolute, a ".." element, a backslash, a directory by trailing "/" or by
//     mode, inside a folder, hidden, control characters or invalid UTF-8, not
//     one of the allowed names); its file mode (symbolic links and every other
//     non-regular type); duplicates; encryption (flag bits 0, 6 and 13); the
//     compression method (only Store and Deflate); the declared uncompressed
//     size against MaxEntryBytes; the declared ratio of uncompressed to
//     compressed size against MaxRatio; a stored entry whose two sizes
//     differ; that the entry's compressed data (and data descriptor, if any)
//     lies inside the archive.
//  5. That no two entries' compressed data overlap (the overlapping-entry
//     zip bomb, where many entries share one highly compressed kernel).
//
// Error.Field shows an entry name as it is when it is short and printable,
// and quoted (and shortened past 64 bytes) otherwise, so that a hostile name
// can neither forge log lines nor drive a terminal.
//
// The names are judged by this package itself, whatever the GODEBUG setting
// zipinsecurepath says: archive/zip only flags insecure names when
// zipinsecurepath=0, and then with one undifferentiated error.
//
// [Reader.Entry] then reads an entry without trusting any declared size. The
// reader decompresses at most min(MaxEntryBytes, MaxRatio × compressed size,
// declared size) + 1 bytes, counting what it actually produces, and fails as
// soon as the count passes a bound, so a bomb whose central directory lies
// about its uncompressed size is stopped while reading, with memory bounded by
// the caller's buffer and the inflater's fixed window, never after inflating
// it. At the end of the entry it checks that the entry was exactly as long as
// declared, that its CRC-32 matches the central directory (always, including
// the CRC 0 that archive/zip takes to mean "not set"), and that the data
// descriptor, if the entry has one, agrees. It computes the SHA-256 and size
// of the bytes it returned.
//
// # Defaults
//
// A zero [Limits] field means the default ([DefaultLimits]): archives of at
// most 1 GiB, entries of at most 1 GiB uncompressed, a compression ratio of at
// most 200:1 per entry, and at most 16 entries in the central directory.
//
// # Writing
//
// [Writer] writes an archive streaming, with no seeking, so its output may be
// an HTTP response: Deflate-compressed entries with a fixed modification time
// (2000-01-01 UTC) and mode 0644, so that equal content gives equal bytes, and
// records the SHA-256 and size of every entry it wrote.
//
// The container (reader and writer) uses only the standard library; the
// archive's content (Check, Export, records and job chunks) builds on the
// domain packages events and projections, never on HTTP, NATS or Pebble.
package archive

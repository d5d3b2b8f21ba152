// Package backup writes and restores a site's backup: a tar stream of a
// consistent Pebble checkpoint and the files that make the site itself
// (its id, signing key and NATS nkey), ended by a signed manifest holding
// the SHA-256 and size of every other entry.
//
//	site-id, site.key, nats.nk   the site's files (nats.nk when it exists)
//	pebble/<file>                the checkpoint: log, projections, keys, jobs, outbox cursor
//	MANIFEST.json                {"format":"dss-backup","formatVersion":1, site, createdAt,
//	                              commit, files:[{name,size,sha256}], signature}
//
// The JetStream store is not in it: a restored site rebuilds its stream
// from its log, as after any loss of that store. A backup holds the site's
// private keys: keep it as carefully as the data dir.
package backup

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/events"
)

// Format and FormatVersion name what a backup holds.
const (
	Format        = "dss-backup"
	FormatVersion = 1
	manifestName  = "MANIFEST.json"
	// RestoredMarker is the file a restore leaves in the data dir; the
	// site removes it once it has caught up with its peers.
	RestoredMarker = "restored"
)

// Limits on what a restore reads.
const (
	maxManifest = 4 << 20
	maxEntries  = 100_000
	maxSiteFile = 64 << 10
)

// siteFiles are the site's own files a backup may hold (not admin.key: the
// keys are in the store, hashed).
var siteFiles = []string{"site-id", "site.key", "nats.nk"}

// checkpointName matches a file of a Pebble checkpoint (they are flat).
var checkpointName = regexp.MustCompile(`^pebble/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// File is one entry of a backup, as the manifest lists it.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a backup. Signature signs its canonical JSON without
// the signature, with the site's key (site.key, also in the backup).
type Manifest struct {
	Format        string            `json:"format"`
	FormatVersion int               `json:"formatVersion"`
	Site          string            `json:"site"`
	CreatedAt     time.Time         `json:"createdAt"`
	Commit        uint64            `json:"commit"` // the last commit the checkpoint holds
	Files         []File            `json:"files"`
	Signature     *events.Signature `json:"signature,omitempty"`
}

func (m *Manifest) signingBytes() ([]byte, error) {
	c := *m
	c.Signature = nil
	return events.SigningBytes(c)
}

// Source is what Write backs up.
type Source struct {
	Site   string
	Commit uint64
	// DataDir holds the site's files; Checkpoint is a directory holding a
	// Pebble checkpoint of its store.
	DataDir, Checkpoint string
	Key                 ed25519.PrivateKey
	Now                 time.Time
}

// Write writes a backup of src to w and returns its manifest.
func Write(w io.Writer, src Source) (*Manifest, error) {
	tw := tar.NewWriter(w)
	m := &Manifest{Format: Format, FormatVersion: FormatVersion, Site: src.Site, CreatedAt: src.Now.UTC(), Commit: src.Commit, Files: []File{}}
	add := func(name, path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(tw, h), f)
		if err != nil {
			return fmt.Errorf("back up %s: %w", name, err)
		}
		if n != fi.Size() {
			return fmt.Errorf("back up %s: it changed size while read", name)
		}
		m.Files = append(m.Files, File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	for _, name := range siteFiles {
		path := filepath.Join(src.DataDir, name)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && name == "nats.nk" {
			continue
		}
		if err := add(name, path); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(src.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	for _, e := range entries {
		name := "pebble/" + e.Name()
		if !e.Type().IsRegular() || !checkpointName.MatchString(name) {
			return nil, fmt.Errorf("checkpoint holds %q, which a backup cannot carry", e.Name())
		}
		if err := add(name, filepath.Join(src.Checkpoint, e.Name())); err != nil {
			return nil, err
		}
	}
	payload, err := m.signingBytes()
	if err != nil {
		return nil, err
	}
	m.Signature = events.Sign(payload, src.Key)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(b)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	return m, tw.Close()
}

// Options constrain what Verify and Restore accept.
type Options struct {
	// TrustKey, when set, is the key id (16 hex digits) the backup must be
	// signed with: the site's own, as `dss-sync backup` prints it.
	TrustKey string
}

// Verify reads a whole backup and checks it without writing anything:
// entry names, the manifest, every file's size and SHA-256, the signature,
// and that the signer is the site.key the backup holds.
func Verify(r io.Reader, opt Options) (*Manifest, error) {
	return read(r, opt, nil)
}

// Restore checks a backup and writes it into dir, which must not exist or
// be empty. Nothing is written to dir unless the whole backup checks out:
// it is unpacked beside dir first, then renamed into place. The restored
// data dir holds RestoredMarker, so that the site, started on it, takes no
// writes until it has caught up with its peers.
func Restore(r io.Reader, dir string, opt Options) (*Manifest, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("restore into %s: it is not empty (restore only into an empty or new data dir)", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("restore into %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restoring-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "pebble"), 0o700); err != nil {
		return nil, err
	}
	m, err := read(r, opt, func(name string, body io.Reader) error {
		f, err := os.OpenFile(filepath.Join(tmp, filepath.FromSlash(name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, body); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return nil, err
	}
	marker, _ := json.Marshal(map[string]any{"site": m.Site, "commit": m.Commit, "backupCreatedAt": m.CreatedAt})
	if err := os.WriteFile(filepath.Join(tmp, RestoredMarker), append(marker, '\n'), 0o600); err != nil {
		return nil, err
	}
	_ = os.Remove(dir) // empty or absent, checked above
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", dir, err)
	}
	if d, err := os.Open(parent); err == nil {
		d.Sync()
		d.Close()
	}
	return m, nil
}

// read walks a backup, hashing every entry; save, when set, receives each
// entry's bytes as they are read (an entry that fails a later check is
// discarded with the whole restore).
func read(r io.Reader, opt Options, save func(name string, body io.Reader) error) (*Manifest, error) {
	bad := func(format string, a ...any) error { return fmt.Errorf("invalid backup: "+format, a...) }
	tr := tar.NewReader(r)
	seen := map[string]File{}
	var siteKey, siteID []byte
	var manifest []byte
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bad("%v", err)
		}
		if manifest != nil {
			return nil, bad("entry %q after the manifest", h.Name)
		}
		if n >= maxEntries {
			return nil, bad("more than %d entries", maxEntries)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, bad("entry %q is not a regular file", h.Name)
		}
		// A PAX GNU sparse entry keeps the regular type while tar.Reader
		// expands holes its header declares: a few bytes of backup could
		// stand for terabytes of zeros to hash, and to write on restore.
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, bad("entry %q is a sparse file", h.Name)
			}
		}
		if _, dup := seen[h.Name]; dup {
			return nil, bad("entry %q twice", h.Name)
		}
		switch {
		case h.Name == manifestName:
			if h.Size > maxManifest {
				return nil, bad("the manifest is %d bytes; the limit is %d", h.Size, maxManifest)
			}
			if manifest, err = io.ReadAll(io.LimitReader(tr, maxManifest)); err != nil {
				return nil, bad("read the manifest: %v", err)
			}
			continue
		case slices.Contains(siteFiles, h.Name):
			if h.Size > maxSiteFile {
				return nil, bad("%s is %d bytes", h.Name, h.Size)
			}
		case checkpointName.MatchString(h.Name):
		default:
			return nil, bad("unexpected entry %q", h.Name)
		}
		hash := sha256.New()
		var keep bytes.Buffer
		body := io.TeeReader(tr, hash)
		if h.Name == "site.key" || h.Name == "site-id" {
			body = io.TeeReader(body, &keep)
		}
		if save != nil {
			err = save(h.Name, body)
		} else {
			_, err = io.Copy(io.Discard, body)
		}
		if err != nil && save == nil {
			return nil, bad("%s: %v", h.Name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("restore %s (the backup may be cut short): %w", h.Name, err)
		}
		seen[h.Name] = File{Name: h.Name, Size: h.Size, SHA256: hex.EncodeToString(hash.Sum(nil))}
		switch h.Name {
		case "site.key":
			siteKey = keep.Bytes()
		case "site-id":
			siteID = keep.Bytes()
		}
	}
	if manifest == nil {
		return nil, bad("no %s: the backup is cut short", manifestName)
	}
	m := &Manifest{}
	d := json.NewDecoder(bytes.NewReader(manifest))
	d.DisallowUnknownFields()
	if err := d.Decode(m); err != nil {
		return nil, bad("manifest: %v", err)
	}
	if m.Format != Format || m.FormatVersion != FormatVersion {
		return nil, bad("format %q version %d; this dss-sync reads %q version %d", m.Format, m.FormatVersion, Format, FormatVersion)
	}
	if len(m.Files) != len(seen) {
		return nil, bad("the manifest lists %d files, the backup holds %d", len(m.Files), len(seen))
	}
	for _, f := range m.Files {
		got, ok := seen[f.Name]
		if !ok {
			return nil, bad("%s is listed but missing", f.Name)
		}
		if got != f {
			return nil, bad("%s does not match the manifest (size %d, sha256 %s; listed %d, %s): it was altered", f.Name, got.Size, got.SHA256, f.Size, f.SHA256)
		}
	}
	if siteKey == nil || siteID == nil {
		return nil, bad("site.key or site-id is missing")
	}
	if id := string(bytes.TrimSpace(siteID)); id != m.Site || !events.ValidSite(id) {
		return nil, bad("site-id holds %q, the manifest names site %q", id, m.Site)
	}
	payload, err := m.signingBytes()
	if err != nil {
		return nil, err
	}
	if err := m.Signature.Verify(payload); err != nil {
		return nil, bad("signature: %v", err)
	}
	pub, err := publicKey(siteKey)
	if err != nil {
		return nil, bad("site.key: %v", err)
	}
	if id := events.KeyID(pub); id != m.Signature.KeyID {
		return nil, bad("signed by key %s, but the site's key is %s", m.Signature.KeyID, id)
	}
	if opt.TrustKey != "" && m.Signature.KeyID != opt.TrustKey {
		return nil, bad("signed by key %s, not the trusted %s", m.Signature.KeyID, opt.TrustKey)
	}
	return m, nil
}

// publicKey returns the public half of a PEM PKCS #8 ed25519 key.
func publicKey(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an ed25519 key")
	}
	return key.Public().(ed25519.PublicKey), nil
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/dss-sync/dss-sync/events"
	"github.com/dss-sync/dss-sync/internal/backup"
)

// Backup writes a consistent backup of the running site to w: a Pebble
// checkpoint (made under <data-dir>/tmp and removed after) and the site's
// files (api.Backups).
func (m *Main) Backup(ctx context.Context, w io.Writer) error {
	var rnd [6]byte
	rand.Read(rnd[:])
	dir := m.dataPath("tmp", "backup-"+hex.EncodeToString(rnd[:]))
	if err := os.MkdirAll(m.dataPath("tmp"), 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	commit := m.Store.Last() // every commit durable now is in the checkpoint
	if err := m.Store.DB().Checkpoint(dir, cpebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	man, err := backup.Write(w, backup.Source{Site: m.Config.Site, Commit: commit, DataDir: m.Config.DataDir,
		Checkpoint: dir, Key: m.SigningKey, Now: time.Now()})
	if err != nil {
		return err
	}
	m.Logger.Info("backup taken", "commit", man.Commit, "files", len(man.Files), "key_id", man.Signature.KeyID)
	return nil
}

// holdWritesIfRestored holds the site's writes when its data dir was just
// restored from a backup (backup.RestoredMarker), and returns the run that
// releases them once the site has caught up with its peers: until then a
// new event of its own could reuse a seq its pre-restore self gave an event
// the peers hold, and fork its chain. With no peer there is nothing to
// catch up with: the marker goes at once, with a warning.
func (m *Main) holdWritesIfRestored() (func(context.Context) error, error) {
	marker := m.dataPath(backup.RestoredMarker)
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if m.Peers == nil {
		m.Logger.Warn("this site was restored from a backup and has no peers: it takes writes at once; events it made after the backup are lost")
		return nil, os.Remove(marker)
	}
	m.Site.HoldWrites(events.Errorf(events.EUNAVAILABLE,
		"this site was restored from a backup: it takes no writes until it has caught up with its peers (see /v1/sync/status and /readyz)"))
	m.Logger.Warn("restored from a backup: writes are held until this site has caught up with every peer")
	return func(ctx context.Context) error {
		if err := m.Peers.CatchUp(ctx, time.Second); err != nil {
			return err
		}
		if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.Logger.Error("caught up after the restore, but the marker stays; writes stay held", "path", marker, "err", err)
			return err
		}
		m.Site.HoldWrites(nil)
		m.Logger.Info("caught up with every peer after the restore: taking writes again")
		return nil
	}, nil
}

// runBackup is `dss-sync backup -o FILE`: it saves a running site's backup
// and checks it (manifest, hashes, signature) before keeping it.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs, getenv)
	out := fs.String("o", "", "output file (- for stdout); written 0600, kept only once checked")
	pos, err := parseFlags(fs, args, "dss-sync backup -o FILE")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{fmt.Errorf("backup takes no arguments, got %q", pos)}
	}
	var man *backup.Manifest
	err = writeOutput(*out, stdout, func(w io.Writer) error {
		pr, pw := io.Pipe()
		checked := make(chan error, 1)
		go func() {
			var err error
			man, err = backup.Verify(pr, backup.Options{})
			pr.CloseWithError(err) // unblock the download if the check stops early
			checked <- err
		}()
		err := cf.client().Download(ctx, "/v1/admin/backup", nil, io.MultiWriter(w, pw), nil)
		pw.CloseWithError(err)
		if cerr := <-checked; err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "backup of site %s: commit %d, %d files, signed by key %s\n", man.Site, man.Commit, len(man.Files), man.Signature.KeyID)
	return nil
}

// runRestore is `dss-sync restore FILE --data-dir DIR`.
func runRestore(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the data dir to restore into: new or empty")
	trust := fs.String("trust-key", "", "key id (16 hex digits) the backup must be signed with: the site's own")
	pos, err := parseFlags(fs, args, "dss-sync restore FILE --data-dir DIR [--trust-key ID]")
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataDir == "" {
		return usageError{fmt.Errorf("restore takes one backup file and --data-dir")}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	man, err := backup.Restore(f, *dataDir, backup.Options{TrustKey: *trust})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "restored site %s (commit %d, backup of %s) into %s; started, it takes writes once it has caught up with its peers\n",
		man.Site, man.Commit, man.CreatedAt.Format(time.RFC3339), *dataDir)
	return nil
}

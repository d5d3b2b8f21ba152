package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/internal/faultnet"
	"github.com/dss-sync/dss-sync/internal/pebble"
	"github.com/dss-sync/dss-sync/projections"
)

// TestBackupDuringWritesRestoresAndRejoins: paris takes a backup with
// `dss-sync backup` while a client writes to it; the writes go on after the
// backup and reach lyon. paris is then lost. The backup restores (only into
// an empty dir) to a consistent store (its projection equals a rebuild from
// its log). Started on it, paris refuses writes while it cannot reach lyon
// (its own later events are there: a new one would fork its chain); once
// the link is back, it catches up, its own post-backup events included, and
// takes writes that lyon accepts.
func TestBackupDuringWritesRestoresAndRejoins(t *testing.T) {
	tmp := t.TempDir()
	addrP, addrL := freeAddr(t), freeAddr(t)
	toL, err := faultnet.Listen("127.0.0.1:0", addrL)
	if err != nil {
		t.Fatal(err)
	}
	defer toL.Close()
	parisFlags := []string{"--nats-listen", addrP, "--peer", "nats://" + toL.Addr(), "--anti-entropy", "200ms"}
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", parisFlags...)
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--nats-listen", addrL, "--peer", "nats://"+addrP, "--anti-entropy", "200ms")
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("before", 20, 0)
	converge(t, 20*time.Second, 20, paris, lyon)

	// A client writes one token after another until told to stop.
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			path := fmt.Sprintf("w.t%04d", i)
			if got := call(t, paris.m.HTTPURL(), paris.key, "PUT", "/v1/projects/design/tokens/"+path, `{"$type":"number","$value":1}`, nil); got != 200 && got != 201 {
				t.Errorf("write %s: %d", path, got)
				return
			}
			mu.Lock()
			acked = append(acked, path)
			mu.Unlock()
		}
	}()
	waitFor(t, 10*time.Second, "the writer to be writing", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 10, fmt.Sprint(len(acked))
	})
	file := filepath.Join(tmp, "paris.dss-backup")
	code, _, errOut := cli(t, "backup", "-o", file, "--server", paris.m.HTTPURL(), "--token", paris.key)
	if code != 0 {
		t.Fatalf("dss-sync backup: %d %s", code, errOut)
	}
	if !strings.Contains(errOut, "backup of site paris") {
		t.Errorf("backup summary: %q", errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	mu.Lock()
	atBackup := len(acked)
	mu.Unlock()
	waitFor(t, 10*time.Second, "writes after the backup", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= atBackup+10, fmt.Sprint(len(acked) - atBackup)
	})
	close(stop)
	<-done
	total := 20 + len(acked)
	converge(t, 20*time.Second, total, paris, lyon)
	want := lyon.vector()

	// paris is lost.
	paris.stop()
	if code, _, errOut := cli(t, "restore", file, "--data-dir", paris.dir); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("restore over a data dir: %d %s", code, errOut)
	}
	restored := filepath.Join(tmp, "paris-restored")
	if code, _, errOut := cli(t, "restore", file, "--data-dir", restored); code != 0 {
		t.Fatalf("dss-sync restore: %d %s", code, errOut)
	}
	before, after := restoredProjection(t, restored)
	if before != after {
		t.Fatalf("the restored projection differs from a rebuild of its log:\n%.500s\n%.500s", before, after)
	}
	if n := strings.Count(before, `"path"`); n < 30 || n >= total {
		t.Fatalf("the backup holds %d tokens; taken mid-stream, it should hold some but not all of %d", n, total)
	}

	// Restarted on the backup while lyon is out of reach: no writes.
	toL.Cut()
	paris.dir = restored
	paris.restart()
	if got := paris.call("PUT", "/v1/projects/design/tokens/x.forked", `{"$type":"number","$value":1}`, nil); got != 503 {
		t.Fatalf("a write on the restored site before its catch-up: %d, want 503", got)
	}
	if got := paris.call("GET", "/readyz", "", nil); got != 503 {
		t.Errorf("/readyz before the catch-up: %d, want 503", got)
	}
	toL.Heal()
	waitFor(t, 20*time.Second, "the restored site to catch up and take writes", func() (bool, string) {
		got := paris.call("PUT", "/v1/projects/design/tokens/x.after", `{"$type":"number","$value":1}`, nil)
		return got == 200 || got == 201, fmt.Sprint(got)
	})
	if _, err := os.Stat(filepath.Join(restored, "restored")); !os.IsNotExist(err) {
		t.Errorf("the restore marker is still there: %v", err)
	}
	converge(t, 20*time.Second, total+1, paris, lyon)
	got := paris.vector()
	if got["paris"] != want["paris"]+1 || got["lyon"] != want["lyon"] {
		t.Errorf("vector after the catch-up and one write: %v; before the loss: %v", got, want)
	}
	for _, s := range []*testSite{paris, lyon} {
		var conflicts struct{ Conflicts []json.RawMessage }
		s.call("GET", "/v1/projects/design/conflicts", "", &conflicts)
		if len(conflicts.Conflicts) != 0 {
			t.Errorf("%s has conflicts after the restore: %s", s.name, conflicts.Conflicts)
		}
	}
}

// restoredProjection reads the tokens of a restored, stopped data dir,
// then rebuilds the projection from the log and reads them again.
func restoredProjection(t *testing.T, dir string) (before, after string) {
	t.Helper()
	ctx := context.Background()
	store, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	site, err := projections.NewSite(projections.SiteConfig{ID: "paris", Storage: store})
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		toks, _, err := site.Tokens(ctx, "design", projections.Query{Limit: projections.MaxLimit}, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(toks)
		return string(b)
	}
	before = read()
	if err := store.Rebuild(ctx, "design"); err != nil {
		t.Fatal(err)
	}
	return before, read()
}

package backup

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSite makes a data dir with the site's files and a "checkpoint" dir.
func fakeSite(t testing.TB, seed byte) (dataDir, checkpoint string, key ed25519.PrivateKey) {
	t.Helper()
	dataDir, checkpoint = t.TempDir(), t.TempDir()
	key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, body := range map[string][]byte{
		"site-id":   []byte("paris\n"),
		"site.key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"nats.nk":   []byte("SUAXXX\n"),
		"admin.key": []byte("dss_secret\n"),
	} {
		if err := os.WriteFile(filepath.Join(dataDir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"000004.sst": strings.Repeat("sst", 1000), "MANIFEST-000001": "m", "OPTIONS-000003": "o"} {
		if err := os.WriteFile(filepath.Join(checkpoint, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, checkpoint, key
}

func writeBackup(t testing.TB, seed byte) []byte {
	t.Helper()
	dataDir, cp, key := fakeSite(t, seed)
	var buf bytes.Buffer
	if _, err := Write(&buf, Source{Site: "paris", Commit: 42, DataDir: dataDir, Checkpoint: cp, Key: key, Now: time.Unix(1_800_000_000, 0)}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteVerifyRestore(t *testing.T) {
	b := writeBackup(t, 1)
	m, err := Verify(bytes.NewReader(b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Site != "paris" || m.Commit != 42 || len(m.Files) != 6 {
		t.Fatalf("manifest: %+v", m)
	}
	for _, f := range m.Files {
		if f.Name == "admin.key" {
			t.Fatal("the backup carries admin.key, a secret in clear")
		}
	}
	if _, err := Verify(bytes.NewReader(b), Options{TrustKey: m.Signature.KeyID}); err != nil {
		t.Fatalf("trusted key refused: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(bytes.NewReader(b), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"site-id", "site.key", "nats.nk", "pebble/000004.sst", "pebble/MANIFEST-000001", RestoredMarker} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s after restore: %v %v", name, fi, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "pebble/000004.sst")); string(got) != strings.Repeat("sst", 1000) {
		t.Fatal("a restored file differs")
	}
	// Into a non-empty dir: refused, and the dir is left alone.
	if _, err := Restore(bytes.NewReader(b), dir, Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over a data dir: %v", err)
	}
}

// rewrite copies a backup's entries through edit, which may change an
// entry's body (return nil to drop it) or add entries.
func rewrite(t *testing.T, b []byte, edit func(name string, body []byte) []byte, extra map[string][]byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for name, body := range extra {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if body = edit(h.Name, body); body == nil {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: h.Name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	tw.Close()
	return out.Bytes()
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	good := writeBackup(t, 1)
	other := writeBackup(t, 2)
	keep := func(_ string, b []byte) []byte { return b }
	var otherManifest, otherKey []byte
	rewrite(t, other, func(name string, b []byte) []byte {
		switch name {
		case manifestName:
			otherManifest = b
		case "site.key":
			otherKey = b
		}
		return b
	}, nil)
	for _, tc := range []struct {
		name string
		b    []byte
		opt  Options
		want string
	}{
		{"a flipped byte", rewrite(t, good, func(n string, b []byte) []byte {
			if n == "pebble/000004.sst" {
				b[10] ^= 1
			}
			return b
		}, nil), Options{}, "altered"},
		{"cut short", good[:len(good)/2], Options{}, "invalid backup"},
		{"a dropped file", rewrite(t, good, func(n string, b []byte) []byte {
			if n == "pebble/OPTIONS-000003" {
				return nil
			}
			return b
		}, nil), Options{}, "lists 6 files"},
		{"a path outside", rewrite(t, good, keep, map[string][]byte{"../evil": []byte("x")}), Options{}, "unexpected entry"},
		{"a nested path", rewrite(t, good, keep, map[string][]byte{"pebble/a/b": []byte("x")}), Options{}, "unexpected entry"},
		{"an extra file", rewrite(t, good, keep, map[string][]byte{"pebble/000009.sst": []byte("x")}), Options{}, "lists 6 files"},
		{"another site's manifest", rewrite(t, good, func(n string, b []byte) []byte {
			if n == manifestName {
				return otherManifest
			}
			return b
		}, nil), Options{}, "altered"},
		{"another key swapped in", rewrite(t, good, func(n string, b []byte) []byte {
			if n == "site.key" {
				return otherKey
			}
			return b
		}, nil), Options{}, "altered"},
		{"an untrusted signer", good, Options{TrustKey: "0123456789abcdef"}, "not the trusted"},
		{"not a tar", []byte("hello"), Options{}, "invalid backup"},
		{"a sparse file of 100 GB in 3 KB", sparseBackup(t), Options{}, "is a sparse file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(bytes.NewReader(tc.b), tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: %v, want an error with %q", err, tc.want)
			}
			dir := filepath.Join(t.TempDir(), "data")
			if _, err := Restore(bytes.NewReader(tc.b), dir, tc.opt); err == nil {
				t.Fatal("Restore accepted it")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("a refused restore left %s behind: %v", dir, err)
			}
			left, _ := os.ReadDir(filepath.Dir(dir))
			if len(left) != 0 {
				t.Fatalf("a refused restore left %v", left)
			}
		})
	}
}

// sparseBackup is a tar whose one entry, pebble/000001.sst, is a PAX GNU
// sparse file (format 1.0) of 100 GB, all hole, in 3 KB: tar.Writer cannot
// write one, so its PAX header is written as a plain entry and retyped.
func sparseBackup(t testing.TB) []byte {
	t.Helper()
	record := func(k, v string) string {
		r := " " + k + "=" + v + "\n"
		for n := len(r); ; {
			s := strconv.Itoa(n) + r
			if len(s) == n {
				return s
			}
			n = len(s)
		}
	}
	pax := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") +
		record("GNU.sparse.name", "pebble/000001.sst") + record("GNU.sparse.realsize", "100000000000")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "x", Typeflag: tar.TypeReg, Size: int64(len(pax)), Mode: 0o600, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(pax))
	tw.Flush()
	hdr := buf.Bytes()[:512]
	hdr[156] = tar.TypeXHeader
	copy(hdr[148:156], "        ") // the checksum counts its own field as spaces
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	sparseMap := append([]byte("1\n0\n0\n"), make([]byte, 512-6)...) // one data run: offset 0, length 0
	if err := tw.WriteHeader(&tar.Header{Name: "pebble/000001.sst", Typeflag: tar.TypeReg, Size: int64(len(sparseMap)), Mode: 0o600, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(sparseMap)
	tw.Close()
	return buf.Bytes()
}

func FuzzVerify(f *testing.F) {
	f.Add(writeBackup(f, 3))
	f.Add(sparseBackup(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Verify(bytes.NewReader(b), Options{})
		if err == nil && (m.Signature == nil || m.Format != Format) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

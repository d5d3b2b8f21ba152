package archive

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzLimits are small, so that a bomb the fuzzer finds costs little.
var fuzzLimits = Limits{MaxArchiveBytes: 1 << 20, MaxEntryBytes: 64 << 10, MaxRatio: 50, MaxEntries: 8}

// FuzzOpen feeds arbitrary bytes to Open and, when they are accepted, reads
// every entry to the end. It must never panic, and never read more than the
// limits allow; what it accepts completely, archive/zip must read identically.
func FuzzOpen(f *testing.F) {
	for _, dir := range []string{hostileDir, validDir} {
		files, err := filepath.Glob(filepath.Join(dir, "*.dss"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add(buildZip(f, zent{name: ManifestName, store: true, body: []byte("{}")}))
	f.Add(buildZip(f, zent{name: TokensName, body: bytes.Repeat([]byte("ab"), 1000)}))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(bytes.NewReader(data), int64(len(data)), nil, fuzzLimits)
		if err != nil {
			probs := Problems(err)
			if len(probs) == 0 {
				t.Fatalf("Open refused with no problems: %v", err)
			}
			for _, p := range probs {
				if p.Msg == "" {
					t.Fatalf("a problem without a message: %+v", p)
				}
			}
			return
		}
		names := r.Names()
		if !slices.IsSorted(names) || len(names) > fuzzLimits.MaxEntries {
			t.Fatalf("Names: got %q", names)
		}
		for _, n := range names {
			if !slices.Contains(Names, n) {
				t.Fatalf("accepted the name %q", n)
			}
			e, err := r.Entry(n)
			if err != nil {
				t.Fatalf("Entry(%q) of an accepted name: %v", n, err)
			}
			got, err := io.ReadAll(e)
			e.Close()
			if e.Size() > fuzzLimits.MaxEntryBytes || int64(len(got)) != e.Size() {
				t.Fatalf("%s: read %d bytes (Size %d), limit %d", n, len(got), e.Size(), fuzzLimits.MaxEntryBytes)
			}
			if e.Sum() != sha256.Sum256(got) {
				t.Fatalf("%s: Sum differs from the bytes returned", n)
			}
			if err != nil {
				var ae *Error
				if !errors.As(err, &ae) {
					t.Fatalf("%s: a read failure that is not an *Error: %v", n, err)
				}
				continue
			}
			// Accepted whole: archive/zip must agree, byte for byte.
			if want, zerr := readWithArchiveZip(data, n); zerr != nil {
				t.Fatalf("%s: accepted here, refused by archive/zip: %v", n, zerr)
			} else if !bytes.Equal(got, want) {
				t.Fatalf("%s: content differs from archive/zip's", n)
			}
		}
	})
}

// readWithArchiveZip reads the entry name of data with archive/zip alone.
func readWithArchiveZip(data []byte, name string) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, err
	}
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	return nil, errors.New("not found")
}

package archive

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestEntrySumAndSize(t *testing.T) {
	r := mustOpen(t, readFile(t, minimalDSS))
	for _, n := range Names {
		t.Run(n, func(t *testing.T) {
			e, err := r.Entry(n)
			if err != nil {
				t.Fatalf("Entry: %v", err)
			}
			defer e.Close()
			if got := e.Size(); got != 0 {
				t.Errorf("Size before reading: got %d, want 0", got)
			}
			if got, want := e.Sum(), sha256.Sum256(nil); got != want {
				t.Errorf("Sum before reading: got %x, want the hash of nothing %x", got, want)
			}
			got, err := io.ReadAll(e)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			want := minimalContent[n]
			if string(got) != want {
				t.Errorf("content: got %q, want %q", got, want)
			}
			if e.Size() != int64(len(want)) {
				t.Errorf("Size: got %d, want %d", e.Size(), len(want))
			}
			if e.Sum() != sha256.Sum256([]byte(want)) {
				t.Errorf("Sum: got %x, want %x", e.Sum(), sha256.Sum256([]byte(want)))
			}
			if n, err := e.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF: got %d, %v, want 0, io.EOF", n, err)
			}
		})
	}
}

// TestEntryLyingBomb reads the fixture whose central directory declares
// 10,000 bytes for 50 MB of zeros: the read must stop just past the declared
// size, with allocations nowhere near the bomb's size.
func TestEntryLyingBomb(t *testing.T) {
	b := readFile(t, filepath.Join(hostileDir, "bomb-lying.dss"))
	r := mustOpen(t, b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e, err := r.Entry(EventsName)
	if err != nil {
		t.Fatalf("Entry: %v", err)
	}
	var total int64
	buf := make([]byte, 32<<10)
	for {
		n, err := e.Read(buf)
		total += int64(n)
		if err != nil {
			wantRefusal(t, err, "more than its declared size of 10000 bytes")
			break
		}
		if total > 1<<20 {
			t.Fatalf("read %d bytes of a bomb declared as 10000, want it stopped", total)
		}
	}
	e.Close()
	runtime.ReadMemStats(&after)
	if total > 10000 || e.Size() != total {
		t.Errorf("bytes returned: got %d (Size %d), want at most the declared 10000", total, e.Size())
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(1<<20); got > limit {
		t.Errorf("reading the bomb allocated %d bytes, want at most %d (the bomb is 50 MB)", got, limit)
	}
	// The error is sticky.
	if _, err := e.Read(buf); err == nil {
		t.Errorf("Read after the refusal: got no error")
	}
}

// TestEntryLyingBombAllocs checks with testing.AllocsPerRun that reading the
// lying bomb costs a fixed number of allocations, however large it would be.
func TestEntryLyingBombAllocs(t *testing.T) {
	r := mustOpen(t, readFile(t, filepath.Join(hostileDir, "bomb-lying.dss")))
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(5, func() {
		e, err := r.Entry(EventsName)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := e.Read(buf); err != nil {
				break
			}
		}
		e.Close()
	})
	if allocs > 50 {
		t.Errorf("allocations per read of the bomb: got %v, want at most 50", allocs)
	}
}

// TestEntryReadTimeLimits drives the read-time bounds directly: Open keeps
// every declared size within the limits, so through Open the declared size
// is always the first bound reached, and these two are defence in depth.
func TestEntryReadTimeLimits(t *testing.T) {
	cases := []struct {
		name     string
		declared uint64
		csize    uint64
		lim      Limits
		want     string
		wantRead int64
	}{
		{"entry bytes", 1 << 40, 1 << 30, Limits{MaxEntryBytes: 1000}, "decompresses to more than the limit of 1000 bytes", 1000},
		{"ratio", 1 << 40, 10, Limits{MaxRatio: 100}, "decompresses to more than 100 times its 10 compressed bytes", 1000},
		{"declared", 500, 10, Limits{}, "more than its declared size of 500 bytes", 500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEntryReader(TokensName, zeros{}, nil, nil, c.declared, c.csize, 0, c.lim)
			n, err := io.Copy(io.Discard, e)
			wantRefusal(t, err, c.want)
			if n != c.wantRead || e.Size() != c.wantRead {
				t.Errorf("bytes read: got %d (Size %d), want exactly %d, the bound", n, e.Size(), c.wantRead)
			}
		})
	}
}

// countingReader counts the bytes it hands out.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestEntryAsksNoMoreThanOnePastTheLimit(t *testing.T) {
	src := &countingReader{r: zeros{}}
	e := newEntryReader(TokensName, src, nil, nil, 100, 100, 0, Limits{})
	_, err := e.Read(make([]byte, 1<<20))
	if err != nil || e.Size() != 100 {
		t.Fatalf("first read: got %d bytes, %v; want 100, nil", e.Size(), err)
	}
	_, err = e.Read(make([]byte, 1<<20))
	wantRefusal(t, err, "declared size")
	if src.n != 101 {
		t.Errorf("decompressed: got %d bytes, want 101 (one past the limit)", src.n)
	}
}

func TestEntryCloseThenRead(t *testing.T) {
	r := mustOpen(t, readFile(t, minimalDSS))
	e, err := r.Entry(ManifestName)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err = e.Read(make([]byte, 10))
	wantRefusal(t, err, "read after Close")
	if err := e.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}

func TestEntryUnknown(t *testing.T) {
	r := mustOpen(t, readFile(t, minimalDSS))
	_, err := r.Entry("../../etc/passwd")
	wantRefusal(t, err, "no such entry")
	_, err = r.ReadAll("nope", 10)
	wantRefusal(t, err, "nope: no such entry")
}

func TestEntryStored(t *testing.T) {
	body := []byte(`{"stored":true}`)
	b := buildZip(t, zent{name: TokensName, store: true, body: body})
	r := mustOpen(t, b)
	got, err := r.ReadAll(TokensName, 0)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("ReadAll: got %q, %v; want %q", got, err, body)
	}
}

func TestEntryEmpty(t *testing.T) {
	for _, store := range []bool{false, true} {
		r := mustOpen(t, buildZip(t, zent{name: EventsName, store: store}))
		got, err := r.ReadAll(EventsName, 1)
		if err != nil || len(got) != 0 {
			t.Fatalf("store %v: got %q, %v; want an empty entry", store, got, err)
		}
	}
}

// TestEntryCRCZeroArchiveZipAccepts documents why the CRC is compared here
// even when the record holds 0: archive/zip reads that fixture without error.
func TestEntryCRCZeroArchiveZipAccepts(t *testing.T) {
	b := readFile(t, filepath.Join(hostileDir, "crc-zero.dss"))
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Logf("archive/zip now refuses a CRC of 0 (%v); the check here stays", err)
	}
	r := mustOpen(t, b)
	_, err = r.ReadAll(TokensName, 0)
	wantRefusal(t, err, "checksum mismatch")
}

func TestReadAll(t *testing.T) {
	r := mustOpen(t, readFile(t, minimalDSS))
	want := minimalContent[ManifestName]
	cases := []struct {
		name    string
		max     int64
		wantErr string
	}{
		{"ample", 1 << 20, ""},
		{"exact", int64(len(want)), ""},
		{"default", 0, ""},
		{"one short", int64(len(want)) - 1, "manifest.json: is 30 bytes, more than the 29 bytes accepted for it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.ReadAll(ManifestName, c.max)
			if c.wantErr != "" {
				wantRefusal(t, err, c.wantErr)
				return
			}
			if err != nil || string(got) != want {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestReadAllRefusesWhatReadingFinds(t *testing.T) {
	for _, name := range []string{"bomb-lying", "crc-mismatch", "short-entry", "corrupt-deflate", "descriptor-mismatch"} {
		t.Run(name, func(t *testing.T) {
			r := mustOpen(t, readFile(t, filepath.Join(hostileDir, name+".dss")))
			n := r.Names()[0]
			got, err := r.ReadAll(n, 0)
			if err == nil || got != nil {
				t.Fatalf("got %d bytes, %v; want nil and an error", len(got), err)
			}
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *Error", err)
			}
		})
	}
}

// TestEntryConcurrent reads every entry at once from one Reader (run with -race).
func TestEntryConcurrent(t *testing.T) {
	r := mustOpen(t, readFile(t, minimalDSS))
	var wg sync.WaitGroup
	for range 4 {
		for _, n := range Names {
			wg.Go(func() {
				got, err := r.ReadAll(n, 0)
				if err != nil || string(got) != minimalContent[n] {
					t.Errorf("%s: got %q, %v", n, got, err)
				}
			})
		}
	}
	wg.Wait()
}

// flakyReaderAt serves data until a read reaches failAt, then fails with failErr.
type flakyReaderAt struct {
	data    []byte
	failAt  int64
	failErr error
}

func (f *flakyReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.failAt {
		return 0, f.failErr
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}

func TestEntrySourceFailsWhileReading(t *testing.T) {
	b := readFile(t, minimalDSS)
	src := &flakyReaderAt{data: b, failAt: 1 << 40, failErr: errDisk}
	r, err := Open(src, int64(len(b)), nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	src.failAt = 0
	_, err = r.ReadAll(TokensName, 0)
	if !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want the source's error wrapped", err)
	}
	if !strings.Contains(err.Error(), "tokens.json") {
		t.Errorf("got %q, want the entry named", err)
	}
}

func TestEntryDescriptorWithoutSignature(t *testing.T) {
	// A data descriptor without its optional signature starts with the CRC.
	body := []byte(`{"x":1}`)
	b := buildZip(t, zent{name: TokensName, store: true, body: body})
	i := bytes.Index(b, []byte("PK\x07\x08"))
	if i < 0 {
		t.Fatal("no data descriptor")
	}
	// Drop the 4 signature bytes and move the central directory offset.
	b = append(b[:i:i], b[i+4:]...)
	end := bytes.LastIndex(b, []byte("PK\x05\x06"))
	put32(b, end+16, binary.LittleEndian.Uint32(b[end+16:])-4)

	got, err := mustOpen(t, b).ReadAll(TokensName, 0)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("got %q, %v; want %q", got, err, body)
	}
	put32(b, i, 0x12345678)
	_, err = mustOpen(t, b).ReadAll(TokensName, 0)
	wantRefusal(t, err, "its data descriptor records CRC-32 12345678")
}

package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestTLSReloadsOnSIGHUP: a site serving HTTPS is sent SIGHUP after its
// certificate files are replaced: new connections get the new certificate,
// a connection opened before keeps working, and a broken pair is refused
// with the old certificate kept in use.
func TestTLSReloadsOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	bin := buildBinary(t)
	tmp := t.TempDir()
	live := filepath.Join(tmp, "live")
	os.Mkdir(live, 0o700)
	certA, keyA := selfSignedCertNamed(t, filepath.Join(tmp), "cert-a")
	dirB := filepath.Join(tmp, "b")
	os.Mkdir(dirB, 0o700)
	certB, keyB := selfSignedCertNamed(t, dirB, "cert-b")
	cert, key := filepath.Join(live, "tls.crt"), filepath.Join(live, "tls.key")
	install := func(c, k string) {
		for src, dst := range map[string]string{c: cert, k: key} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(certA, keyA)
	p := startProc(t, bin, filepath.Join(tmp, "data"), "paris", "--tls-cert", cert, "--tls-key", key)

	pool := x509.NewCertPool()
	for _, c := range []string{certA, certB} {
		b, _ := os.ReadFile(c)
		pool.AppendCertsFromPEM(b)
	}
	newClient := func() *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, MaxConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	}
	// served returns the common name of the certificate a request got, and
	// whether it reused an open connection.
	served := func(c *http.Client) (string, bool) {
		t.Helper()
		reused := false
		req, _ := http.NewRequest("GET", p.http+"/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		io.Copy(io.Discard, res.Body) // read to the end, so the connection can be reused
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET /healthz: %s", res.Status)
		}
		return res.TLS.PeerCertificates[0].Subject.CommonName, reused
	}
	old := newClient()
	if cn, _ := served(old); cn != "cert-a" {
		t.Fatalf("first certificate: %s", cn)
	}

	install(certB, keyB)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "new connections to get the new certificate", func() (bool, string) {
		cn, _ := served(newClient())
		return cn == "cert-b", cn
	})
	if cn, reused := served(old); !reused || cn != "cert-a" {
		t.Errorf("the connection opened before the reload: reused %v, certificate %s; want it kept, with cert-a", reused, cn)
	}

	// A broken pair: refused, the site keeps serving the one it has.
	os.WriteFile(key, []byte("not a key"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the refusal in the log", func() (bool, string) {
		p.logMutex.Lock()
		defer p.logMutex.Unlock()
		return bytes.Contains(p.logs.Bytes(), []byte("TLS certificate not reloaded")), ""
	})
	if cn, _ := served(newClient()); cn != "cert-b" {
		t.Errorf("after a failed reload: %s, want cert-b still", cn)
	}
	select {
	case <-p.exited:
		t.Fatal("the site exited on SIGHUP")
	default:
	}
}

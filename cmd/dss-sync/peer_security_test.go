package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dss-sync/dss-sync/internal/jetstream"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// TestPeersAuthenticateWithNkeys: paris and lyon each list the other's
// public nkey (--peer-nkey); they replicate. mallory, whose key paris does
// not list, cannot connect and says why in its status; and lyon, though
// allowed in, can only read: it can neither publish into paris's stream nor
// purge or delete it, nor take paris's anti-entropy requests.
func TestPeersAuthenticateWithNkeys(t *testing.T) {
	tmp := t.TempDir()
	dirs := map[string]string{}
	pubs := map[string]string{}
	for _, n := range []string{"paris", "lyon", "mallory"} {
		dirs[n] = filepath.Join(tmp, n)
		code, out, errOut := cli(t, "nkey", "--data-dir", dirs[n])
		if code != 0 {
			t.Fatalf("dss-sync nkey: %d %s", code, errOut)
		}
		pubs[n] = strings.TrimSpace(out)
		if !strings.HasPrefix(pubs[n], "U") || len(pubs[n]) != 56 {
			t.Fatalf("dss-sync nkey printed %q", out)
		}
		if fi, err := os.Stat(filepath.Join(dirs[n], "nats.nk")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("nkey seed file: %v %v", fi, err)
		}
	}
	if _, again, _ := cli(t, "nkey", "--data-dir", dirs["paris"]); strings.TrimSpace(again) != pubs["paris"] {
		t.Fatal("dss-sync nkey changed the site's key on a second run")
	}
	addrP, addrL := freeAddr(t), freeAddr(t)
	fast := []string{"--anti-entropy", "200ms"}
	paris := startSite(t, dirs["paris"], "paris", append([]string{"--nats-listen", addrP, "--peer", "nats://" + addrL, "--peer-nkey", pubs["lyon"]}, fast...)...)
	lyon := startSite(t, dirs["lyon"], "lyon", append([]string{"--nats-listen", addrL, "--peer", "nats://" + addrP, "--peer-nkey", pubs["paris"]}, fast...)...)
	mallory := startSite(t, dirs["mallory"], "mallory", append([]string{"--peer", "nats://" + addrP, "--peer-nkey", pubs["lyon"]}, fast...)...)

	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("p", 10, 0)
	lyon.hasProject()
	lyon.write("l", 10, 0)
	converge(t, 20*time.Second, 20, paris, lyon)
	waitFor(t, 10*time.Second, "mallory's status to show the refusal", func() (bool, string) {
		st := mallory.status()
		p := st.Peers[0]
		return p.Connection != "connected" && strings.Contains(strings.ToLower(p.Error), "authorization"), fmt.Sprintf("%+v", p)
	})
	if got := mallory.call("GET", "/v1/projects/design", "", nil); got != 404 {
		t.Errorf("mallory got paris's project: %d", got)
	}

	// Without any key, nobody gets in.
	if nc, err := nats.Connect("nats://"+addrP, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("paris's NATS server let in a client without an nkey")
	}
	// With lyon's key: reading works, writing and deleting do not.
	seed, _, err := siteNkey(dirs["lyon"])
	if err != nil {
		t.Fatal(err)
	}
	opt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 16)
	nc, err := nats.Connect("nats://"+addrP, opt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("lyon's key refused: %v", err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc)
	ctx := t.Context()
	st, err := js.Stream(ctx, jetstream.StreamName("paris"))
	if err != nil {
		t.Fatalf("lyon's key cannot read paris's stream: %v", err)
	}
	before, _ := st.Info(ctx)
	// Each refused operation fails, and the server says why (asynchronously).
	refused := func(what string, op func(context.Context) error) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if err := op(c); err == nil {
			t.Errorf("lyon's key %s", what)
		}
		select {
		case err := <-violations:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Errorf("lyon's key %s: the server said %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("lyon's key %s: no permissions violation reported", what)
		}
	}
	refused("published into paris's stream", func(c context.Context) error {
		_, err := js.Publish(c, jetstream.EventSubject("paris", "design"), []byte(`{}`))
		return err
	})
	refused("deleted paris's stream", func(c context.Context) error { return js.DeleteStream(c, jetstream.StreamName("paris")) })
	refused("purged paris's stream", func(c context.Context) error { return st.Purge(c) })
	refused("deleted a message of paris's stream", func(c context.Context) error { return st.DeleteMsg(c, 1) })
	refused("subscribed to paris's anti-entropy requests", func(context.Context) error {
		if _, err := nc.SubscribeSync("dss.paris.sync.>"); err != nil {
			return err
		}
		return errors.New("refused asynchronously")
	})
	after, err := st.Info(ctx)
	if err != nil || after.State.Msgs != before.State.Msgs || after.State.FirstSeq != before.State.FirstSeq {
		t.Errorf("paris's stream changed under lyon's key: %+v -> %+v (%v)", before.State, after.State, err)
	}
}

// TestPeersOverTLS: paris's embedded NATS server serves TLS
// (--nats-tls-cert/--nats-tls-key); lyon trusts its CA (--nats-tls-ca) and
// replicates over tls://; a client without TLS is refused.
func TestPeersOverTLS(t *testing.T) {
	tmp := t.TempDir()
	cert, key := selfSignedCert(t, tmp)
	addrP := freeAddr(t)
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", "--nats-listen", addrP, "--nats-tls-cert", cert, "--nats-tls-key", key)
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--peer", "tls://"+addrP, "--nats-tls-ca", cert, "--anti-entropy", "200ms")
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("p", 10, 0)
	converge(t, 20*time.Second, 10, paris, lyon)
	if nc, err := nats.Connect("nats://"+addrP, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("paris's TLS NATS server accepted a plain connection")
	}
	// A peer that does not trust the CA is refused and says so.
	other := startSite(t, filepath.Join(tmp, "other"), "other", "--peer", "tls://"+addrP, "--anti-entropy", "200ms")
	waitFor(t, 10*time.Second, "the untrusting peer's status to show the TLS failure", func() (bool, string) {
		p := other.status().Peers[0]
		return p.Connection != "connected" && strings.Contains(p.Error, "certificate"), fmt.Sprintf("%+v", p)
	})
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its
// key, PEM, into dir.
func selfSignedCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	return selfSignedCertNamed(t, dir, "dss-sync test")
}

// selfSignedCertNamed is selfSignedCert with the certificate's common name.
func selfSignedCertNamed(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "nats.crt"), filepath.Join(dir, "nats.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// How sites authenticate to each other's NATS servers. Each site has an
// nkey (an ed25519 key pair in NATS's encoding), its seed kept in
// <data-dir>/nats.nk (0600) and created on first use; `dss-sync nkey` prints
// its public half. A site started with --peer-nkey for each site allowed to
// pull from it requires an nkey of every client of its embedded server: its
// own connections use the site's nkey and may do anything, the listed peers
// may only read (jetstream.PeerPermissions). A site connects to its peers
// with its own nkey, unless --nats-nkey or --nats-creds names another.

// siteNkey returns the path of the site's nkey seed and its public key,
// creating the seed on first use.
func siteNkey(dataDir string) (path, public string, err error) {
	path = filepath.Join(dataDir, "nats.nk")
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", "", err
		}
		if seed, err = kp.Seed(); err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return "", "", err
		}
		if err := writeFileAtomic(path, append(seed, '\n'), 0o600); err != nil {
			return "", "", fmt.Errorf("write nkey seed: %w", err)
		}
	} else if err != nil {
		return "", "", fmt.Errorf("read nkey seed: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	defer kp.Wipe()
	if public, err = kp.PublicKey(); err != nil {
		return "", "", err
	}
	if !nkeys.IsValidPublicUserKey(public) {
		return "", "", fmt.Errorf("%s holds a %c key seed; a user nkey (U...) is needed", path, public[0])
	}
	return path, public, nil
}

// runNkey is `dss-sync nkey`: print the site's public nkey, for the other
// sites' --peer-nkey.
func runNkey(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nkey", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	dataDir := fs.String("data-dir", "./data", "the site's data dir (the seed is created there when absent)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Errorf("%w\n\nusage: dss-sync nkey [--data-dir DIR]\n%s", err, flagHelp(fs))}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("nkey takes no arguments, got %q", fs.Args())}
	}
	_, public, err := siteNkey(*dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, public)
	return nil
}

// outgoingNATSOptions are the options of the connections this site opens to
// NATS servers it does not run: --nats-url and every --peer.
func (m *Main) outgoingNATSOptions() ([]nats.Option, error) {
	c := &m.Config
	var opts []nats.Option
	switch {
	case c.NATSCreds != "":
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	case c.NATSNkey != "":
		o, err := nats.NkeyOptionFromSeed(c.NATSNkey)
		if err != nil {
			return nil, fmt.Errorf("invalid --nats-nkey: %w", err)
		}
		opts = append(opts, o)
	case len(c.PeerNkeys) > 0:
		path, _, err := siteNkey(c.DataDir)
		if err != nil {
			return nil, err
		}
		o, err := nats.NkeyOptionFromSeed(path)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if c.NATSTLSCA != "" {
		pem, err := os.ReadFile(c.NATSTLSCA)
		if err != nil {
			return nil, fmt.Errorf("invalid --nats-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("invalid --nats-tls-ca %s: no PEM certificate in it", c.NATSTLSCA)
		}
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}))
	}
	return opts, nil
}

// embeddedNATS returns the embedded server's TLS configuration and the
// options of the site's own connection to it. The own connection trusts
// exactly the server's certificate (pinned), whatever names it carries.
func (m *Main) embeddedNATS() (*tls.Config, []nats.Option, error) {
	c := &m.Config
	var opts []nats.Option
	var serverTLS *tls.Config
	if c.NATSTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.NATSTLSCert, c.NATSTLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid --nats-tls-cert/--nats-tls-key: %w", err)
		}
		serverTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		leaf := cert.Certificate[0]
		opts = append(opts, nats.Secure(&tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // replaced by the pin below
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], leaf) {
					return errors.New("the embedded NATS server presented a certificate other than --nats-tls-cert")
				}
				return nil
			},
		}))
	}
	if len(c.PeerNkeys) > 0 {
		path, _, err := siteNkey(c.DataDir)
		if err != nil {
			return nil, nil, err
		}
		o, err := nats.NkeyOptionFromSeed(path)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, o)
	}
	return serverTLS, opts, nil
}

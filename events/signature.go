package events

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// SignatureAlg is the one signature algorithm archives and audit exports use.
const SignatureAlg = "ed25519"

// Signature is an ed25519 signature over a document's canonical bytes,
// with the signer's public key, so anyone can check it offline. KeyID names
// the key (the first 8 bytes of SHA-256 of the public key, in hex); a site
// that wants to trust only known signers compares it with theirs.
type Signature struct {
	Alg       string `json:"alg"`
	KeyID     string `json:"keyId"`
	PublicKey string `json:"publicKey"` // base64 (standard, padded)
	Value     string `json:"value"`     // base64
}

// KeyID returns the id of a public key.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Sign signs payload with key.
func Sign(payload []byte, key ed25519.PrivateKey) *Signature {
	pub := key.Public().(ed25519.PublicKey)
	return &Signature{
		Alg:       SignatureAlg,
		KeyID:     KeyID(pub),
		PublicKey: base64.StdEncoding.EncodeToString(pub),
		Value:     base64.StdEncoding.EncodeToString(ed25519.Sign(key, payload)),
	}
}

// Verify checks that s is a valid signature of payload by the key it names,
// and that its key id is that key's.
func (s *Signature) Verify(payload []byte) error {
	if s == nil {
		return errors.New("no signature")
	}
	if s.Alg != SignatureAlg {
		return fmt.Errorf("unknown signature algorithm %q", s.Alg)
	}
	pub, err := base64.StdEncoding.DecodeString(s.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("the signature's public key is not an ed25519 key")
	}
	if KeyID(pub) != s.KeyID {
		return fmt.Errorf("key id %q does not name the signature's public key", s.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("the signature value is not an ed25519 signature")
	}
	if !ed25519.Verify(pub, payload, sig) {
		return errors.New("the signature does not match the content: it was altered, or signed by another key")
	}
	return nil
}

// SigningBytes returns what a document's signature covers: the canonical
// JSON (Canonicalize) of v, which must be the document with its signature
// field cleared.
func SigningBytes(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}

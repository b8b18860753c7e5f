package signing

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The SSH signature format (OpenSSH's PROTOCOL.sshsig), so that `ssh-keygen -Y verify` checks
// what backupd signs and backupd checks what `ssh-keygen -Y sign` signs.
//
// Blob:
//
//	"SSHSIG" uint32(1) string(publickey) string(namespace) string(reserved)
//	string(hash_algorithm) string(signature)
//
// Signed data:
//
//	"SSHSIG" string(namespace) string(reserved) string(hash_algorithm) string(H(message))
//
// The namespace is inside the signed data, so a signature made for one kind of object never
// verifies as another kind, whatever the blob's own namespace field says.
const (
	sigMagic    = "SSHSIG"
	sigVersion  = 1
	armorBegin  = "-----BEGIN SSH SIGNATURE-----"
	armorEnd    = "-----END SSH SIGNATURE-----"
	armorWidth  = 70 // what ssh-keygen writes; any width is read
	hashSHA512  = "sha512"
	hashSHA256  = "sha256"
	maxFieldLen = 1 << 10 // longer than any Ed25519 key, namespace or signature field
)

// MaxSignatureSize caps the armored signature read before any decoding. An Ed25519 signature is
// about 300 bytes; ssh-keygen's largest (RSA 16384) stays under 8 KiB.
const MaxSignatureSize = 8 << 10

// sshsig is a decoded signature blob.
type sshsig struct {
	publicKey ssh.PublicKey
	namespace string
	hashAlg   string
	signature *ssh.Signature
}

// signedData is what the key actually signs: the namespace and the message's hash.
func signedData(namespace, hashAlg string, msg []byte) ([]byte, error) {
	var h []byte
	switch hashAlg {
	case hashSHA512:
		s := sha512.Sum512(msg)
		h = s[:]
	case hashSHA256:
		s := sha256.Sum256(msg)
		h = s[:]
	default:
		return nil, fmt.Errorf("%w: hash algorithm %q is not sha512 or sha256", ErrMalformed, hashAlg)
	}
	var b bytes.Buffer
	b.WriteString(sigMagic)
	putString(&b, []byte(namespace))
	putString(&b, nil) // reserved
	putString(&b, []byte(hashAlg))
	putString(&b, h)
	return b.Bytes(), nil
}

func putString(b *bytes.Buffer, s []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	b.Write(n[:])
	b.Write(s)
}

// marshalBlob returns the binary signature blob.
func marshalBlob(pub ssh.PublicKey, namespace, hashAlg string, sig *ssh.Signature) []byte {
	var b bytes.Buffer
	b.WriteString(sigMagic)
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], sigVersion)
	b.Write(v[:])
	putString(&b, pub.Marshal())
	putString(&b, []byte(namespace))
	putString(&b, nil)
	putString(&b, []byte(hashAlg))
	putString(&b, ssh.Marshal(sig))
	return b.Bytes()
}

// armor wraps a blob as ssh-keygen writes it: base64 in lines of 70 between BEGIN/END lines.
func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorWidth {
		b.WriteString(enc[:armorWidth] + "\n")
		enc = enc[armorWidth:]
	}
	b.WriteString(enc + "\n")
	b.WriteString(armorEnd + "\n")
	return b.Bytes()
}

// dearmor extracts the blob from an armored signature. Only the armor itself and the base64
// alphabet are accepted: anything else around it is a sign of a file that is not a signature.
func dearmor(data []byte) ([]byte, error) {
	if len(data) > MaxSignatureSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a signature can be", ErrMalformed, len(data), MaxSignatureSize)
	}
	s := strings.TrimSpace(string(data))
	if !strings.HasPrefix(s, armorBegin) {
		return nil, fmt.Errorf("%w: does not start with %q", ErrMalformed, armorBegin)
	}
	if !strings.HasSuffix(s, armorEnd) {
		return nil, fmt.Errorf("%w: does not end with %q", ErrMalformed, armorEnd)
	}
	if len(s) < len(armorBegin)+len(armorEnd) { // the two lines overlap: no body at all
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	body := s[len(armorBegin) : len(s)-len(armorEnd)]
	body = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, body)
	blob, err := base64.StdEncoding.Strict().DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: the body is not base64: %v", ErrMalformed, err)
	}
	return blob, nil
}

// parseSignature decodes an armored SSHSIG signature. It checks the structure only; whether
// the signature matches a message is checkSignature's job.
func parseSignature(data []byte) (*sshsig, error) {
	blob, err := dearmor(data)
	if err != nil {
		return nil, err
	}
	r := reader{buf: blob}
	if magic := r.bytes(len(sigMagic)); string(magic) != sigMagic {
		return nil, fmt.Errorf("%w: no %s preamble", ErrMalformed, sigMagic)
	}
	if v, ok := r.uint32(); !ok || v != sigVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, sigVersion)
	}
	pub, ns, reserved, hashAlg, sigb := r.string(), r.string(), r.string(), r.string(), r.string()
	if r.err != nil {
		return nil, r.err
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(r.buf))
	}
	_ = reserved // reserved for future use: ssh-keygen ignores its content, so do we
	key, err := ssh.ParsePublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	if key.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("%w: made with a %s key; backupd signs and trusts only ssh-ed25519 keys", ErrMalformed, key.Type())
	}
	if h := string(hashAlg); h != hashSHA512 && h != hashSHA256 {
		return nil, fmt.Errorf("%w: hash algorithm %q is not sha512 or sha256", ErrMalformed, sanitize(h))
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(sigb, sig); err != nil {
		return nil, fmt.Errorf("%w: signature field: %v", ErrMalformed, err)
	}
	if len(sig.Rest) != 0 {
		return nil, fmt.Errorf("%w: signature field carries %d extra bytes", ErrMalformed, len(sig.Rest))
	}
	return &sshsig{publicKey: key, namespace: string(ns), hashAlg: string(hashAlg), signature: sig}, nil
}

// reader reads SSH wire strings, remembering the first error so a parse reads straight through.
type reader struct {
	buf []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.buf) {
		r.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// bytesRest returns what is left.
func (r *reader) bytesRest() []byte {
	b := r.buf
	r.buf = nil
	return b
}

func (r *reader) uint32() (uint32, bool) {
	b := r.bytes(4)
	if b == nil {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

func (r *reader) string() []byte {
	n, ok := r.uint32()
	if !ok {
		return nil
	}
	if n > maxFieldLen {
		r.err = fmt.Errorf("%w: a field claims %d bytes, more than %d", ErrMalformed, n, maxFieldLen)
		return nil
	}
	return r.bytes(int(n))
}

// sanitize makes attacker-chosen text safe to put in an error message: printable ASCII only,
// and short.
func sanitize(s string) string {
	const max = 64
	var b strings.Builder
	for _, c := range []byte(s) {
		if b.Len() >= max {
			b.WriteString("…")
			break
		}
		if c < 0x20 || c > 0x7e {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/backupd/backupd/internal/fileperm"
)

// maxKeyFileSize caps what is read from a key file: an OpenSSH Ed25519 key is about 400 bytes.
const maxKeyFileSize = 64 << 10

// LoadKey reads an unencrypted OpenSSH Ed25519 private key (as `ssh-keygen -t ed25519 -N ""`
// or GenerateKey writes it). A file with group or other permission bits is refused: the key
// decides which sets every host trusts.
func LoadKey(path string) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if err := CheckKeyFileMode(path, st); err != nil {
		return nil, err
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("signing key %s is %d bytes, not an OpenSSH Ed25519 private key", path, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	return ParseKey(path, data)
}

// ParseKey parses the contents of a key file; name is only used in messages.
func ParseKey(name string, data []byte) (*Signer, error) {
	raw, err := ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("signing key %s is protected by a passphrase: backupd signs unattended, so give it a key without one (ssh-keygen -t ed25519 -N '' -f FILE)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s is not an OpenSSH private key (%v): point signing.key_file at a key from ssh-keygen -t ed25519, or remove the file to have backupd generate one", name, err)
	}
	var priv ed25519.PrivateKey
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		priv = *k
	case ed25519.PrivateKey:
		priv = k
	default:
		return nil, fmt.Errorf("signing key %s is a %T, not an Ed25519 key: backupd signs only with ssh-ed25519 keys (ssh-keygen -t ed25519)", name, raw)
	}
	return NewSigner(priv, commentOf(data))
}

// commentOf returns the comment stored in an OpenSSH private key, which ParseRawPrivateKey
// drops; empty when there is none or the file is not in that format.
func commentOf(data []byte) string {
	block, _ := pem.Decode(data)
	if block == nil {
		return ""
	}
	// The parsed form of an unencrypted key: ssh.ParseRawPrivateKey has already validated it.
	_, comment, err := parseOpenSSHComment(block.Bytes)
	if err != nil {
		return ""
	}
	return comment
}

// CheckKeyFileMode refuses a key file that group or others may read or write, by the one rule
// of package fileperm (root:GROUP 0640 for a service account in GROUP included).
func CheckKeyFileMode(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("signing key %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			groups, _ := os.Getgroups()
			if fileperm.Private(sys.Uid, sys.Gid, perm, os.Geteuid(), append(groups, os.Getegid())) {
				return nil
			}
		}
		return fmt.Errorf("signing key %s has mode %04o, open to group or others: run chmod 600 %s (or, for a service account, chown root:GROUP and chmod 640)", path, perm, path)
	}
	return nil
}

// GenerateKey writes a new Ed25519 key to path in OpenSSH PEM format, mode 0600, and returns it.
// The file is written under a temporary name in the same directory, synced, then linked into
// place, which fails if path exists: two processes starting at once never replace a key the
// other has already signed with. The error wraps fs.ErrExist in that case.
func GenerateKey(path, comment string) (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create directory for the signing key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // created 0600
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, block); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("install signing key %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("sync directory of the signing key: %w", err)
	}
	return NewSigner(priv, comment)
}

// LoadOrGenerateKey loads the key at path, generating it first when the file does not exist.
// generated reports whether this call made it.
func LoadOrGenerateKey(path, comment string) (s *Signer, generated bool, err error) {
	s, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	s, err = GenerateKey(path, comment)
	if errors.Is(err, fs.ErrExist) {
		s, err = LoadKey(path) // another process made it first
		return s, false, err
	}
	return s, err == nil, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// parseOpenSSHComment reads the comment of an unencrypted "openssh-key-v1" private key:
// magic, cipher, kdf, kdf options, key count, public key, then the private section
// (two check words, key type, public, private, comment, padding).
func parseOpenSSHComment(b []byte) (keyType, comment string, err error) {
	const magic = "openssh-key-v1\x00"
	r := reader{buf: b}
	if string(r.bytes(len(magic))) != magic {
		return "", "", errors.New("not an openssh-key-v1 key")
	}
	cipher := r.string()
	r.string() // kdf name
	r.string() // kdf options
	if n, ok := r.uint32(); !ok || n != 1 {
		return "", "", errors.New("not exactly one key")
	}
	r.string() // public key
	priv := reader{buf: r.bytesRest()}
	if r.err != nil || string(cipher) != "none" {
		return "", "", errors.New("encrypted or truncated")
	}
	sect := reader{buf: priv.string()}
	sect.uint32()
	sect.uint32()
	typ := sect.string()
	sect.string() // public
	sect.string() // private
	c := sect.string()
	if priv.err != nil || sect.err != nil {
		return "", "", errors.New("truncated")
	}
	return string(typ), string(c), nil
}

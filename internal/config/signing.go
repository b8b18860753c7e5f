package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/backupd/backupd/internal/signing"
)

// DefaultSigningKeyName is the signing key's file under state_dir when signing.key_file is not
// given.
const DefaultSigningKeyName = "signing.key"

// Signing is who signs what this host writes to the targets, and whose signatures it trusts
// (signing:). Sets, claims and reports are only believed when signed by a trusted key.
type Signing struct {
	// KeyFile holds this host's Ed25519 private key in OpenSSH format; absolute. Default
	// <state_dir>/signing.key. A host that writes backups generates it there on first use; a
	// host that only restores never needs it. Checked at load time only when it exists.
	KeyFile string
	// TrustedKeys are the public keys whose signatures count, as `ssh-ed25519 AAAA… comment`
	// lines: `trusted_keys:`, then the non-comment lines of trusted_keys_file, without
	// duplicates, each accepted by signing.ParseTrustedKey. Several keys serve key rotation and
	// several writer hosts. Empty: this host's own public key (from KeyFile) is the only
	// trusted one — right for a single host that backs up and restores; every other host
	// lists the writers' keys (`backupd signing-key` on a writer prints its line).
	TrustedKeys     []string
	TrustedKeysFile string // absolute; empty when not configured
}

func signingFields(s *Signing) fields {
	return fields{
		"key_file":          pathField(&s.KeyFile),
		"trusted_keys":      strList(&s.TrustedKeys),
		"trusted_keys_file": pathField(&s.TrustedKeysFile),
	}
}

const trustedKeyHint = "give an Ed25519 public key line, `ssh-ed25519 AAAA… comment`, as `backupd signing-key` prints it on the host that writes the backups"

// checkSigning validates signing: and sets its defaults; it runs after state_dir is known.
func (d *decoder) checkSigning(c *Config) {
	s := &c.Signing
	if s.KeyFile == "" {
		s.KeyFile = filepath.Join(c.StateDir, DefaultSigningKeyName)
	}
	seen := map[string]string{} // fingerprint -> where it was first given
	var keys []string
	add := func(where, p, file string, line int, text string) {
		k, err := signing.ParseTrustedKey(text)
		if err != nil {
			msg := fmt.Sprintf("%s: %v", where, err)
			if file != "" {
				d.problem(file, line, p, msg, trustedKeyHint)
			} else {
				d.report(p, msg, trustedKeyHint)
			}
			return
		}
		if first, dup := seen[k.Fingerprint]; dup {
			msg := fmt.Sprintf("%s is the same key (%s) as %s", where, k.Fingerprint, first)
			if file != "" {
				d.problem(file, line, p, msg, "list each key once")
			} else {
				d.report(p, msg, "list each key once")
			}
			return
		}
		seen[k.Fingerprint] = where
		keys = append(keys, k.AuthorizedKey)
	}
	for i, line := range s.TrustedKeys {
		p := indexPath("signing.trusted_keys", i)
		if d.bad[p] {
			continue
		}
		add(p, p, "", 0, line)
	}
	if s.TrustedKeysFile != "" {
		d.listFile(s.TrustedKeysFile, "signing.trusted_keys_file", func(shown string, n int, line string) {
			add(fmt.Sprintf("%s line %d", shown, n), "signing.trusted_keys_file", shown, n, line)
		})
	}
	s.TrustedKeys = keys
	d.checkSigningKeyFile(s.KeyFile)
}

// checkSigningKeyFile checks the key file only if it exists: a restore host has none, and a
// backup host generates it on its first run.
func (d *decoder) checkSigningKeyFile(path string) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		_, err = signing.LoadKey(path)
	}
	if err != nil {
		d.report("signing.key_file", err.Error(), "")
	}
}

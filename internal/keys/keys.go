// Package keys finds the age keys a job needs from the configuration: the public recipients a
// backup encrypts to, and the identities restore, drill and verify decrypt with.
package keys

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/fileperm"
	"github.com/backupd/backupd/internal/seal"
)

// Recipients returns the public keys backups are encrypted to: encryption.recipients (and
// recipients_file). When none are configured but identity_file is, the public key is derived from
// it — and when that file does not exist yet, a new key is generated there with a loud warning,
// so the very first backup on a fresh machine is encrypted rather than refused.
func Recipients(cfg *config.Config, log *slog.Logger) ([]age.Recipient, []string, error) {
	strs := cfg.Encryption.Recipients
	if len(strs) == 0 {
		path := cfg.Encryption.IdentityFile
		if path == "" {
			return nil, nil, errors.New("no encryption recipients configured: add encryption.recipients (age1… or ssh-ed25519 public keys) or encryption.identity_file to the config")
		}
		pubs, err := seal.PublicKeyOf(path)
		if errors.Is(err, fs.ErrNotExist) {
			pub, gerr := seal.GenerateKey(path, time.Now())
			if gerr != nil {
				return nil, nil, fmt.Errorf("generate a first age key: %w", gerr)
			}
			log.Warn("NO ENCRYPTION KEY WAS CONFIGURED: generated a new age key. Store a copy of it somewhere safe and apart from the backups — without it nobody can restore them.",
				"identity_file", path, "public_key", pub)
			fmt.Fprintf(os.Stderr, "\n*** backupd generated a new encryption key: %s\n*** Copy it somewhere safe, away from the backups. Without it the backups cannot be restored.\n\n", path)
			pubs = []string{pub}
		} else if err != nil {
			return nil, nil, fmt.Errorf("derive recipients from identity_file: %w", err)
		}
		strs = pubs
	}
	recs, err := seal.ParseRecipients(strs)
	if err != nil {
		return nil, nil, fmt.Errorf("encryption.recipients: %w", err)
	}
	return recs, strs, nil
}

// Identities loads the private keys for decryption: override (a --identity flag) if given,
// otherwise encryption.identity_file.
func Identities(cfg *config.Config, override string) ([]age.Identity, error) {
	path := override
	if path == "" {
		path = cfg.Encryption.IdentityFile
	}
	if path == "" {
		return nil, errors.New("no identity to decrypt with: pass --identity FILE or set encryption.identity_file")
	}
	return seal.LoadIdentities(path)
}

// DedupKey returns the secret that names storage blobs (package storage's NameKey):
// encryption.dedup_key_file, or <state_dir>/dedup.key, generated with 32 random bytes on first
// use. It is not an encryption key: losing it costs deduplication against earlier sets, never
// data, because a set's index says where every byte is.
func DedupKey(cfg *config.Config, log *slog.Logger) ([]byte, error) {
	path := cfg.Encryption.DedupKeyFile
	if path == "" {
		if err := fileperm.PrivateDir(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("create the state directory (state_dir): %w", err)
		}
		path = filepath.Join(cfg.StateDir, "dedup.key")
	}
	if err := fileperm.CheckPrivate(path, "dedup key"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(data)))
		if derr != nil || len(key) < 16 {
			return nil, fmt.Errorf("dedup key %s is not at least 16 bytes of hex; restore it from a copy, or delete it to start a new one (the next storage snapshot then uploads everything again)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read dedup key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate dedup key: %w", err)
	}
	err = fileperm.WriteKey(path, []byte(hex.EncodeToString(key)+"\n"))
	if errors.Is(err, fs.ErrExist) {
		return DedupKey(cfg, log) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("write dedup key: %w", err)
	}
	log.Info("generated a new dedup key for storage snapshots; share it with other hosts backing up the same storage via encryption.dedup_key_file", "path", path)
	return key, nil
}

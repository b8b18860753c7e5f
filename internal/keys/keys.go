// Package keys finds the age keys a job needs from the configuration: the public recipients a
// backup encrypts to, and the identities restore, drill and verify decrypt with.
package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/config"
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

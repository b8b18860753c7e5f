package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/signing"
)

// Signer returns this host's signing key from signing.key_file. A host that writes backups
// generates it there on first use, like the age key, and says so loudly: the other hosts must
// be told its public key before they trust what it writes.
func Signer(cfg *config.Config, log *slog.Logger) (*signing.Signer, error) {
	path := cfg.Signing.KeyFile
	if path == "" {
		return nil, errors.New("no signing key file: set signing.key_file (config.Load sets a default under state_dir)")
	}
	s, generated, err := signing.LoadOrGenerateKey(path, signingKeyComment())
	if err != nil {
		return nil, err
	}
	if generated {
		pub := s.Public()
		log.Warn("GENERATED A NEW SIGNING KEY: every host that lists, restores or drills these backups must trust it; add its public key line to signing.trusted_keys there (backupd signing-key prints it)",
			"key_file", path, "fingerprint", pub.Fingerprint, "public_key", pub.AuthorizedKey)
		if len(cfg.Signing.TrustedKeys) > 0 && !trusts(cfg, pub) {
			log.Warn("this host's new signing key is not in its own signing.trusted_keys: the sets it writes will be untrusted until the line is added",
				"public_key", pub.AuthorizedKey)
		}
	}
	return s, nil
}

// Verifier returns the verifier for cfg's trusted keys and one sentence saying where its trust
// comes from, for list and check-config. With signing.trusted_keys empty, this host's own key
// is the one trusted key (a single host that backs up and restores needs no configuration); a
// host without its own key then trusts nothing, and the sentence says how to fix that.
func Verifier(cfg *config.Config) (*signing.Verifier, string, error) {
	if len(cfg.Signing.TrustedKeys) > 0 {
		var keys []signing.KeyInfo
		for _, line := range cfg.Signing.TrustedKeys {
			k, err := signing.ParseTrustedKey(line)
			if err != nil { // config.Load has checked every line; a Config built by hand may not be
				return nil, "", fmt.Errorf("signing.trusted_keys: %w", err)
			}
			keys = append(keys, k)
		}
		return signing.NewVerifier(keys...), fmt.Sprintf("%d key(s) from signing.trusted_keys", len(keys)), nil
	}
	own, err := OwnSigningKey(cfg)
	if err != nil {
		return nil, "", err
	}
	if own == nil {
		return signing.NewVerifier(), fmt.Sprintf("no trusted key: signing.trusted_keys is empty and this host has no signing key (%s), "+
			"so no set counts as committed; add the backup hosts' key lines (backupd signing-key on each prints its own) to signing.trusted_keys", cfg.Signing.KeyFile), nil
	}
	return signing.NewVerifier(*own), fmt.Sprintf("this host's own signing key %s (signing.trusted_keys is empty)", own.Fingerprint), nil
}

// OwnSigningKey returns the public half of this host's signing key, or nil when the key file
// does not exist (a restore host; a backup host before its first run). It never generates one.
func OwnSigningKey(cfg *config.Config) (*signing.KeyInfo, error) {
	s, err := signing.LoadKey(cfg.Signing.KeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k := s.Public()
	return &k, nil
}

func trusts(cfg *config.Config, k signing.KeyInfo) bool {
	for _, line := range cfg.Signing.TrustedKeys {
		if t, err := signing.ParseTrustedKey(line); err == nil && t.Fingerprint == k.Fingerprint {
			return true
		}
	}
	return false
}

// TrustsOwnKey reports whether this host's own key is among the trusted ones (always, when
// trusted_keys is empty). A backup host whose key is not trusted writes sets nobody counts.
func TrustsOwnKey(cfg *config.Config, own signing.KeyInfo) bool {
	return len(cfg.Signing.TrustedKeys) == 0 || trusts(cfg, own)
}

func signingKeyComment() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "backupd@" + host
}

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/signing"
)

func init() {
	register(&command{
		name:    "signing-key",
		summary: "print this host's public signing key line, for signing.trusted_keys on the other hosts",
		run:     runSigningKey,
	})
}

// runSigningKey prints this host's public key line (generating the key on first use, as the
// first backup would), or with --allowed-signers the trusted keys as an OpenSSH allowed_signers
// file for checking a signature by hand with ssh-keygen -Y verify.
func runSigningKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("signing-key", "[--config FILE] [--allowed-signers]", stdout)
	path := fs.String("config", "", "config file (default: the embedded default config)")
	allowed := fs.Bool("allowed-signers", false, "print the trusted keys as an allowed_signers file for ssh-keygen -Y verify (docs/verify-signatures.md)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *allowed {
		return writeAllowedSigners(stdout, stderr, cfg)
	}
	s, err := keys.Signer(cfg, newLogger(ctx, stderr, false))
	if err != nil {
		return &operatorError{err: err}
	}
	fmt.Fprintln(stdout, s.Public().AuthorizedKey)
	if !keys.TrustsOwnKey(cfg, s.Public()) {
		fmt.Fprintf(stderr, "warning: this key (%s) is not in this host's signing.trusted_keys: the sets it writes are untrusted here too; add the line above\n", s.Public().Fingerprint)
	}
	return nil
}

func writeAllowedSigners(stdout, stderr io.Writer, cfg *config.Config) error {
	v, source, err := keys.Verifier(cfg)
	if err != nil {
		return &operatorError{err: err}
	}
	ks := v.Keys()
	if len(ks) == 0 {
		return &operatorError{err: fmt.Errorf("%s", source)}
	}
	fmt.Fprintf(stdout, "# backupd trusted signing keys: %s\n", source)
	for _, k := range ks {
		fmt.Fprintln(stdout, signing.AllowedSignersLine(k))
	}
	return nil
}

// writeSigningSummary is check-config's account of signing: which key this host signs with and
// which keys it trusts, so a missing trust is seen before the first set is listed as untrusted.
func writeSigningSummary(w io.Writer, cfg *config.Config) {
	own, err := keys.OwnSigningKey(cfg)
	switch {
	case err != nil:
		// config.Load has already refused a bad key file; this is a race with its removal.
		fmt.Fprintf(w, "signing key: %s: %v\n", cfg.Signing.KeyFile, err)
	case own == nil:
		fmt.Fprintf(w, "signing key: %s (not there yet: the first backup generates it; backupd signing-key prints its public line)\n", cfg.Signing.KeyFile)
	default:
		fmt.Fprintf(w, "signing key: %s, %s\n", cfg.Signing.KeyFile, own)
	}
	if own == nil && len(cfg.Signing.TrustedKeys) == 0 && len(cfg.Policies) > 0 {
		fmt.Fprintln(w, "trusted signing keys: this host's own key once the first backup generates it (signing.trusted_keys is empty)")
		return
	}
	v, source, err := keys.Verifier(cfg)
	if err != nil {
		fmt.Fprintf(w, "trusted signing keys: %v\n", err)
		return
	}
	fmt.Fprintf(w, "trusted signing keys: %s\n", source)
	if len(cfg.Signing.TrustedKeys) > 0 {
		for _, k := range v.Keys() {
			fmt.Fprintf(w, "  %s\n", k)
		}
	}
	if own != nil && !keys.TrustsOwnKey(cfg, *own) && len(cfg.Policies) > 0 {
		fmt.Fprintf(w, "warning: this host's signing key is not in signing.trusted_keys: the sets it writes are untrusted; add %q\n", own.AuthorizedKey)
	}
}

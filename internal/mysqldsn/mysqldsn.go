// Package mysqldsn parses every MySQL/MariaDB DSN backupd opens, with the client settings no
// configuration may loosen.
//
// allowAllFiles would let the server ask the client for any file it can read (LOAD DATA LOCAL
// INFILE '/path'): a statement in a forged backup set, or a hostile server, could then read the
// age identity or any other secret of the backup host. backupd's own LOAD DATA LOCAL uses
// registered readers only, so it is never needed; a DSN that asks for it is refused rather than
// silently changed, so the operator learns that the setting does nothing.
package mysqldsn

import (
	"errors"

	"github.com/go-sql-driver/mysql"
)

// ErrAllowAllFiles is returned for a DSN with allowAllFiles=true.
var ErrAllowAllFiles = errors.New("the DSN sets allowAllFiles=true, which would let the server read any file of this host: remove it (backupd never needs it)")

// Parse parses dsn with mysql.ParseDSN and forces AllowAllFiles off; a DSN that turns it on is
// refused with ErrAllowAllFiles. Parse errors are the driver's (the caller redacts them).
func Parse(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.AllowAllFiles {
		return nil, ErrAllowAllFiles
	}
	Harden(cfg)
	return cfg, nil
}

// Harden forces the settings of cfg that no DSN may loosen. It is for configs built in code.
func Harden(cfg *mysql.Config) {
	cfg.AllowAllFiles = false
}

// Check reports whether dsn may be opened: nil, ErrAllowAllFiles, or the driver's parse error.
func Check(dsn string) error {
	_, err := Parse(dsn)
	return err
}

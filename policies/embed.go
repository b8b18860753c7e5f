// Package policies ships example configurations with backupd; Default is the configuration
// `backupd backup` uses when no --config is given.
package policies

import _ "embed"

// Default is policies/default.yaml: the local MariaDB backed up to ./backups.
//
//go:embed default.yaml
var Default []byte

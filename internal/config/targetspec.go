package config

import "github.com/backupd/backupd/internal/targets"

// Spec is what package targets needs to open this target.
func (t *Target) Spec() targets.Spec {
	return targets.Spec{
		Type:         t.Type,
		Path:         t.Path,
		Endpoint:     t.Endpoint,
		Region:       t.Region,
		Bucket:       t.Bucket,
		Prefix:       t.Prefix,
		AccessKey:    t.AccessKey,
		SecretKey:    t.SecretKey,
		BucketLookup: t.BucketLookup,
		CAFile:       t.CAFile,
		PartSize:     t.PartSize,

		ObjectLockDays: t.ObjectLockDays,
		ObjectLockMode: t.ObjectLockMode,
	}
}

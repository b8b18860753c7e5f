package config

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/backupd/backupd/internal/storage"
)

// StorageSource is one entry of a policy's `storage:` list: a local directory (`path:`) or a
// bucket on the application's own S3 provider (`s3:`), snapshotted into every set.
type StorageSource struct {
	Name    string
	Path    string     // absolute; empty for a bucket source
	S3      *StorageS3 // nil for a directory source
	Exclude []string   // glob patterns
}

// StorageS3 is a bucket read as a tree.
type StorageS3 struct {
	Endpoint, Region, Bucket, Prefix string
	AccessKey, SecretKey             string // secrets
	BucketLookup                     string
	CAFile                           string
}

// Spec is what package storage needs to snapshot this source.
func (s *StorageSource) Spec() storage.SourceSpec {
	spec := storage.SourceSpec{Name: s.Name, Path: s.Path, Exclude: s.Exclude}
	if s.S3 != nil {
		spec.S3 = &storage.S3Source{
			Endpoint: s.S3.Endpoint, Region: s.S3.Region, Bucket: s.S3.Bucket, Prefix: s.S3.Prefix,
			AccessKey: s.S3.AccessKey, SecretKey: s.S3.SecretKey, BucketLookup: s.S3.BucketLookup, CAFile: s.S3.CAFile,
		}
	}
	return spec
}

func storageField(dst *[]*StorageSource) field {
	return func(d *decoder, n *yaml.Node, p string) {
		var out []*StorageSource
		d.list(n, p, func(d *decoder, n *yaml.Node, p string) {
			s := &StorageSource{}
			d.mapping(n, p, storageFields(s))
			out = append(out, s) // kept even when bad, so indexes in later messages stay right
		})
		*dst = out
	}
}

func storageFields(s *StorageSource) fields {
	return fields{
		"name":    str(&s.Name),
		"path":    pathField(&s.Path),
		"exclude": strList(&s.Exclude),
		"s3": func(d *decoder, n *yaml.Node, p string) {
			s.S3 = &StorageS3{Region: DefaultRegion, BucketLookup: BucketLookupAuto}
			fs := fields{
				"endpoint":      str(&s.S3.Endpoint),
				"region":        str(&s.S3.Region),
				"bucket":        str(&s.S3.Bucket),
				"prefix":        str(&s.S3.Prefix),
				"bucket_lookup": oneOf(&s.S3.BucketLookup, BucketLookupAuto, BucketLookupPath, BucketLookupDNS),
				"ca_file":       pathField(&s.S3.CAFile),
			}
			secret(fs, "access_key", &s.S3.AccessKey)
			secret(fs, "secret_key", &s.S3.SecretKey)
			d.mapping(n, p, fs)
		},
	}
}

// checkStorage validates a policy's storage sources.
func (d *decoder) checkStorage(p string, list []*StorageSource) {
	seen := map[string]int{}
	for i, s := range list {
		ip := indexPath(p, i)
		if d.bad[ip] {
			continue
		}
		switch {
		case s.Name == "":
			d.missing(ip, "name", "a short name restore selects the source by, e.g. name: uploads")
		case seen[s.Name] > 0:
			d.report(joinPath(ip, "name"), fmt.Sprintf("storage name %q is used twice (also storage[%d])", s.Name, seen[s.Name]-1), "give every source its own name")
		default:
			d.checkName(joinPath(ip, "name"), "storage source", s.Name)
		}
		seen[s.Name] = i + 1
		switch {
		case s.Path != "" && s.S3 != nil:
			d.report(ip, "both path and s3 are given", "a source is either a local directory (path:) or a bucket (s3:)")
			continue
		case s.Path == "" && s.S3 == nil && !d.bad[joinPath(ip, "path")] && !d.bad[joinPath(ip, "s3")]:
			d.report(ip, "the source says neither path nor s3", "add path: /srv/app/storage/app, or s3: {endpoint, bucket, access_key, secret_key}")
			continue
		}
		if s.S3 != nil {
			sp := joinPath(ip, "s3")
			if s.S3.Endpoint == "" {
				d.missing(sp, "endpoint", "e.g. endpoint: https://s3.eu-central-1.amazonaws.com")
			} else if u, err := url.Parse(s.S3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.report(joinPath(sp, "endpoint"), "endpoint is not an http(s) URL", "e.g. https://s3.eu-central-1.amazonaws.com")
			}
			if s.S3.Bucket == "" {
				d.missing(sp, "bucket", "the bucket holding the application's files")
			}
			if s.S3.AccessKey == "" {
				d.missingSecret(sp, "access_key", "an access key allowed to list and read the bucket")
			}
			if s.S3.SecretKey == "" {
				d.missingSecret(sp, "secret_key", "the access key's secret")
			}
			if s.S3.Prefix != "" && !strings.HasSuffix(s.S3.Prefix, "/") {
				s.S3.Prefix += "/"
			}
		}
		// files validates what only it knows, such as the glob syntax of exclude.
		if err := s.Spec().Validate(); err != nil && s.Name != "" && (s.S3 == nil || (s.S3.Endpoint != "" && s.S3.Bucket != "")) {
			d.report(ip, err.Error(), "fix the source as the message says")
		}
	}
}

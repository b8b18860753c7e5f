package config

import (
	"path/filepath"
	"testing"
)

func TestStorageOnlyPolicy(t *testing.T) {
	dir := t.TempDir()
	yml := `
targets:
  local: {type: dir, path: ./b}
encryption: {identity_file: ./key.txt}
policies:
  files:
    schedule: "@hourly"
    targets: [local]
    storage:
      - name: uploads
        path: ./storage/app
        exclude: ["*.tmp"]
      - name: media
        s3: {endpoint: "http://127.0.0.1:9000", bucket: media, prefix: pub, access_key: k, secret_key: s}
`
	c, err := Parse([]byte(yml), "test.yaml", dir)
	if err != nil {
		t.Fatalf("a storage-only policy: %v", err)
	}
	p := c.Policies["files"]
	if p.MySQL != nil || len(p.Storage) != 2 {
		t.Fatalf("got mysql %v and %d storage sources, want none and 2", p.MySQL, len(p.Storage))
	}
	up, media := p.Storage[0].Spec(), p.Storage[1].Spec()
	if want := filepath.Join(dir, "storage/app"); up.Path != want {
		t.Errorf("path = %q, want %q (resolved against the config's directory)", up.Path, want)
	}
	if media.S3 == nil || media.S3.Prefix != "pub/" || media.S3.Region != DefaultRegion || media.S3.SecretKey != "s" {
		t.Errorf("s3 source = %+v, want prefix pub/, default region and the secret", media.S3)
	}
	if err := up.Validate(); err != nil {
		t.Errorf("the spec of a valid source does not validate: %v", err)
	}
}

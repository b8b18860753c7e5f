package backup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// TestPackGoneBeforeCommit: a pack of the set vanishes from one target after the storage
// snapshot and before the manifest (garbage collection on a host with a skewed clock, a
// lifecycle rule). The job fails naming the pack and the target, and no target gets the
// manifest, not even the intact one.
func TestPackGoneBeforeCommit(t *testing.T) {
	minio, vgw := testenv.MinIO(t), testenv.Versity(t)
	mb, vb := testenv.NewBucket(t, minio), testenv.NewBucket(t, vgw)
	dir := t.TempDir()
	pub, err := seal.GenerateKey(filepath.Join(dir, "key.txt"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	for i := range 20 {
		p := filepath.Join(tree, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprint(i), 1000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s3 := func(srv testenv.S3, bucket string) string {
		return fmt.Sprintf("{type: s3, endpoint: %s, region: %s, bucket: %s, bucket_lookup: path, access_key: %s, secret_key: %s}",
			srv.Endpoint, srv.Region, bucket, srv.AccessKey, srv.SecretKey)
	}
	policy := testenv.UniqueName("packgone")
	yml := fmt.Sprintf(`
targets:
  minio: %s
  versity: %s
encryption: {recipients: [%s], identity_file: ./key.txt}
policies:
  %s:
    schedule: "@daily"
    targets: [minio, versity]
    storage:
      - {name: app, path: ./tree}
`, s3(minio, mb), s3(vgw, vb), pub, policy)
	cfg, err := config.Parse([]byte(yml), filepath.Join(dir, "backupd.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	var deleted string
	testHookBeforeCommit = func(ctx context.Context, dests []backupset.Dest) {
		for _, d := range dests {
			if d.Name != "minio" {
				continue
			}
			d.Target.List(ctx, policy+"/blobs/packs/", func(oi targets.ObjectInfo) error {
				if deleted == "" && strings.HasSuffix(oi.Key, ".zst.age") && !strings.HasSuffix(oi.Key, ".hdr.zst.age") {
					deleted = oi.Key
				}
				return nil
			})
			if err := d.Target.Delete(ctx, deleted); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { testHookBeforeCommit = nil }()

	ctx := context.Background()
	signer, err := keys.Signer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, cfg, cfg.Policies[policy], Options{Signer: signer})
	if deleted == "" {
		t.Fatal("the hook found no pack to delete")
	}
	want := fmt.Sprintf("pack %s, which this set references, is gone from target minio", deleted)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %q", err, want)
	}
	if res.Committed != 0 {
		t.Errorf("got the set committed on %d targets, want none", res.Committed)
	}
	for _, name := range []string{"minio", "versity"} {
		tg, err := targets.Open(name, cfg.Targets[name].Spec(), targets.Options{})
		if err != nil {
			t.Fatal(err)
		}
		sets, err := backupset.SetKeys(ctx, tg, policy)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sets {
			if s.Committed {
				t.Errorf("target %s: set %s has a manifest; want no set committed", name, s.ID)
			}
		}
	}
	t.Logf("error: %.400v", err)
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/testenv"
)

// TestBackupWithStorage backs up a database and a storage directory into one set on MinIO and
// versitygw, twice, and restores the tree from the second set: one job makes one set with one
// manifest, and an unchanged tree costs the second set almost nothing.
func TestBackupWithStorage(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minioSrv, versity := testenv.MinIO(t), testenv.Versity(t)
	sak := testenv.LoadSakila(t, dsn)
	mBucket, vBucket := testenv.NewBucket(t, minioSrv), testenv.NewBucket(t, versity)
	keyFile, pub := testKey(t)

	tree := t.TempDir()
	for i := range 200 {
		p := filepath.Join(tree, "uploads", fmt.Sprintf("d%02d", i%7), fmt.Sprintf("file %03d ü.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(fmt.Sprintf("content of file %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(tree, "skip.tmp"), []byte("excluded"), 0o600)

	policy := testenv.UniqueName("withfiles")
	cfgPath := writeConfig(t, fmt.Sprintf(`
targets:
  minio:%s
  versity:%s
encryption: {recipients: [%s], identity_file: %s}
policies:
  %s:
    schedule: "@daily"
    mysql: {dsn: %s, databases: [%s]}
    storage:
      - {name: app, path: %s, exclude: ["*.tmp"]}
    targets: [minio, versity]
`, s3TargetYAML(minioSrv, mBucket), s3TargetYAML(versity, vBucket), pub, keyFile, policy, yamlString(dsn), yamlString(sak), tree))

	newBytes := func(out string) int64 {
		m := regexp.MustCompile(`storage app: 200 files, .*?, ([\d.]+) (B|KiB|MiB) new`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("backup summary does not report the storage snapshot of 200 files:\n%s", out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return int64(v * map[string]float64{"B": 1, "KiB": 1024, "MiB": 1 << 20}[m[2]])
	}
	code, out1, errOut := runCLI(t, "backup", "--config", cfgPath, "--policy", policy)
	if code != 0 {
		t.Fatalf("first backup: exit %d\n%s%s", code, out1, errOut)
	}
	code, out2, errOut := runCLI(t, "backup", "--config", cfgPath, "--policy", policy)
	if code != 0 {
		t.Fatalf("second backup: exit %d\n%s%s", code, out2, errOut)
	}
	first, second := newBytes(out1), newBytes(out2)
	t.Logf("storage bytes stored anew: first set %d, second set %d", first, second)
	if second*2 > first {
		t.Errorf("the unchanged tree stored %d bytes anew in the second set, the first stored %d: want far less", second, first)
	}

	sets := listJSON(t, cfgPath, policy)
	if len(sets) != 2 || sets[1].Tables == 0 {
		t.Fatalf("list = %+v, want two sets holding tables", sets)
	}
	dst := t.TempDir()
	// From versitygw first: the tree comes back from the second provider alone.
	code, out, errOut := runCLI(t, "restore", "--config", cfgPath, "--policy", policy, "--storage", "app", "--to-dir", dst, "--from", "versity", "--yes")
	if code != 0 {
		t.Fatalf("restore --storage: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "restored 200 files") {
		t.Errorf("restore summary = %q, want 200 files restored", out)
	}
	code, _, errOut = runCLI(t, "restore", "--config", cfgPath, "--policy", policy, "--storage", "app", "--to-dir", dst, "--yes")
	if code != exitUsage || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore into the non-empty directory: exit %d %q, want %d and a refusal", code, errOut, exitUsage)
	}
	sub := t.TempDir()
	if code, out, errOut := runCLI(t, "restore", "--config", cfgPath, "--policy", policy, "--storage", "app", "--to-dir", sub, "--path", "uploads/d03", "--yes"); code != 0 {
		t.Fatalf("restore --path: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(sub, "uploads/d00")); err == nil {
		t.Error("restore --path uploads/d03 also restored uploads/d00")
	}
	if _, err := os.Stat(filepath.Join(sub, "uploads/d03/file 199 ü.txt")); err != nil {
		t.Errorf("restore --path uploads/d03: %v", err)
	}
	for _, rel := range []string{"uploads/d03/file 010 ü.txt", "uploads/d03/file 199 ü.txt", "uploads/d00/file 007 ü.txt"} {
		a, _ := os.ReadFile(filepath.Join(tree, rel))
		b, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || string(a) != string(b) {
			t.Errorf("%s: restored %q (%v), want %q", rel, b, err, a)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "skip.tmp")); err == nil {
		t.Error("the excluded file was backed up")
	}
}

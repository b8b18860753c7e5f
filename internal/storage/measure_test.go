package storage

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
)

// Some tests re-execute the test binary to measure a process of its own (peak RSS) or to run
// as another user; the child learns its role from the environment.
const childEnv = "BACKUPD_FILES_TEST_CHILD"

func childMode() string { return os.Getenv(childEnv) }

// TestPeakRSS snapshots the acceptance tree to a local dir target and restores it, in a child
// process whose peak RSS must stay under 300 MiB. The child reports VmHWM from
// /proc/self/status: ru_maxrss would not do, because Linux carries it across execve and Go
// starts children with CLONE_VM, so it would include the parent's own peak.
func TestPeakRSS(t *testing.T) {
	if childMode() == "rss" {
		rssChild(t)
		return
	}
	tree := bigTree(t)
	work := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSS$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=rss", "BACKUPD_FILES_TREE="+tree, "BACKUPD_FILES_WORK="+work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var peak int64 = -1
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "figures:") {
			t.Log(strings.TrimSpace(line))
		}
		if _, v, ok := strings.Cut(line, "VmHWM-bytes="); ok {
			peak, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if peak < 0 {
		t.Fatalf("the child did not report its peak RSS:\n%s", out)
	}
	t.Logf("peak RSS of snapshot + restore of the acceptance tree: %.1f MiB", float64(peak)/(1<<20))
	if peak >= 300<<20 {
		t.Errorf("peak RSS %d bytes, want under 300 MiB", peak)
	}
	compareTrees(t, scanTree(t, tree), scanTree(t, filepath.Join(work, "out")), cmpOpts{meta: true})
}

func rssChild(t *testing.T) {
	ctx := context.Background()
	tree, work := os.Getenv("BACKUPD_FILES_TREE"), os.Getenv("BACKUPD_FILES_WORK")
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "local")
	start := time.Now()
	id, res := makeSet(t, ctx, k, []backupset.Dest{d}, SourceSpec{Name: "app", Path: tree}, snapOpts{})
	snap := time.Since(start)
	t.Logf("figures: peak RSS after the snapshot: %.1f MiB", float64(vmHWM(t))/(1<<20))
	if p := os.Getenv("BACKUPD_FILES_HEAPPROF"); p != "" {
		f, _ := os.Create(p)
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	start = time.Now()
	if _, err := restoreDir(t, ctx, k, []backupset.Dest{d}, id, "app", filepath.Join(work, "out"), nil); err != nil {
		t.Fatal(err)
	}
	rest := time.Since(start)
	t.Logf("VmHWM-bytes=%d", vmHWM(t))
	mb := float64(res.Bytes) / 1e6
	t.Logf("figures: %d files, %.0f MB: snapshot %v (%.0f MB/s), restore %v (%.0f MB/s) to/from a local dir target",
		res.Files, mb, snap.Round(time.Millisecond), mb/snap.Seconds(), rest.Round(time.Millisecond), mb/rest.Seconds())
}

// TestUnreadableFile: a file the daemon cannot read fails the snapshot, naming it and the
// fix, unless it is excluded. Run as nobody: root reads everything.
func TestUnreadableFile(t *testing.T) {
	if childMode() == "unreadable" {
		unreadableChild(t, os.Getenv("BACKUPD_FILES_SRC"))
		return
	}
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // t.TempDir's parent, so nobody can reach base
	src := filepath.Join(base, "src")
	smallTree(t, src)
	secret := filepath.Join(src, "ünï cödé", "secret.key")
	if err := os.WriteFile(secret, []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		os.Chmod(secret, 0)
		unreadableChild(t, src)
		return
	}
	// Everything but the secret belongs to nobody; the test binary runs as nobody.
	filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error {
		if p != secret {
			os.Lchown(p, 65534, 65534)
		}
		return nil
	})
	bin := filepath.Join(base, "files.test")
	copyFile(t, os.Args[0], bin, 0o755)
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o700)
	os.Chown(tmp, 65534, 65534)
	cmd := exec.Command(bin, "-test.run=^TestUnreadableFile$", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), childEnv+"=unreadable", "BACKUPD_FILES_SRC="+src, "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("child running as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

func unreadableChild(t *testing.T, src string) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "local")
	dests := []backupset.Dest{d}
	id := nextSetID()
	w, err := backupset.NewWriter(ctx, testPolicy, id, dests, backupset.WriterOptions{Signer: testSigner, Recipients: k.rcpt, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Snapshot(ctx, SourceSpec{Name: "up", Path: src}, w, dests, SnapshotOptions{Trust: testTrust,
		Policy: testPolicy, SetID: id, Recipients: k.rcpt, NameKey: k.nameKey, SpoolDir: t.TempDir(),
	})
	w.Abort(ctx)
	for _, want := range []string{"secret.key", "permission denied", "exclude"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error containing %q", err, want)
		}
	}
	t.Logf("error: %v", err)

	id2, res := makeSet(t, ctx, k, dests, SourceSpec{Name: "up", Path: src, Exclude: []string{"secret.key"}}, snapOpts{})
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := restoreDir(t, ctx, k, dests, id2, "up", dst, nil); err != nil {
		t.Fatal(err)
	}
	want := scanTreeSkip(t, src, "ünï cödé/secret.key")
	compareTrees(t, want, scanTree(t, dst), cmpOpts{})
	t.Logf("with the file excluded: %d files stored", res.Files)
}

// vmHWM is this process's peak resident set size, in bytes.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSnapshot200MiB: one incompressible 200 MiB file to a local dir target, each time
// onto an empty target (no dedup). Run with -bench Snapshot200MiB -benchtime 3x.
func BenchmarkSnapshot200MiB(b *testing.B) {
	ctx := context.Background()
	src := filepath.Join(b.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	writeRandom(b, filepath.Join(src, "big.bin"), 200<<20, 3, 0o644)
	k := newTestKeys(b)
	work := b.TempDir()
	b.SetBytes(200 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tdir, _ := os.MkdirTemp(work, "target-")
		d := dirTargetAt(b, tdir)
		b.StartTimer()
		makeSet(b, ctx, k, []backupset.Dest{d}, SourceSpec{Name: "big", Path: src}, snapOpts{})
		b.StopTimer()
		os.RemoveAll(tdir)
		b.StartTimer()
	}
}

// BenchmarkRestore200MiB: the same file restored from a local dir target into an empty
// directory, verified.
func BenchmarkRestore200MiB(b *testing.B) {
	ctx := context.Background()
	src := filepath.Join(b.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	writeRandom(b, filepath.Join(src, "big.bin"), 200<<20, 3, 0o644)
	k := newTestKeys(b)
	d, _ := newDirTarget(b, "local")
	id, _ := makeSet(b, ctx, k, []backupset.Dest{d}, SourceSpec{Name: "big", Path: src}, snapOpts{})
	work := b.TempDir()
	b.SetBytes(200 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(work, "out")
		if _, err := restoreDir(b, ctx, k, []backupset.Dest{d}, id, "big", dst, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
}

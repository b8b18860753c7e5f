package drill

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"github.com/backupd/backupd/internal/signing"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/storage"
	"github.com/backupd/backupd/internal/targets"
)

// TestDrillStorage drills a storage-only set on a dir target: every file restored and its hash
// verified gives PASS; a pack deleted from the blob area gives FAIL naming the source. The
// drill's temporary directory is gone either way.
func TestDrillStorage(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	for name, content := range map[string]string{"a.txt": "alpha", "sub/b.bin": strings.Repeat("b", 100000), "sub/deeper/c": "", "ü space.txt": "unicode"} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(base, "key.txt")
	pub, err := seal.GenerateKey(keyFile, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := seal.LoadIdentities(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rcpt, err := seal.ParseRecipients([]string{pub})
	if err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(base, "scratch")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Targets: map[string]*config.Target{"local": {Name: "local", Type: config.TargetDir, Path: filepath.Join(base, "target")}},
		Signing: config.Signing{TrustedKeys: []string{storageTestSigner.Public().AuthorizedKey}},
	}
	p := &config.Policy{Name: "files", Targets: []string{"local"},
		Drill: &config.Drill{From: config.DrillFromRotate, Scratch: config.Scratch{Embedded: &config.EmbeddedScratch{Dir: scratch}}}}
	dests, err := cfg.OpenTargets(p, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}

	id := backupset.NewID(time.Now())
	w, err := backupset.NewWriter(ctx, p.Name, id, dests, backupset.WriterOptions{Signer: storageTestSigner, Recipients: rcpt, SpoolDir: base})
	if err != nil {
		t.Fatal(err)
	}
	nameKey := make([]byte, 32)
	rand.Read(nameKey)
	snap, err := storage.Snapshot(ctx, storage.SourceSpec{Name: "uploads", Path: tree}, w, dests, storage.SnapshotOptions{Trust: storageTestTrust,
		Policy: p.Name, SetID: id, Recipients: rcpt, NameKey: nameKey, SpoolDir: base})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := storage.Describe(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range w.Commit(ctx, &backupset.Manifest{Files: desc, Recipients: []string{pub}}) {
		if tr.Err != nil {
			t.Fatal(tr.Err)
		}
	}

	drill := func() *Report {
		t.Helper()
		rep, err := Run(ctx, Options{Config: cfg, Policy: p, Identities: ids, Threads: 2, Signer: storageTestSigner})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if left, _ := os.ReadDir(scratch); len(left) > 0 {
			t.Errorf("the drill left %v in its scratch directory", left)
		}
		return rep
	}
	rep := drill()
	if !rep.Passed() || len(rep.Storage) != 1 {
		t.Fatalf("got %s %v with storage %+v, want PASS with one source", rep.Result, rep.Reasons, rep.Storage)
	}
	if s := rep.Storage[0]; s.Source != "uploads" || s.Files != 4 || s.FilesExpected != 4 || s.Symlinks != 1 || s.Bytes != int64(5+100000+7) || s.Error != "" {
		t.Errorf("storage result %+v, want uploads: 4 files of %d bytes and 1 symlink", s, 5+100000+7)
	}
	if rep.Scratch.Kind != "" || len(rep.Databases) != 0 {
		t.Errorf("a storage-only set got scratch %+v and databases %v, want neither", rep.Scratch, rep.Databases)
	}

	var packs []string
	dests[0].Target.List(ctx, p.Name+"/blobs/packs/", func(oi targets.ObjectInfo) error {
		packs = append(packs, oi.Key)
		return nil
	})
	if len(packs) == 0 {
		t.Fatal("no packs in the blob area")
	}
	for _, k := range packs {
		if err := dests[0].Target.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	rep = drill()
	if rep.Passed() || len(rep.Reasons) == 0 || !strings.Contains(rep.Reasons[0], "storage source uploads did not restore from target local") || rep.Storage[0].Error == "" {
		t.Errorf("after deleting the packs: got %s %q, want FAIL naming storage source uploads", rep.Result, rep.Reasons)
	}
	v, _, err := keys.Verifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := History(ctx, dests, p.Name, 0, v)
	if err != nil || len(hist) != 2 || hist[0].Result != Pass || hist[1].Result != Fail {
		t.Fatalf("history: %+v, %v; want PASS then FAIL", hist, err)
	}
	if last, err := LastRun(ctx, dests, p.Name, v); err != nil || !last.Equal(hist[1].StartedAt) {
		t.Errorf("LastRun = %v, %v; want %v", last, err, hist[1].StartedAt)
	}
	if err := rep.Problem(); err == nil || !strings.Contains(err.Error(), "storage source uploads") {
		t.Errorf("Problem() = %v, want the first reason", err)
	}
	if b := rep.Brief(); !strings.Contains(b, "drill FAIL of policy files from target local") || !strings.Contains(b, "files/drills/"+rep.ID+".html") {
		t.Errorf("Brief() = %q", b)
	}
}

func TestSweepStale(t *testing.T) {
	parent := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(dir, "server"), 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600)
		}
		return dir
	}
	gone := mk(workspacePrefix+"p-gone", strconv.Itoa(dead.Process.Pid))
	running := mk(workspacePrefix+"p-running", strconv.Itoa(os.Getpid()))
	fresh := mk(workspacePrefix+"p-fresh", "")
	other := mk("something-else", strconv.Itoa(dead.Process.Pid))
	sweepStale(parent, testLogger())
	for dir, want := range map[string]bool{gone: false, running: true, fresh: true, other: true} {
		_, err := os.Stat(dir)
		if got := err == nil; got != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(dir), got, want)
		}
	}
}

func TestEmbeddedMissingServer(t *testing.T) {
	_, err := startEmbedded(context.Background(), filepath.Join(t.TempDir(), "server"), &config.EmbeddedScratch{Server: "/nonexistent/mariadbd"}, 128<<20, testLogger())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/mariadbd") {
		t.Errorf("got %v, want an error naming the missing server binary", err)
	}
}

var storageTestSigner = func() *signing.Signer {
	s, err := signing.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), "drill-test")
	if err != nil {
		panic(err)
	}
	return s
}()

var storageTestTrust = signing.NewVerifier(storageTestSigner.Public())

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// TestSignedSets forges sets the way anyone with write access to the bucket and the public
// recipient can — the objects of a real set under a new ID and a rewritten manifest — unsigned,
// signed by another key, signed and then changed by one byte, and with the signature of the
// real set copied beside it. None is chosen as newest, restored or verified; list shows each
// with its reason; --allow-unsigned restores the unsigned one, loudly. A restore host with its
// own state directory restores the real set once it trusts the writer's key line, and says which
// line to add when it does not. The by-hand check of docs/verify-signatures.md passes on it.
func TestSignedSets(t *testing.T) {
	restoreStdinIsTerminal = func() bool { return false }
	dsn := testenv.MariaDBDSN(t)
	db := testenv.UniqueName("signed")
	testenv.MariaDBCLI(t, dsn, []byte(fmt.Sprintf("CREATE DATABASE `%s`; CREATE TABLE `%s`.t (id INT PRIMARY KEY, v TEXT); INSERT INTO `%s`.t VALUES (1,'a'),(2,'b');", db, db, db)))
	t.Cleanup(func() {
		testenv.MariaDBCLI(t, dsn, []byte(fmt.Sprintf("DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS `%s_r1`; DROP DATABASE IF EXISTS `%s_r2`;", db, db, db)))
	})
	keyFile, pub := testKey(t)
	dir := t.TempDir()
	policy := testenv.UniqueName("signed")
	configFor := func(state, extra string) string {
		return writeConfig(t, fmt.Sprintf(`state_dir: %s
targets:
  local: {type: dir, path: %s}
encryption:
  recipients: [%s]
  identity_file: %s
%s
policies:
  %s:
    schedule: "@daily"
    mysql: {dsn: %s, databases: [%s]}
    targets: [local]
`, filepath.Join(dir, state), filepath.Join(dir, "backups"), pub, keyFile, extra, policy, yamlString(dsn), db))
	}
	writerCfg := configFor("writer", "")
	if code, out, errOut := runCLI(t, "backup", "--config", writerCfg, "--policy", policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	cfg, err := config.Load(writerCfg)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := signing.LoadKey(cfg.Signing.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	dests, err := cfg.OpenTargets(cfg.Policies[policy], targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := dests[0].Target
	ctx := context.Background()
	sets, _, err := backupset.List(ctx, tg, policy, time.Now(), cfgTrust(t, cfg))
	if err != nil || len(sets) != 1 {
		t.Fatalf("list: %d sets, %v; want the one backed up", len(sets), err)
	}
	real := sets[0]

	t.Run("restore host", func(t *testing.T) {
		keyLine := strings.Join(strings.Fields(writer.Public().AuthorizedKey)[:2], " ")
		untrusting := configFor("restorer", "")
		code, _, errOut := runCLI(t, "restore", "--config", untrusting, "--policy", policy, "--to", dsn, "--as", db+"_r1", "--dry-run")
		if code == 0 || !strings.Contains(errOut, "signing.trusted_keys") || !strings.Contains(errOut, keyLine) {
			t.Errorf("restore on a host that trusts no key: exit %d, want a refusal naming the line %q to add to signing.trusted_keys:\n%s", code, keyLine, lastLines(errOut, 4))
		}
		trusting := configFor("restorer2", "signing:\n  trusted_keys: ["+yamlString(writer.Public().AuthorizedKey)+"]")
		if code, out, errOut := runCLI(t, "restore", "--config", trusting, "--policy", policy, "--to", dsn, "--as", db+"_r1", "--yes"); code != 0 {
			t.Errorf("restore on a host that trusts the writer's key: exit %d\n%s%s", code, out, lastLines(errOut, 4))
		}
	})

	stranger, err := signing.GenerateKey(filepath.Join(dir, "stranger.key"), "stranger")
	if err != nil {
		t.Fatal(err)
	}
	realSig := get(t, tg, backupset.SignatureKey(policy, real.SetID))
	sign := func(s *signing.Signer, data []byte) []byte {
		sig, err := s.Sign(signing.NamespaceManifest, data)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	type forgery struct {
		name, reason string
		sig          func(data []byte) (stored, sig []byte) // the manifest as stored and its signature (nil: none)
		id           string
	}
	forgeries := []*forgery{
		{name: "unsigned", reason: "not signed", sig: func(d []byte) ([]byte, []byte) { return d, nil }},
		{name: "signed by another key", reason: "not in signing.trusted_keys", sig: func(d []byte) ([]byte, []byte) { return d, sign(stranger, d) }},
		{name: "one byte changed after signing", reason: "bad signature", sig: func(d []byte) ([]byte, []byte) {
			changed := append(append([]byte(nil), d[:len(d)-1]...), ' ', '}')
			return changed, sign(writer, d)
		}},
		{name: "signature copied from another set", reason: "bad signature", sig: func(d []byte) ([]byte, []byte) { return d, realSig }},
	}
	for i, f := range forgeries {
		f.id = backupset.NewID(time.Now().Add(time.Duration(i+1) * time.Second))
		m := *real
		m.SetID = f.id
		for _, o := range m.Objects {
			body := get(t, tg, backupset.ObjectKey(policy, real.SetID, o.Name))
			put(t, tg, backupset.ObjectKey(policy, f.id, o.Name), body)
		}
		data, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		stored, sig := f.sig(data)
		if sig != nil {
			put(t, tg, backupset.SignatureKey(policy, f.id), sig)
		}
		put(t, tg, backupset.ManifestKey(policy, f.id), stored)
	}

	listed := map[string]string{}
	for _, s := range listJSON(t, writerCfg, policy) {
		listed[s.ID] = s.Untrusted
	}
	for _, f := range forgeries {
		t.Run(f.name, func(t *testing.T) {
			if got := listed[f.id]; !strings.Contains(got, f.reason) {
				t.Errorf("list: set %s untrusted %q, want the reason %q", f.id, got, f.reason)
			}
			for _, args := range [][]string{
				{"restore", "--config", writerCfg, "--policy", policy, "--to", dsn, "--as", db + "_r2", "--set", f.id, "--dry-run"},
				{"verify", "--config", writerCfg, "--policy", policy, "--set", f.id},
			} {
				code, out, errOut := runCLI(t, args...)
				if code == 0 || !strings.Contains(errOut, "not trusted") || !strings.Contains(errOut, f.reason) {
					t.Errorf("%s --set %s: exit %d, want a refusal saying %q:\n%s%s", args[0], f.id, code, f.reason, out, lastLines(errOut, 4))
				}
			}
			if f.name != "unsigned" {
				// --allow-unsigned accepts a missing signature, never a wrong one.
				code, _, errOut := runCLI(t, "verify", "--config", writerCfg, "--policy", policy, "--set", f.id, "--allow-unsigned")
				if code == 0 || !strings.Contains(errOut, f.reason) {
					t.Errorf("verify --allow-unsigned of a set %s: exit %d, want it refused:\n%s", f.name, code, lastLines(errOut, 4))
				}
			}
		})
	}

	t.Run("newest is the real set", func(t *testing.T) {
		code, out, errOut := runCLI(t, "restore", "--config", writerCfg, "--policy", policy, "--to", dsn, "--as", db+"_r2", "--dry-run")
		if code != 0 || !strings.Contains(out+errOut, real.SetID) {
			t.Fatalf("restore of the newest set: exit %d, want the plan of %s\n%s%s", code, real.SetID, out, lastLines(errOut, 4))
		}
		for _, f := range forgeries {
			if strings.Contains(out, "Restore set "+f.id) || strings.Contains(out, "set "+f.id+",") {
				t.Errorf("the plan names forged set %s:\n%s", f.id, out)
			}
		}
	})

	t.Run("allow unsigned", func(t *testing.T) {
		unsigned := forgeries[0].id
		code, out, errOut := runCLI(t, "restore", "--config", writerCfg, "--policy", policy, "--to", dsn, "--as", db+"_r2", "--set", unsigned, "--allow-unsigned", "--yes")
		if code != 0 || !strings.Contains(errOut, backupset.UnsignedWarning) || !strings.Contains(out, backupset.UnsignedWarning) {
			t.Errorf("restore --allow-unsigned --set %s: exit %d, want a restore with the warning %q on stderr and in the plan\n%s%s",
				unsigned, code, backupset.UnsignedWarning, out, lastLines(errOut, 4))
		}
	})

	t.Run("by hand", func(t *testing.T) {
		if _, err := exec.LookPath("ssh-keygen"); err != nil {
			t.Fatal("ssh-keygen is needed (package openssh-client)")
		}
		doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "verify-signatures.md"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile("(?s)<!-- verify-signature-script:[^>]*-->\n```bash\n(.*?)```").FindSubmatch(doc)
		if m == nil {
			t.Fatal("docs/verify-signatures.md has no verify-signature-script block")
		}
		trusted := filepath.Join(t.TempDir(), "trusted_keys")
		writeFile(t, trusted, writer.Public().AuthorizedKey+"\n")
		for _, tc := range []struct {
			set string
			ok  bool
		}{{real.SetID, true}, {forgeries[1].id, false}, {forgeries[2].id, false}, {forgeries[3].id, false}} {
			cmd := exec.Command("bash", "-c", string(m[1]))
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "SET="+filepath.Join(dir, "backups", policy, tc.set), "TRUSTED="+trusted)
			out, err := cmd.CombinedOutput()
			if tc.ok != (err == nil) || tc.ok && !bytes.Contains(out, []byte(`Good "backupd-manifest" signature`)) {
				t.Errorf("by-hand check of set %s: %v\n%s\nwant ok %v", tc.set, err, out, tc.ok)
			}
		}
	})
}

func get(t *testing.T, tg backupset.Target, key string) []byte {
	t.Helper()
	rc, err := tg.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, tg backupset.Target, key string, body []byte) {
	t.Helper()
	if err := tg.Put(context.Background(), key, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
}

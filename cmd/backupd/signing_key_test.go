package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/testenv"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSigningKeyAndByHandVerification walks docs/verify-signatures.md: a backup host prints its
// key line, a restore host trusts it, the restore host's allowed_signers file lets ssh-keygen
// check a signature the backup host made.
func TestSigningKeyAndByHandVerification(t *testing.T) {
	dir := t.TempDir()
	writerConf := filepath.Join(dir, "writer.yaml")
	writeFile(t, writerConf, "state_dir: ./writer-state\n")
	keyFile := filepath.Join(dir, "writer-state", config.DefaultSigningKeyName)

	code, line, stderr := runCmd(t, "signing-key", "--config", writerConf)
	if code != exitOK {
		t.Fatalf("signing-key: exit %d, want 0: %s", code, stderr)
	}
	line = strings.TrimSpace(line)
	k, err := signing.ParseTrustedKey(line)
	if err != nil {
		t.Fatalf("signing-key printed %q, not a key line: %v", line, err)
	}
	if !strings.Contains(stderr, "GENERATED A NEW SIGNING KEY") {
		t.Errorf("first signing-key: stderr %q, want the loud generation line", stderr)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want it generated with mode 0600", fi, err)
	}
	code, again, stderr := runCmd(t, "signing-key", "--config", writerConf)
	if code != exitOK || strings.TrimSpace(again) != line || stderr != "" {
		t.Errorf("second signing-key: exit %d, %q, stderr %q; want the same line and nothing else", code, again, stderr)
	}

	code, summary, stderr := runCmd(t, "check-config", "--config", writerConf)
	if code != exitOK {
		t.Fatalf("check-config: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"signing key: " + keyFile + ", " + k.Fingerprint, "trusted signing keys: this host's own signing key " + k.Fingerprint} {
		if !strings.Contains(summary, want) {
			t.Errorf("check-config summary lacks %q:\n%s", want, summary)
		}
	}

	// The restore host holds no signing key; it trusts the line printed above.
	readerConf := filepath.Join(dir, "reader.yaml")
	writeFile(t, readerConf, "state_dir: ./reader-state\nsigning:\n  trusted_keys:\n    - "+line+"\n")
	code, summary, stderr = runCmd(t, "check-config", "--config", readerConf)
	if code != exitOK {
		t.Fatalf("check-config of the restore host: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"(not there yet", "trusted signing keys: 1 key(s) from signing.trusted_keys", "  " + k.Fingerprint} {
		if !strings.Contains(summary, want) {
			t.Errorf("restore host's check-config summary lacks %q:\n%s", want, summary)
		}
	}
	code, allowed, stderr := runCmd(t, "signing-key", "--config", readerConf, "--allowed-signers")
	if code != exitOK {
		t.Fatalf("signing-key --allowed-signers: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "reader-state")); !os.IsNotExist(err) {
		t.Errorf("--allowed-signers created the restore host's state (%v): it must never generate a key", err)
	}
	allowedFile := filepath.Join(dir, "allowed_signers")
	writeFile(t, allowedFile, allowed)

	// What a backup writes: the bytes and their signature beside them.
	s, err := keys.Signer(&config.Config{Signing: config.Signing{KeyFile: keyFile}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(`{"id":"20261205T030000Z-0000"}` + "\n")
	sig, err := s.Sign(signing.NamespaceManifest, manifest)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "manifest.json"+signing.SignatureSuffix)
	writeFile(t, sigFile, string(sig))
	for _, tc := range []struct {
		name, namespace string
		msg             []byte
		ok              bool
	}{
		{"manifest", signing.NamespaceManifest, manifest, true},
		{"tampered", signing.NamespaceManifest, bytes.Replace(manifest, []byte("03"), []byte("04"), 1), false},
		{"as a drill report", signing.NamespaceDrillReport, manifest, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowedFile, "-I", signing.Principal, "-n", tc.namespace, "-s", sigFile)
			cmd.Stdin = bytes.NewReader(tc.msg)
			out, err := cmd.CombinedOutput()
			if tc.ok != (err == nil) {
				t.Errorf("ssh-keygen -Y verify: %v: %s; want success %v", err, out, tc.ok)
			}
		})
	}

	// No trusted key at all: --allowed-signers says what to do instead of printing an empty file.
	emptyConf := filepath.Join(dir, "empty.yaml")
	writeFile(t, emptyConf, "state_dir: ./empty-state\n")
	if code, _, stderr := runCmd(t, "signing-key", "--config", emptyConf, "--allowed-signers"); code != exitUsage || !strings.Contains(stderr, "signing.trusted_keys") {
		t.Errorf("--allowed-signers without any key: exit %d, %q; want 2 and what to configure", code, stderr)
	}

	// A writer whose own key is not trusted by its own config is told so.
	otherConf := filepath.Join(dir, "other.yaml")
	other, err := signing.GenerateKey(filepath.Join(dir, "other.key"), "other")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, otherConf, "state_dir: ./writer-state\nsigning:\n  trusted_keys: [\""+other.Public().AuthorizedKey+"\"]\n")
	if code, _, stderr := runCmd(t, "signing-key", "--config", otherConf); code != exitOK || !strings.Contains(stderr, "not in this host's signing.trusted_keys") {
		t.Errorf("writer key not trusted: exit %d, %q; want 0 and a warning", code, stderr)
	}
}

// TestVerifySignaturesDoc runs docs/verify-signatures.md's script verbatim against a set signed
// the way a backup signs it.
func TestVerifySignaturesDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "verify-signatures.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- verify-signature-script:[^>]*-->\n```bash\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/verify-signatures.md has no bash block after <!-- verify-signature-script -->")
	}
	script := string(m[1])

	dir := t.TempDir()
	writer, err := signing.GenerateKey(filepath.Join(dir, "signing.key"), "backupd@db1")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := signing.GenerateKey(filepath.Join(dir, "stranger.key"), "stranger")
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(`{"id":"20261127T030000Z-3f9a","objects":[]}` + "\n")
	set := func(name string, signer *signing.Signer, ns string, content []byte) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "manifest.json"), string(content))
		if signer != nil {
			sig, err := signer.Sign(ns, manifest)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(d, "manifest.json.sig"), string(sig))
		}
		return d
	}
	trusted := filepath.Join(dir, "trusted_keys")
	writeFile(t, trusted, "# the writers\n\n"+writer.Public().AuthorizedKey+"\n")

	for _, tc := range []struct {
		name string
		set  string
		ok   bool
	}{
		{"signed by a trusted key", set("good", writer, signing.NamespaceManifest, manifest), true},
		{"manifest changed after signing", set("tampered", writer, signing.NamespaceManifest, bytes.Replace(manifest, []byte("3f9a"), []byte("3f9b"), 1)), false},
		{"signature of another kind of object", set("claim", writer, signing.NamespaceClaim, manifest), false},
		{"signed by an untrusted key", set("planted", stranger, signing.NamespaceManifest, manifest), false},
		{"unsigned", set("unsigned", nil, "", manifest), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "SET="+tc.set, "TRUSTED="+trusted)
			out, err := cmd.CombinedOutput()
			if tc.ok && (err != nil || !strings.Contains(string(out), `Good "backupd-manifest" signature for backupd`)) {
				t.Errorf("script: %v\n%s\nwant a good signature", err, out)
			}
			if !tc.ok && err == nil {
				t.Errorf("script succeeded:\n%s\nwant a failure", out)
			}
		})
	}
}

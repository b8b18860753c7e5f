package signing

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests run the real ssh-keygen (openssh-client, installed by scripts/testenv.sh): the by-hand
// verification in docs/verify-signatures.md is exactly what they do.

func sshKeygen(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatalf("ssh-keygen is needed for this test (apt-get install openssh-client): %v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// allowedSigners writes an allowed_signers file as docs/verify-signatures.md builds it.
func allowedSigners(t *testing.T, dir string, keys ...KeyInfo) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(AllowedSignersLine(k) + "\n")
	}
	p := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSSHKeygenVerifiesOurSignatures(t *testing.T) {
	dir := t.TempDir()
	s, _, err := LoadOrGenerateKey(filepath.Join(dir, "signing.key"), "backupd@test")
	if err != nil {
		t.Fatal(err)
	}
	// The key file is one ssh-keygen reads: -y prints the same public key line.
	out, err := sshKeygen(t, nil, "-y", "-f", filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v: %s", err, out)
	}
	if got, want := strings.TrimSpace(out), s.Public().AuthorizedKey; got != want {
		t.Errorf("ssh-keygen -y printed %q, want %q", got, want)
	}

	allowed := allowedSigners(t, dir, s.Public())
	msg := []byte(`{"set":"20261205T030000Z-0000","objects":[]}` + "\n")
	sig, err := s.Sign(NamespaceManifest, msg)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "manifest.json.sig")
	if err := os.WriteFile(sigFile, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		namespace string
		msg       []byte
		ok        bool
	}{
		{"exact bytes", NamespaceManifest, msg, true},
		{"tampered message", NamespaceManifest, bytes.Replace(msg, []byte("0000"), []byte("0001"), 1), false},
		{"wrong namespace", NamespaceIndex, msg, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sshKeygen(t, tc.msg, "-Y", "verify", "-f", allowed, "-I", Principal, "-n", tc.namespace, "-s", sigFile)
			if tc.ok && err != nil {
				t.Fatalf("ssh-keygen -Y verify failed: %v: %s", err, out)
			}
			if !tc.ok && err == nil {
				t.Fatalf("ssh-keygen -Y verify accepted it: %s", out)
			}
			if tc.ok && !strings.Contains(out, `Good "`+tc.namespace+`" signature for backupd`) {
				t.Errorf("ssh-keygen output %q, want a good signature for backupd", out)
			}
		})
	}
}

func TestWeVerifySSHKeygenSignatures(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	if out, err := sshKeygen(t, nil, "-q", "-t", "ed25519", "-N", "", "-C", "made-by-ssh-keygen", "-f", keyFile); err != nil {
		t.Fatalf("ssh-keygen -t ed25519: %v: %s", err, out)
	}
	// A key ssh-keygen made is a key backupd signs with (signing.key_file).
	s, err := LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Public().AuthorizedKey, strings.TrimSpace(string(pub)); got != want {
		t.Errorf("public key line %q, want ssh-keygen's %q", got, want)
	}
	trusted, err := ParseTrustedKey(string(pub))
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(trusted)

	msg := []byte("drill report\n")
	msgFile := filepath.Join(dir, "report.json")
	if err := os.WriteFile(msgFile, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, hash := range []string{"sha512", "sha256"} {
		t.Run(hash, func(t *testing.T) {
			os.Remove(msgFile + ".sig")
			if out, err := sshKeygen(t, nil, "-Y", "sign", "-f", keyFile, "-n", NamespaceDrillReport, "-O", "hashalg="+hash, msgFile); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
			}
			sig, err := os.ReadFile(msgFile + SignatureSuffix)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name      string
				namespace string
				msg       []byte
				want      error
			}{
				{"exact bytes", NamespaceDrillReport, msg, nil},
				{"tampered message", NamespaceDrillReport, []byte("drill report \n"), ErrBadSignature},
				{"wrong namespace", NamespaceManifest, msg, ErrBadSignature},
			} {
				k, err := v.Verify(tc.namespace, tc.msg, sig)
				if tc.want == nil && (err != nil || k.Comment != "made-by-ssh-keygen") {
					t.Errorf("%s: got key %q, err %v; want the ssh-keygen key", tc.name, k.Comment, err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
				}
			}
		})
	}
}

package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newTestSigner(t *testing.T, comment string) *Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	host := newTestSigner(t, "host-a")
	other := newTestSigner(t, "host-b")
	stranger := newTestSigner(t, "attacker")
	msg := []byte(`{"set":"20261205T030000Z-0000"}`)
	sign := func(s *Signer, ns string, m []byte) []byte {
		sig, err := s.Sign(ns, m)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	good := sign(host, NamespaceManifest, msg)
	v := NewVerifier(host.Public(), other.Public())

	for _, tc := range []struct {
		name      string
		namespace string
		msg, sig  []byte
		want      error  // nil: verifies
		wantKey   string // comment of the key it verifies with
	}{
		{"good", NamespaceManifest, msg, good, nil, "host-a"},
		{"second trusted key", NamespaceManifest, msg, sign(other, NamespaceManifest, msg), nil, "host-b"},
		{"empty message", NamespaceManifest, nil, sign(host, NamespaceManifest, nil), nil, "host-a"},
		{"unsigned", NamespaceManifest, msg, nil, ErrUnsigned, ""},
		{"tampered message", NamespaceManifest, append(bytes.Clone(msg), ' '), good, ErrBadSignature, ""},
		{"truncated message", NamespaceManifest, msg[:len(msg)-1], good, ErrBadSignature, ""},
		{"another kind of object", NamespaceClaim, msg, good, ErrBadSignature, ""},
		{"claim signature offered as a manifest", NamespaceManifest, msg, sign(host, NamespaceClaim, msg), ErrBadSignature, ""},
		{"untrusted key", NamespaceManifest, msg, sign(stranger, NamespaceManifest, msg), ErrUntrustedKey, ""},
		{"not armored", NamespaceManifest, msg, []byte("hello"), ErrMalformed, ""},
		{"armor only", NamespaceManifest, msg, []byte(armorBegin + "\n" + armorEnd + "\n"), ErrMalformed, ""},
		{"overlapping armor", NamespaceManifest, msg, []byte("-----BEGIN SSH SIGNATURE-----END SSH SIGNATURE-----"), ErrMalformed, ""},
		{"too large", NamespaceManifest, msg, append(bytes.Clone(good), bytes.Repeat([]byte{'\n'}, MaxSignatureSize)...), ErrMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := v.Verify(tc.namespace, tc.msg, tc.sig)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: got %v, want no error", err)
				}
				if k.Comment != tc.wantKey {
					t.Errorf("verified with key %q, want %q", k.Comment, tc.wantKey)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUntrustedKeyErrorNamesTheKey(t *testing.T) {
	stranger := newTestSigner(t, "")
	sig, err := stranger.Sign(NamespaceManifest, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewVerifier().Verify(NamespaceManifest, []byte("x"), sig)
	var ue *UntrustedKeyError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want an *UntrustedKeyError", err)
	}
	if got, want := ue.Fingerprint, stranger.Public().Fingerprint; got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}
	if got, want := ue.AuthorizedKey, stranger.Public().AuthorizedKey; got != want {
		t.Errorf("key line %q, want %q", got, want)
	}
	if !strings.Contains(err.Error(), ue.AuthorizedKey) || !strings.Contains(err.Error(), "signing.trusted_keys") {
		t.Errorf("message %q does not say which line to add where", err)
	}
	// The line it suggests is accepted as a trusted key and then verifies.
	k, err := ParseTrustedKey(ue.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(k).Verify(NamespaceManifest, []byte("x"), sig); err != nil {
		t.Errorf("after trusting the suggested line: %v", err)
	}
}

// A signature whose blob was altered in any single byte must never verify.
func TestFlippedSignatureByte(t *testing.T) {
	s := newTestSigner(t, "")
	msg := []byte("manifest bytes")
	sig, err := s.Sign(NamespaceManifest, msg)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := dearmor(sig)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(s.Public())
	for i := range blob {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		if _, err := v.Verify(NamespaceManifest, msg, armor(b)); err == nil {
			t.Fatalf("byte %d flipped: verified, want an error", i)
		}
	}
}

func TestParseTrustedKey(t *testing.T) {
	s := newTestSigner(t, "host-a")
	b64 := strings.Fields(s.Public().AuthorizedKey)[1]
	rsaLine := "ssh-rsa " + base64.StdEncoding.EncodeToString(ssh.Marshal(struct {
		Name string
		E, N []byte
	}{"ssh-rsa", []byte{1, 0, 1}, bytes.Repeat([]byte{0xcd}, 256)})) + " rsa"
	for _, tc := range []struct {
		name, line string
		wantErr    string // "" : accepted
		wantCmt    string
	}{
		{"with comment", "ssh-ed25519 " + b64 + " host-a", "", "host-a"},
		{"without comment", "ssh-ed25519 " + b64, "", ""},
		{"surrounding space", "  ssh-ed25519 " + b64 + " host-a  ", "", "host-a"},
		{"empty", "  ", "empty key", ""},
		{"garbage", "hello world", "not an SSH public key", ""},
		{"rsa", rsaLine, "only with ssh-ed25519", ""},
		{"options", `from="10.0.0.1" ssh-ed25519 ` + b64, "options", ""},
		{"truncated base64", "ssh-ed25519 " + b64[:20], "not an SSH public key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseTrustedKey(tc.line)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Comment != tc.wantCmt || k.Fingerprint != s.Public().Fingerprint {
				t.Errorf("got %s %q, want %s %q", k.Fingerprint, k.Comment, s.Public().Fingerprint, tc.wantCmt)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "signing.key")

	s, generated, err := LoadOrGenerateKey(path, "backupd@test")
	if err != nil || !generated {
		t.Fatalf("first LoadOrGenerateKey: generated %v, err %v; want generated, no error", generated, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %04o, want 0600", got)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries after generation, want only the key (no temporary file left)", len(entries))
	}

	again, generated, err := LoadOrGenerateKey(path, "ignored")
	if err != nil || generated {
		t.Fatalf("second LoadOrGenerateKey: generated %v, err %v; want the existing key", generated, err)
	}
	if got, want := again.Public().AuthorizedKey, s.Public().AuthorizedKey; got != want {
		t.Errorf("reloaded key %q, want %q (comment kept)", got, want)
	}

	if _, err := GenerateKey(path, "x"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKey over an existing key: got %v, want fs.ErrExist", err)
	}

	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKey of a 0640 key: got %v, want a refusal saying chmod 600", err)
	}
}

func TestKeyFileRefusesOtherKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	enc, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "c", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"passphrase", write("enc", pemBytes(enc)), "passphrase"},
		{"not a key", write("junk", []byte("AGE-SECRET-KEY-1XYZ\n")), "not an OpenSSH private key"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadKey(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Many processes starting at once on a fresh host end up with one key, the same for all.
func TestLoadOrGenerateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	const n = 8
	lines := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, err := LoadOrGenerateKey(path, "c")
			errs[i] = err
			if err == nil {
				lines[i] = s.Public().AuthorizedKey
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if lines[i] != lines[0] {
			t.Errorf("caller %d got key %q, caller 0 %q", i, lines[i], lines[0])
		}
	}
}

func pemBytes(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

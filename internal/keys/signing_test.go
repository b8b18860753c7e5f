package keys

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/signing"
)

func TestSignerGeneratesOnceAndSaysSo(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	cfg := &config.Config{Signing: config.Signing{KeyFile: filepath.Join(t.TempDir(), "state", "signing.key")}}

	s, err := Signer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logBuf.String(), "GENERATED A NEW SIGNING KEY") || !strings.Contains(logBuf.String(), s.Public().Fingerprint) {
		t.Errorf("log after generation %q, want a loud line naming the key", logBuf.String())
	}
	if !strings.HasPrefix(s.Public().Comment, "backupd@") {
		t.Errorf("comment %q, want backupd@HOST", s.Public().Comment)
	}
	logBuf.Reset()
	again, err := Signer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if again.Public().AuthorizedKey != s.Public().AuthorizedKey {
		t.Errorf("second run: key %q, want the generated %q", again.Public().AuthorizedKey, s.Public().AuthorizedKey)
	}
	if logBuf.Len() != 0 {
		t.Errorf("second run logged %q, want nothing", logBuf.String())
	}
}

func TestVerifierTrust(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	writer := &config.Config{Signing: config.Signing{KeyFile: filepath.Join(dir, "writer.key")}}
	ws, err := Signer(writer, log)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signing.GenerateKey(filepath.Join(dir, "other.key"), "other")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("manifest")
	sig, err := ws.Sign(signing.NamespaceManifest, msg)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		cfg        config.Signing
		wantErr    error // of verifying the writer's signature; nil: verifies
		wantSource string
	}{
		{"own key when trusted_keys is empty", config.Signing{KeyFile: writer.Signing.KeyFile}, nil, "this host's own signing key"},
		{"listed", config.Signing{KeyFile: filepath.Join(dir, "none.key"), TrustedKeys: []string{other.Public().AuthorizedKey, ws.Public().AuthorizedKey}}, nil, "2 key(s) from signing.trusted_keys"},
		{"a list without the writer", config.Signing{KeyFile: writer.Signing.KeyFile, TrustedKeys: []string{other.Public().AuthorizedKey}}, signing.ErrUntrustedKey, "1 key(s)"},
		{"restore host without keys", config.Signing{KeyFile: filepath.Join(dir, "none.key")}, signing.ErrUntrustedKey, "no trusted key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, source, err := Verifier(&config.Config{Signing: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(source, tc.wantSource) {
				t.Errorf("source %q, want it to contain %q", source, tc.wantSource)
			}
			_, err = v.Verify(signing.NamespaceManifest, msg, sig)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("verify the writer's signature: got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

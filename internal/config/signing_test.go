package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/signing"
)

const (
	testTrustedA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHly3WtM4yhd8KV6/2BsZwuyFVLrYtyPDJGEzmbYOs99 host-a"
	testTrustedB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFuLSj+8swymk/ft5Dnklt1cT2PkEshnH+4hA4R8OA7K host-b"
	testTrustedC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAuEIV6eFRVNEH0WTIz4xH7l917DwrWvhm9Y+aCyaG9p host-b-2027"
	testRSAKey   = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDG6nN17WwvPH4sT6Vf4JEeFgEIWpcuWLPDmi9rZWtp3OVxNipSQgoBa4ArHuhRhJYJXeQoF5XFC+0+UM+mhobjP2g6Enj3a0PL5lX2DevGkaux2lnZ/+5NPxE4noCLQLj44O3z8XyDmOIRmLCXO6nQrnXBIQPnuLSf6hGYaD35E52YU4M+JeJXBvBkx5e7rlw9wWQw+m8OYan7MCGqu4yRp8iOmDnfyBuPcM3PjLN2Li6MIfg+DVTZaZ46L0wQL8NKdFNedoWHRrHrKepPwZS/qUpWPGIDlehkoMQXYS/DJnwRZIVVBFEZbOArZvw+PFEwskLOHWesKJ8rzV9uxVyx rsa"
)

func TestLoadFullSigning(t *testing.T) {
	privateTestdata(t)
	t.Setenv("FULL_S3_KEY", "AKIAFULLKEY")
	t.Setenv("FULL_S3_SECRET", "full-secret")
	t.Setenv("FULL_DB_PASSWORD", "full-db-pass")
	cfg, err := Load("testdata/full/backupd.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dir, _ := filepath.Abs("testdata/full")
	if got, want := cfg.Signing.KeyFile, filepath.Join(dir, "secrets", "signing.key"); got != want {
		t.Errorf("KeyFile = %s, want %s", got, want)
	}
	if got, want := cfg.Signing.TrustedKeysFile, filepath.Join(dir, "trusted_keys"); got != want {
		t.Errorf("TrustedKeysFile = %s, want %s", got, want)
	}
	if got, want := cfg.Signing.TrustedKeys, []string{testTrustedA, testTrustedB, testTrustedC}; !reflect.DeepEqual(got, want) {
		t.Errorf("TrustedKeys = %q, want %q (the list, then the file's lines)", got, want)
	}
}

func TestSigningDefaults(t *testing.T) {
	cfg, err := loadWith(t, "state_dir: ./st\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Signing.KeyFile, filepath.Join(cfg.Dir, "st", DefaultSigningKeyName); got != want {
		t.Errorf("default KeyFile = %s, want %s", got, want)
	}
	if len(cfg.Signing.TrustedKeys) != 0 {
		t.Errorf("TrustedKeys = %q, want none", cfg.Signing.TrustedKeys)
	}

	// Normalised: surrounding space dropped, the same line form everywhere.
	cfg, err = loadWith(t, "signing:\n  trusted_keys: [\"  "+testTrustedA+"  \"]\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Signing.TrustedKeys, []string{testTrustedA}; !reflect.DeepEqual(got, want) {
		t.Errorf("TrustedKeys = %q, want %q", got, want)
	}
}

func TestSigningProblems(t *testing.T) {
	keyDir := t.TempDir()
	goodKey := filepath.Join(keyDir, "good.key")
	if _, err := signing.GenerateKey(goodKey, "t"); err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(keyDir, "open.key")
	if _, err := signing.GenerateKey(openKey, "t"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	notKey := filepath.Join(keyDir, "age.txt")
	if err := os.WriteFile(notKey, []byte("AGE-SECRET-KEY-1QQQQ\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, yml     string
		files         map[string]string
		wantPath      string // "" : loads without a problem
		wantMsg       string
		wantFile      string // the file the problem is located in; "" : config.yaml
		wantLine      int
		wantHintChunk string
	}{
		{name: "good", yml: "signing:\n  key_file: " + goodKey + "\n  trusted_keys: [\"" + testTrustedA + "\", \"" + testTrustedB + "\"]\n"},
		{name: "missing key file is fine", yml: "signing:\n  key_file: ./nope.key\n"},
		{name: "garbage key", yml: "signing:\n  trusted_keys: [hello]\n", wantPath: "signing.trusted_keys[0]", wantMsg: "not an SSH public key", wantLine: 2, wantHintChunk: "backupd signing-key"},
		{name: "rsa key", yml: "signing:\n  trusted_keys:\n    - " + testTrustedA + "\n    - " + testRSAKey + "\n", wantPath: "signing.trusted_keys[1]", wantMsg: "ssh-rsa key: backupd signs only with ssh-ed25519", wantLine: 4},
		{name: "age recipient", yml: "signing:\n  trusted_keys: [age19gsf8cnqu7y73xgdp2ywxrqwphncwczp5kx5m46dppdahgf2895stj9rh8]\n", wantPath: "signing.trusted_keys[0]", wantMsg: "not an SSH public key"},
		{name: "duplicate in list", yml: "signing:\n  trusted_keys:\n    - " + testTrustedA + "\n    - " + strings.Replace(testTrustedA, "host-a", "other-comment", 1) + "\n", wantPath: "signing.trusted_keys[1]", wantMsg: "is the same key (SHA256:", wantLine: 4, wantHintChunk: "once"},
		{name: "duplicate in file", yml: "signing:\n  trusted_keys: [\"" + testTrustedB + "\"]\n  trusted_keys_file: keys.txt\n",
			files:    map[string]string{"keys.txt": "# writers\n" + testTrustedA + "\n\n" + testTrustedB + "\n"},
			wantPath: "signing.trusted_keys_file", wantMsg: "line 4 is the same key", wantFile: "keys.txt", wantLine: 4},
		{name: "bad line in file", yml: "signing:\n  trusted_keys_file: keys.txt\n",
			files:    map[string]string{"keys.txt": testTrustedA + "\nssh-ed25519 AAAAbroken\n"},
			wantPath: "signing.trusted_keys_file", wantMsg: "keys.txt line 2: not an SSH public key", wantFile: "keys.txt", wantLine: 2},
		{name: "unreadable file", yml: "signing:\n  trusted_keys_file: nope.txt\n", wantPath: "signing.trusted_keys_file", wantMsg: "nope.txt: no such file"},
		{name: "key file open to others", yml: "signing:\n  key_file: " + openKey + "\n", wantPath: "signing.key_file", wantMsg: "chmod 600 " + openKey},
		{name: "key file not a key", yml: "signing:\n  key_file: " + notKey + "\n", wantPath: "signing.key_file", wantMsg: "not an OpenSSH private key"},
		{name: "key file a directory", yml: "signing:\n  key_file: " + keyDir + "\n", wantPath: "signing.key_file", wantMsg: "not a regular file"},
		{name: "unknown key", yml: "signing:\n  trusted_key: []\n", wantPath: "signing.trusted_key", wantMsg: "unknown key", wantHintChunk: "trusted_keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWith(t, tc.yml, nil, tc.files)
			ps := problemsOf(t, err)
			if tc.wantPath == "" {
				if len(ps) != 0 {
					t.Fatalf("got problems %v, want none", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("got %d problems %v, want one at %s", len(ps), ps, tc.wantPath)
			}
			p := ps[0]
			if p.Path != tc.wantPath || !strings.Contains(p.Msg, tc.wantMsg) {
				t.Errorf("got %s: %q, want %s: …%s…", p.Path, p.Msg, tc.wantPath, tc.wantMsg)
			}
			if tc.wantLine != 0 && p.Line != tc.wantLine {
				t.Errorf("got line %d, want %d", p.Line, tc.wantLine)
			}
			wantFile := "config.yaml"
			if tc.wantFile != "" {
				wantFile = tc.wantFile
			}
			if filepath.Base(p.File) != wantFile {
				t.Errorf("got file %s, want %s", p.File, wantFile)
			}
			if !strings.Contains(p.Hint, tc.wantHintChunk) {
				t.Errorf("got hint %q, want it to contain %q", p.Hint, tc.wantHintChunk)
			}
		})
	}
}

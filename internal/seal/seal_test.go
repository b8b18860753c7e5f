package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// sqlLike returns compressible but not trivial text, like a dump.
func sqlLike(n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("INSERT INTO `t` VALUES (")
		b.WriteString(strings.Repeat("x", r.IntN(40)))
		b.WriteString(",'\\n',0x")
		b.WriteString(hex.EncodeToString([]byte{byte(r.Uint32()), byte(r.Uint32())}))
		b.WriteString(");\n")
	}
	return b.Bytes()[:n]
}

func newKey(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.txt")
	pub, err := GenerateKey(path, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := LoadIdentities(path)
	if err != nil {
		t.Fatal(err)
	}
	return ids[0].(*age.X25519Identity), path + "\n" + pub
}

func sealBytes(t *testing.T, plain []byte, recipients []age.Recipient, level Level) ([]byte, Sum) {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, recipients, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), w.Sum()
}

func TestRoundTrip(t *testing.T) {
	id, _ := newKey(t)
	for _, tc := range []struct {
		name  string
		size  int
		level Level
	}{
		{"empty", 0, Fastest}, {"one byte", 1, Fastest}, {"3MiB fastest", 3 << 20, Fastest},
		{"3MiB default", 3 << 20, Default}, {"1MiB best", 1 << 20, Best},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := sqlLike(tc.size, uint64(tc.size))
			sealed, sum := sealBytes(t, plain, []age.Recipient{id.Recipient()}, tc.level)
			if !bytes.HasPrefix(sealed, []byte("age-encryption.org/v1\n")) {
				t.Fatalf("sealed object does not start with the age header: %q", sealed[:min(30, len(sealed))])
			}
			h := sha256.Sum256(sealed)
			if got, want := sum.SHA256, hex.EncodeToString(h[:]); got != want {
				t.Errorf("Sum.SHA256 = %s, want %s", got, want)
			}
			if sum.SealedSize != int64(len(sealed)) || sum.PlainSize != int64(len(plain)) {
				t.Errorf("sizes = %d/%d, want %d/%d", sum.PlainSize, sum.SealedSize, len(plain), len(sealed))
			}
			if tc.size > 1<<20 && bytes.Contains(sealed, []byte("INSERT")) {
				t.Errorf("sealed object contains plaintext")
			}
			r, err := Open(bytes.NewReader(sealed), []age.Identity{id})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("round trip changed the data: got %d bytes, want %d", len(got), len(plain))
			}
		})
	}
}

func TestWrongKeyAndCorruption(t *testing.T) {
	id, _ := newKey(t)
	other, _ := newKey(t)
	plain := sqlLike(200_000, 7)
	sealed, _ := sealBytes(t, plain, []age.Recipient{id.Recipient()}, Fastest)

	if _, err := Open(bytes.NewReader(sealed), []age.Identity{other}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("open with the wrong key: got %v, want ErrWrongKey", err)
	}
	readAll := func(b []byte) error {
		r, err := Open(bytes.NewReader(b), []age.Identity{id})
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(io.Discard, r)
		return err
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 0x01
	if err := readAll(flipped); !errors.Is(err, ErrCorrupt) {
		t.Errorf("one flipped bit: got %v, want ErrCorrupt", err)
	}
	if err := readAll(sealed[:len(sealed)-100]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: got %v, want ErrCorrupt", err)
	}
	if err := readAll([]byte("INSERT INTO t VALUES (1);\n")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("not an age file: got %v, want ErrCorrupt", err)
	}
}

func TestSSHRecipient(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " lead@example.com"
	rec, err := ParseRecipient(line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	ids, err := LoadIdentities(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	plain := sqlLike(10_000, 3)
	sealed, _ := sealBytes(t, plain, []age.Recipient{rec}, Fastest)
	r, err := Open(bytes.NewReader(sealed), ids)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, plain) {
		t.Fatal("ssh-ed25519 round trip changed the data")
	}
}

func TestParseRecipientErrors(t *testing.T) {
	for _, s := range []string{"", "age1notakey", "AGE-SECRET-KEY-1QQQ", "ssh-ed25519 AAAAnope", "hello"} {
		if _, err := ParseRecipient(s); err == nil {
			t.Errorf("ParseRecipient(%q) = nil error, want an error", s)
		} else if strings.Contains(err.Error(), "AGE-SECRET-KEY-1QQQ") {
			t.Errorf("error echoes a private key: %v", err)
		}
	}
}

// TestManualPath proves the promise of the README: standard age and zstd open what we write.
func TestManualPath(t *testing.T) {
	for _, tool := range []string{"age", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: %v; install it with scripts/testenv.sh install", tool, err)
		}
	}
	id, keyAndPub := newKey(t)
	keyPath := strings.SplitN(keyAndPub, "\n", 2)[0]
	plain := sqlLike(2<<20, 11)
	sealed, _ := sealBytes(t, plain, []age.Recipient{id.Recipient()}, Fastest)
	obj := filepath.Join(t.TempDir(), "obj.sql.zst.age")
	if err := os.WriteFile(obj, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d -q`, "sh", keyPath, obj)
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("age -d | zstd -d: %v", err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("manual path: got %d bytes, want %d identical bytes", len(got), len(plain))
	}
}

func BenchmarkSeal(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	plain := sqlLike(16<<20, 5)
	for _, level := range []Level{Fastest, Default} {
		b.Run(string(level), func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				w, err := NewWriter(io.Discard, []age.Recipient{id.Recipient()}, level)
				if err != nil {
					b.Fatal(err)
				}
				w.Write(plain)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sealRaw encrypts payload (a zstd stream, or anything) to the recipient as a sealed object
// would be, without compressing it: a forger holding only the public recipient can do this.
func sealRaw(t *testing.T, payload []byte, r age.Recipient) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestBombs: a frame that declares a window far above what the encoder writes is refused
// before the window is allocated, and a tiny object that expands far beyond its declared plain
// size stops one byte past it.
func TestBombs(t *testing.T) {
	id, _ := newKey(t)
	// Magic, descriptor (no content size, not single segment), window descriptor 2^26 (the
	// library alone accepts up to 512 MiB), then one
	// last raw block of one byte.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3, 0x09, 0x00, 0x00, 'x'}
	rc, err := Open(bytes.NewReader(sealRaw(t, frame, id.Recipient())), []age.Identity{id})
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "window") {
		t.Errorf("a frame declaring a 64 MiB window: got %v, want ErrCorrupt naming the window", err)
	}

	// Every level the config accepts writes a window the decoder accepts.
	for _, l := range []Level{Fastest, Default, Better, Best} {
		plain := sqlLike(20<<20, 7)
		sealed, _ := sealBytes(t, plain, []age.Recipient{id.Recipient()}, l)
		rc, err := Open(bytes.NewReader(sealed), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("level %s: got %d bytes, %v; want the 20 MiB back", l, len(got), err)
		}
	}

	// 1 GiB of zeros seals to far less than 200 KB.
	var sealed bytes.Buffer
	w, err := NewWriter(&sealed, []age.Recipient{id.Recipient()}, Best)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range 1024 {
		w.Write(zeros)
	}
	w.Close()
	if sealed.Len() > 200<<10 {
		t.Fatalf("the bomb is %d bytes sealed, want under 200 KB", sealed.Len())
	}
	for _, tc := range []struct {
		declared int64
		want     string
	}{{1000, "more than the 1000 bytes declared"}, {2 << 30, "holds 1073741824 bytes, 2147483648 declared"}} {
		rc, err := Open(bytes.NewReader(sealed.Bytes()), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, ExactSize(rc, tc.declared))
		rc.Close()
		if !errors.Is(err, ErrPlainSize) || !strings.Contains(err.Error(), tc.want) || n > tc.declared {
			t.Errorf("declared %d: got %d bytes and %v, want at most the declared bytes and ErrPlainSize %q", tc.declared, n, err, tc.want)
		}
	}
}

package fileperm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false}, // owned by the test's own user: the group may be anyone's
		{0o604, false},
		{0o660, false},
	} {
		p := filepath.Join(dir, "key-"+tc.mode.String())
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckPrivate(p, "identity file")
		if tc.ok != (err == nil) {
			t.Errorf("mode %04o: got %v, want ok %v", tc.mode, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: %q does not say chmod 600 %s", tc.mode, err, p)
		}
	}
	if err := CheckPrivate(filepath.Join(dir, "missing"), "identity file"); err != nil {
		t.Errorf("a missing file: got %v, want nil (the read reports it)", err)
	}
}

func TestGroupReadByRoot(t *testing.T) {
	const backupd = 998
	for _, tc := range []struct {
		name      string
		uid, gid  uint32
		mode      os.FileMode
		euid      int
		groups    []int
		wantAllow bool
	}{
		{"root:backupd 0640 read by the service", 0, backupd, 0o640, 997, []int{backupd}, true},
		{"root:backupd 0440 read by the service", 0, backupd, 0o440, 997, []int{backupd}, true},
		{"group may write", 0, backupd, 0o660, 997, []int{backupd}, false},
		{"others may read", 0, backupd, 0o644, 997, []int{backupd}, false},
		{"not our group", 0, 50, 0o640, 997, []int{backupd}, false},
		{"not owned by root", 997, backupd, 0o640, 997, []int{backupd}, false},
		{"the reader is root", 0, backupd, 0o640, 0, []int{0, backupd}, false},
	} {
		if got := groupReadByRoot(tc.uid, tc.gid, tc.mode, tc.euid, tc.groups); got != tc.wantAllow {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.wantAllow)
		}
	}
}

func TestWriteKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	p := filepath.Join(dir, "dedup.key")
	if err := WriteKey(p, []byte("k1\n")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("got %v (%v), want a 0600 file", st, err)
	}
	if err := WriteKey(p, []byte("k2\n")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write: got %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "k1\n" {
		t.Errorf("the key is %q, want the first one kept", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestCheckUnwritable(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o644, true},
		{0o444, true},
		{0o600, true},
		{0o664, false},
		{0o646, false},
		{0o666, false},
	} {
		p := filepath.Join(dir, "keys-"+tc.mode.String())
		if err := os.WriteFile(p, []byte("age1…"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckUnwritable(p, "recipients_file")
		if tc.ok != (err == nil) {
			t.Errorf("mode %04o: got %v, want ok %v", tc.mode, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod go-w "+p) {
			t.Errorf("mode %04o: %q does not say chmod go-w %s", tc.mode, err, p)
		}
	}
}

// TestPrivate covers the forms the rule accepts and refuses for a given owner and reader, the
// root:GROUP exception included, which a test running as root cannot produce on disk.
func TestPrivate(t *testing.T) {
	const svc, grp = 10001, 10001
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		mode     os.FileMode
		euid     int
		want     bool
	}{
		{"own 0600", svc, grp, 0o600, svc, true},
		{"own 0400", svc, grp, 0o400, svc, true},
		{"own 0640", svc, grp, 0o640, svc, false},
		{"own 0644", svc, grp, 0o644, svc, false},
		{"root:grp 0440 (a Kubernetes Secret with fsGroup)", 0, grp, 0o440, svc, true},
		{"root:grp 0640", 0, grp, 0o640, svc, true},
		{"root:grp 0644", 0, grp, 0o644, svc, false},
		{"root:grp 0660", 0, grp, 0o660, svc, false},
		{"root:grp 0440 read by root", 0, grp, 0o440, 0, false},
	} {
		if got := Private(tc.uid, tc.gid, tc.mode, tc.euid, []int{grp}); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

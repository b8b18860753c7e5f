package storage

import (
	"bytes"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestExcludeMatcher(t *testing.T) {
	tests := []struct {
		patterns []string
		path     string
		dir      bool
		want     bool
	}{
		{[]string{"*.tmp"}, "a.tmp", false, true},
		{[]string{"*.tmp"}, "deep/er/a.tmp", false, true},
		{[]string{"*.tmp"}, "a.tmp.jpg", false, false},
		{[]string{"cache"}, "cache", true, true},
		{[]string{"cache"}, "x/cache/y.jpg", false, true}, // below an excluded directory
		{[]string{"cache/"}, "cache", false, false},       // directories only
		{[]string{"cache/"}, "cache", true, true},
		{[]string{"public/thumbs"}, "public/thumbs/a.jpg", false, true},
		{[]string{"/public/thumbs"}, "public/thumbs", true, true},
		{[]string{"public/thumbs"}, "x/public/thumbs", true, false}, // anchored
		{[]string{"**/node_modules"}, "node_modules", true, true},
		{[]string{"**/node_modules"}, "a/b/node_modules/x.js", false, true},
		{[]string{"tmp/**"}, "tmp/a/b", false, true},
		{[]string{"tmp/**"}, "tmpx/a", false, false},
		{[]string{"a/*/c"}, "a/b/c", false, true},
		{[]string{"a/*/c"}, "a/b/x/c", false, false},
		{[]string{"[Tt]humbs.db"}, "x/Thumbs.db", false, true},
		{[]string{"naïve *"}, "dir/naïve café.txt", false, true},
		{nil, "anything", false, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, ",")+" "+tt.path, func(t *testing.T) {
			m, err := newMatcher(tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.excluded(tt.path, tt.dir); got != tt.want {
				t.Errorf("excluded(%q, dir=%v) = %v, want %v", tt.path, tt.dir, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "a//b", "[", "/"} {
		if _, err := newMatcher([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted, want an error", bad)
		}
	}
}

func TestCheckRelPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"a", true},
		{"ünï cödé/naïve café.txt", true},
		{"a b/c d", true},
		{".hidden/..x", true},
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{"a\x00b", false},
		{"\xff\xfe", false},
	}
	for _, tt := range tests {
		err := checkRelPath(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("checkRelPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestKeyringDerivation(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, err := newKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newKeyring(key)
	other, _ := newKeyring(bytes.Repeat([]byte{8}, 32))
	if a.pol != b.pol || a.hdrID.String() != b.hdrID.String() {
		t.Errorf("derivation is not deterministic")
	}
	if a.pol == other.pol || a.hdrID.String() == other.hdrID.String() {
		t.Errorf("two name keys derived the same polynomial or header key")
	}
	if !a.pol.Irreducible() || a.pol.Deg() != 53 {
		t.Errorf("polynomial %v: irreducible %v, degree %d, want irreducible of degree 53", a.pol, a.pol.Irreducible(), a.pol.Deg())
	}
	// The derived identity is a standard age key: its string parses back (the bech32
	// checksum is right) and it decrypts what is encrypted to its recipient.
	id, err := age.ParseX25519Identity(a.hdrID.String())
	if err != nil {
		t.Fatalf("derived identity does not parse: %v", err)
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, a.hdrRcpt)
	w.Write([]byte("hello"))
	w.Close()
	if _, err := age.Decrypt(&buf, id); err != nil {
		t.Errorf("derived identity cannot decrypt for its recipient: %v", err)
	}
	sum := [32]byte{1, 2, 3}
	if a.blobID(sum) == other.blobID(sum) || a.blobID(sum) != b.blobID(sum) {
		t.Errorf("blob IDs must depend on the name key and nothing else")
	}
	if _, err := newKeyring([]byte("short")); err == nil {
		t.Errorf("a 5-byte name key was accepted")
	}
}

func TestParseKeys(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		key    string
		id     string
		header bool
		ok     bool
	}{
		{packKey("p", id), id, false, true},
		{headerKey("p", id), id, true, true},
		{"p/blobs/packs/01/" + id + ".zip", "", false, false},
		{"p/blobs/packs/ff/" + id + ".zst.age", "", false, false}, // wrong fan-out directory
		{"p/blobs/packs/01/0123.zst.age", "", false, false},
		{"q/blobs/packs/01/" + id + ".zst.age", "", false, false},
	}
	for _, tt := range tests {
		gotID, hdr, ok := parsePackKey("p", tt.key)
		if gotID != tt.id || hdr != tt.header || ok != tt.ok {
			t.Errorf("parsePackKey(%q) = %q, %v, %v; want %q, %v, %v", tt.key, gotID, hdr, ok, tt.id, tt.header, tt.ok)
		}
	}
	set, src, ok := parseMarkerKey("p", markerKey("p", "20261127T030000Z-3f9a", "up.loads"))
	if set != "20261127T030000Z-3f9a" || src != "up.loads" || !ok {
		t.Errorf("parseMarkerKey round trip: got %q %q %v", set, src, ok)
	}
}

func TestCheckTree(t *testing.T) {
	f := func(p string) *Entry { return &Entry{Path: p, Type: TypeFile} }
	d := func(p string) *Entry { return &Entry{Path: p, Type: TypeDir} }
	l := func(p string) *Entry { return &Entry{Path: p, Type: TypeSymlink, Link: "/"} }
	tests := []struct {
		name    string
		entries []*Entry
		wantErr string
	}{
		{"plain", []*Entry{d("a"), f("a/b"), f("c")}, ""},
		{"implied parents", []*Entry{f("a/b/c")}, ""},
		{"below a symlink", []*Entry{l("a"), f("a/b")}, `"a/b": lies below "a", which is a symlink`},
		{"below a file", []*Entry{f("a"), d("a/b")}, `lies below "a", which is a file`},
		{"twice", []*Entry{f("a"), d("a")}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkTree(tt.entries)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

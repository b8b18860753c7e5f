package storage

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"
	"testing"
)

// FuzzIndexEntries feeds index lines (what a hostile bucket can write, once it holds a
// recipient) to the decoder and validators a restore uses. Whatever they accept must be safe to
// write to disk: a clean relative path, no entry below a non-directory, no path twice, and
// file chunks that add up to the file's size.
func FuzzIndexEntries(f *testing.F) {
	f.Add([]byte(`{"path":"a","type":"dir","mode":493}` + "\n" + `{"path":"a/b","type":"file","mode":420,"size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`))
	f.Add([]byte(`{"path":"l","type":"symlink","link":"../../etc"}` + "\n" + `{"path":"l/x","type":"dir"}`))
	f.Add([]byte(`{"path":"../x","type":"dir"}`))
	f.Add([]byte(`{"path":"/abs","type":"dir"}`))
	f.Add([]byte(`{"path":"f","type":"file","size":5,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunks":[{"size":5,"at":[{"pack":"x","offset":-1}]}]}`))
	f.Add([]byte(`{"path":"a","type":"dir"}` + "\n" + `{"path":"a","type":"file"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []*Entry
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			e := &Entry{}
			if json.Unmarshal(line, e) != nil || checkEntry(e) != nil {
				return
			}
			entries = append(entries, e)
		}
		if checkTree(entries) != nil {
			return
		}
		seen := map[string]*Entry{}
		for _, e := range entries {
			if e.Path == "" || path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || e.Path == ".." || strings.HasPrefix(e.Path, "../") {
				t.Fatalf("accepted unsafe path %q", e.Path)
			}
			if seen[e.Path] != nil {
				t.Fatalf("accepted %q twice", e.Path)
			}
			seen[e.Path] = e
			if e.Type == TypeFile {
				var total int64
				for _, c := range e.Chunks {
					total += c.Size
				}
				if total != e.Size {
					t.Fatalf("accepted %q with chunks of %d bytes for size %d", e.Path, total, e.Size)
				}
			}
		}
		for _, e := range entries {
			for p := parentOf(e.Path); p != ""; p = parentOf(p) {
				if a := seen[p]; a != nil && a.Type != TypeDir {
					t.Fatalf("accepted %q below %s %q", e.Path, a.Type, p)
				}
			}
		}
	})
}

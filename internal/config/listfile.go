package config

import "strings"

// listFile reads a file the config names that holds one entry a line (recipients, trusted
// keys), skipping blank lines and # comments, and calls fn with the file as shown, the line's
// number and its trimmed text. A file that cannot be read is reported under key, and listFile
// returns false. The file may be readable by anyone but not writable by group or others.
func (d *decoder) listFile(path, key string, fn func(shown string, n int, line string)) bool {
	// Public lines, but whoever can add one (a recipient, a trusted key) gains access: the
	// file must not be writable by others.
	b, err := d.readPublic(path, key[strings.LastIndex(key, ".")+1:])
	if err != nil {
		d.report(key, err.Error(), "")
		return false
	}
	shown := d.shown(path)
	d.files = append(d.files, shown)
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(shown, i+1, line)
	}
	return true
}

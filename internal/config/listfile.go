package config

import "strings"

// listFile reads a file the config names that holds one entry a line (recipients, trusted
// keys), skipping blank lines and # comments, and calls fn with the file as shown, the line's
// number and its trimmed text. A file that cannot be read is reported under key, and listFile
// returns false.
func (d *decoder) listFile(path, key string, fn func(shown string, n int, line string)) bool {
	b, err := d.readFile(path)
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

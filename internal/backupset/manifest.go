package backupset

import (
	"encoding/json"
	"fmt"

	"github.com/backupd/backupd/internal/dump"
)

// Dump decodes the database part of the manifest: nil, nil when the set has none (a
// storage-only set). A part written by a newer dump format is an error, never a guess: an older
// reader could restore it wrongly.
func (m *Manifest) Dump() (*dump.Result, error) {
	if len(m.MySQL) == 0 {
		return nil, nil
	}
	var r dump.Result
	if err := json.Unmarshal(m.MySQL, &r); err != nil {
		return nil, fmt.Errorf("read the database part of set %s: %w", m.SetID, err)
	}
	if r.FormatVersion > dump.FormatVersion {
		return nil, fmt.Errorf("set %s has dump format %d; this backupd reads up to %d: use a newer backupd", m.SetID, r.FormatVersion, dump.FormatVersion)
	}
	return &r, nil
}

// Counts returns how many tables (not views or sequences) and rows the set's database part
// holds; zero when it has none or it cannot be read.
func (m *Manifest) Counts() (tables int, rows int64) {
	r, err := m.Dump()
	if err != nil || r == nil {
		return 0, 0
	}
	for _, db := range r.Databases {
		for _, t := range db.Tables {
			if t.Type == dump.TypeTable {
				tables++
			}
		}
	}
	return tables, r.Rows
}

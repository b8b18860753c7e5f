package restore

import (
	"strings"
	"testing"
)

func TestCharsetClause(t *testing.T) {
	for _, tc := range []struct {
		charset, collation string
		want               string
		wantErr            string
	}{
		{"utf8mb4", "utf8mb4_unicode_ci", " CHARACTER SET `utf8mb4` COLLATE `utf8mb4_unicode_ci`", ""},
		{"latin1", "", " CHARACTER SET `latin1`", ""},
		{"", "", "", ""},
		{"utf8mb4; DROP DATABASE mysql", "", "", "character set"},
		{"utf8mb4", "utf8mb4_bin`; GRANT ALL ON *.* TO x", "", "collation"},
		{"utf8mb4", "x\x1b[2J", "", "collation"},
		{strings.Repeat("a", 65), "", "", "character set"},
	} {
		got, err := charsetClause(tc.charset, tc.collation)
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("charsetClause(%q, %q) = %q, %v; want %q", tc.charset, tc.collation, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("charsetClause(%q, %q) = %q, %v; want an error about the %s", tc.charset, tc.collation, got, err, tc.wantErr)
		}
	}
}

package mysqldsn

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		dsn     string
		wantErr error
	}{
		{"root@tcp(127.0.0.1:3306)/", nil},
		{"root@tcp(127.0.0.1:3306)/?allowAllFiles=false", nil},
		{"root@tcp(127.0.0.1:3306)/?allowAllFiles=true", ErrAllowAllFiles},
		{"u:p@unix(/run/mysqld/mysqld.sock)/?timeout=5s&allowAllFiles=true", ErrAllowAllFiles},
	} {
		cfg, err := Parse(tc.dsn)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Parse(%q): got error %v, want %v", tc.dsn, err, tc.wantErr)
			continue
		}
		if err == nil && cfg.AllowAllFiles {
			t.Errorf("Parse(%q): AllowAllFiles is on", tc.dsn)
		}
	}
}

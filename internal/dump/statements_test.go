package dump

import (
	"errors"
	"strings"
	"testing"
)

func TestReadStatements(t *testing.T) {
	long := strings.Repeat("x", 300<<10)
	tests := []struct {
		name string
		in   string
		want []string
		err  error
	}{
		{"data object", "-- header\nSET NAMES binary;\nINSERT INTO `t` VALUES (1,'a;b'),(2,'c\\nd');\n",
			[]string{"SET NAMES binary", "INSERT INTO `t` VALUES (1,'a;b'),(2,'c\\nd')"}, nil},
		{"no final newline", "SELECT 1;", []string{"SELECT 1"}, nil},
		{"delimiter block", "SET sql_mode = '';\nDELIMITER ;;\nCREATE PROCEDURE p()\nBEGIN\n  -- keep me ;\n  SELECT 1;\n\nEND;;\nDELIMITER ;\nSELECT 2;\n",
			[]string{"SET sql_mode = ''", "CREATE PROCEDURE p()\nBEGIN\n  -- keep me ;\n  SELECT 1;\n\nEND", "SELECT 2"}, nil},
		{"CR inside a body is kept", "DELIMITER $$\nCREATE TRIGGER t\r\nBEGIN END$$\nDELIMITER ;\n", []string{"CREATE TRIGGER t\r\nBEGIN END"}, nil},
		{"a line longer than the buffer", "INSERT INTO t VALUES ('" + long + "');\n", []string{"INSERT INTO t VALUES ('" + long + "')"}, nil},
		{"truncated data object", "SET NAMES binary;\nINSERT INTO t VALUES (1),(2", []string{"SET NAMES binary"}, ErrTruncatedObject},
		{"truncated block", "DELIMITER ;;\nCREATE PROCEDURE p()\nBEGIN\n", nil, ErrTruncatedObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := ReadStatements(strings.NewReader(tt.in), func(s []byte) error {
				got = append(got, string(s))
				return nil
			})
			if !errors.Is(err, tt.err) {
				t.Fatalf("error: got %v, want %v", err, tt.err)
			}
			if strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
				t.Errorf("statements:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

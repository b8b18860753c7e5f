package dump

import (
	"strings"

	"github.com/go-sql-driver/mysql"
)

// RedactDSNError returns err's message with nothing of dsn's password in it: the one redactor
// for every error that was made from a DSN (parsing it, or connecting with it). When the DSN
// parses, the password is known and cut out wherever it appears. When it does not, the parser
// may have split it anywhere, so any piece of it between ':', '/' and '@' may be part of the
// password: a message quoting such a piece is replaced by a generic one.
func RedactDSNError(dsn string, err error) string {
	msg := err.Error()
	if cfg, perr := mysql.ParseDSN(dsn); perr == nil {
		if cfg.Passwd != "" {
			msg = strings.ReplaceAll(msg, cfg.Passwd, "xxxxx")
		}
		return msg
	}
	secret := dsn
	if at := strings.LastIndexByte(dsn, '@'); at >= 0 {
		secret = dsn[:at]
	}
	for _, part := range strings.FieldsFunc(secret, func(r rune) bool { return r == ':' || r == '/' || r == '@' }) {
		if strings.Contains(msg, part) {
			return "invalid DSN: it does not parse as user[:password]@protocol(address)/[database]; " +
				"note that it must end with `/` or `/database`, before any ?options (details withheld: they may contain the password)"
		}
	}
	return msg
}

// QuoteIdent quotes a MySQL identifier with backticks, doubling backticks inside it: how dump
// writes every name, and how restore and drills name what they create.
func QuoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

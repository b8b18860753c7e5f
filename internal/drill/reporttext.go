package drill

import (
	"errors"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/termsafe"
)

// maxServerText is how much of a server's error message a report keeps. MariaDB quotes up to
// 192 bytes of a duplicate value; the message around it is short.
const maxServerText = 300

// reportError is err's message as it may go into a report, which is stored on every target and
// mailed: a server's error message is cut to its first line, because a statement in a hostile
// set can make the server quote a file or a value into it (a duplicate key over LOAD_FILE of
// an identity file puts the key on its third line), and no control character survives.
func reportError(err error) string {
	if err == nil {
		return ""
	}
	msg := humanize.OneLine(err).Error()
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		full := me.Error()
		// OneLine trimmed the lines of the whole message; find the server's text as it is now.
		flat := humanize.OneLine(errors.New(full)).Error()
		cut := termsafe.Line(full, maxServerText)
		switch {
		case strings.Contains(msg, full):
			msg = strings.Replace(msg, full, cut, 1)
		case strings.Contains(msg, flat):
			msg = strings.Replace(msg, flat, cut, 1)
		}
	}
	return termsafe.Text(msg)
}

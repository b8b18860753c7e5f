package config

import (
	"errors"
	"strings"
)

// expandEnv expands ${NAME} and ${NAME:-default} (the default applies when NAME is unset or
// empty) and turns $$ into $. A $ before anything else is kept, except before a name: `$NAME`
// is a likely mistake for ${NAME}, so it is an error rather than a silent literal. Errors never
// quote the text, which may be a secret.
func expandEnv(s string, lookup func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i += 2
		case next == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, errors.New("`${` without a closing `}`; write $$ for a literal $")
			}
			name, def, hasDef := strings.Cut(s[i+2:i+2+end], ":-")
			if !validEnvName(name) {
				return "", nil, errors.New("`${...}` must hold an environment variable name (letters, digits, _), optionally followed by :-default; write $$ for a literal $")
			}
			v, ok := lookup(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok && !hasDef:
				missing = append(missing, name)
			}
			b.WriteString(v)
			i += 2 + end + 1
		case next == '_' || isLetter(next):
			return "", nil, errors.New("`$` followed by a name is not expanded: write ${NAME} for an environment variable, or $$ for a literal $")
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), missing, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func validEnvName(s string) bool {
	if s == "" || !(s[0] == '_' || isLetter(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c == '_' || isLetter(c) || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

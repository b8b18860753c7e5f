package restore

import "fmt"

// charsetClause is " CHARACTER SET `cs` COLLATE `coll`" for CREATE DATABASE, from a manifest's
// charset and collation. The manifest is input from a target, so each name must be a plain
// charset or collation name (ASCII letters, digits and _, at most 64 characters) and is quoted
// besides: a crafted value cannot add SQL to the statement.
func charsetClause(charset, collation string) (string, error) {
	var out string
	for _, p := range []struct{ kw, name, what string }{{" CHARACTER SET ", charset, "character set"}, {" COLLATE ", collation, "collation"}} {
		if p.name == "" {
			continue
		}
		if !plainName(p.name) {
			return "", fmt.Errorf("the set names %s %q, which is not a %s name (letters, digits and _ only): the manifest is damaged or forged", p.what, p.name, p.what)
		}
		out += p.kw + "`" + p.name + "`"
	}
	return out, nil
}

func plainName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

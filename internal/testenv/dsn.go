package testenv

import "strings"

// secretPassword holds every character that splits a DSN: a redactor that cuts at the first
// or last of them leaks a piece of it.
const secretPassword = "Sx7/Qz@Kw:Vb"

// SecretDSNs are DSNs whose password is secretPassword, well-formed and malformed, all
// pointing at a port where nothing listens, for tests that no error message shows it.
func SecretDSNs() []string {
	return []string{
		"root:" + secretPassword + "@tcp(127.0.0.1:1)/",
		"root:" + secretPassword + "@tcp(127.0.0.1:1)/?timeout=1s",
		"root:" + secretPassword + "@tcp(127.0.0.1:1)",
		"root:" + secretPassword + "@tcp(127.0.0.1:1/",
		"root:" + secretPassword + "@bogus(127.0.0.1:1)/",
		"root:" + secretPassword + "@127.0.0.1:1/",
		"root:" + secretPassword,
	}
}

// LeaksSecret reports whether msg holds the password of SecretDSNs or any piece of it.
func LeaksSecret(msg string) bool {
	for _, part := range strings.FieldsFunc(secretPassword, func(r rune) bool { return r == ':' || r == '/' || r == '@' }) {
		if strings.Contains(msg, part) {
			return true
		}
	}
	return false
}

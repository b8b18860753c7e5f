package restore

import (
	"bytes"
	"errors"
)

// A small lexer of MariaDB/MySQL statements, just enough to tell what a statement does (allow.go):
// strings, quoted identifiers, comments, numbers, words and punctuation. It follows the
// server's rules where a difference would let text the lexer takes for a string or a comment
// run as code: backslash escapes unless NO_BACKSLASH_ESCAPES, "…" as an identifier under
// ANSI_QUOTES, `-- ` comments only with the space, and executable comments (/*! … */,
// /*M! … */), whose content the server runs, lexed as code.

type tokKind int

const (
	tokEOF     tokKind = iota
	tokWord            // unquoted identifier or keyword
	tokIdent           // `quoted` (or "quoted" under ANSI_QUOTES) identifier
	tokString          // '…' (or "…" without ANSI_QUOTES)
	tokNumber          // 12, -1 is two tokens, 1.5e0, 0x1F
	tokSysVar          // @@name, @@global.name
	tokUserVar         // @name, @`name`, @'name'
	tokPunct           // one byte: ( ) , . = ; and every other operator byte
)

type token struct {
	kind tokKind
	s, e int // the token's bytes in the statement
}

// lexMode is what of the session's sql_mode changes lexing.
type lexMode struct {
	noBackslash bool // NO_BACKSLASH_ESCAPES
	ansiQuotes  bool // ANSI_QUOTES (also implied by ANSI, ORACLE, MSSQL, DB2, POSTGRESQL, MAXDB)
}

var errLex = errors.New("unterminated string, identifier or comment")

type lexer struct {
	b      []byte
	i      int
	mode   lexMode
	inExec bool // inside /*! … */
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// next returns the next token; tokEOF at the end, or an error for text the server would read
// differently from any token (an unterminated string swallows the rest).
func (l *lexer) next() (token, error) {
	b := l.b
	for l.i < len(b) {
		c := b[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.i++
		case c == '#':
			l.skipLine()
		case c == '-' && l.i+1 < len(b) && b[l.i+1] == '-' && (l.i+2 == len(b) || b[l.i+2] <= ' '):
			l.skipLine()
		case c == '/' && l.i+1 < len(b) && b[l.i+1] == '*':
			if l.i+2 < len(b) && b[l.i+2] == '!' {
				l.i += 3
				l.skipVersion()
				l.inExec = true
				continue
			}
			if l.i+3 < len(b) && b[l.i+2] == 'M' && b[l.i+3] == '!' {
				l.i += 4
				l.skipVersion()
				l.inExec = true
				continue
			}
			end := bytes.Index(b[l.i+2:], []byte("*/"))
			if end < 0 {
				return token{}, errLex
			}
			l.i += 2 + end + 2
		case c == '*' && l.inExec && l.i+1 < len(b) && b[l.i+1] == '/':
			l.i += 2
			l.inExec = false
		default:
			return l.token()
		}
	}
	return token{kind: tokEOF, s: len(b), e: len(b)}, nil
}

func (l *lexer) skipLine() {
	for l.i < len(l.b) && l.b[l.i] != '\n' {
		l.i++
	}
}

// skipVersion skips the server version after /*! (up to six digits).
func (l *lexer) skipVersion() {
	for n := 0; n < 6 && l.i < len(l.b) && isDigit(l.b[l.i]); n++ {
		l.i++
	}
}

func (l *lexer) token() (token, error) {
	b, s := l.b, l.i
	c := b[s]
	switch {
	case c == '\'':
		return l.quoted(tokString, '\'', !l.mode.noBackslash)
	case c == '"':
		if l.mode.ansiQuotes {
			return l.quoted(tokIdent, '"', false)
		}
		return l.quoted(tokString, '"', !l.mode.noBackslash)
	case c == '`':
		return l.quoted(tokIdent, '`', false)
	case c == '@':
		if s+1 < len(b) && b[s+1] == '@' {
			l.i = s + 2
			for l.i < len(b) && (isWordByte(b[l.i]) || b[l.i] == '.') {
				l.i++
			}
			return token{kind: tokSysVar, s: s, e: l.i}, nil
		}
		l.i = s + 1
		if l.i < len(b) && (b[l.i] == '`' || b[l.i] == '\'' || b[l.i] == '"') {
			if _, err := l.quoted(tokIdent, b[l.i], b[l.i] != '`' && !l.mode.noBackslash); err != nil {
				return token{}, err
			}
			return token{kind: tokUserVar, s: s, e: l.i}, nil
		}
		for l.i < len(b) && (isWordByte(b[l.i]) || b[l.i] == '.') {
			l.i++
		}
		return token{kind: tokUserVar, s: s, e: l.i}, nil
	case isDigit(c) || c == '.' && s+1 < len(b) && isDigit(b[s+1]):
		return l.number()
	case isWordByte(c):
		l.i = s
		for l.i < len(b) && isWordByte(b[l.i]) {
			l.i++
		}
		return token{kind: tokWord, s: s, e: l.i}, nil
	}
	l.i = s + 1
	return token{kind: tokPunct, s: s, e: l.i}, nil
}

// quoted reads a string or quoted identifier: a doubled quote is the quote itself, and with
// backslash a backslash escapes the next byte.
func (l *lexer) quoted(kind tokKind, q byte, backslash bool) (token, error) {
	b, s := l.b, l.i
	i := s + 1
	for i < len(b) {
		switch {
		case backslash && b[i] == '\\':
			i += 2
			continue
		case b[i] == q:
			if i+1 < len(b) && b[i+1] == q {
				i += 2
				continue
			}
			l.i = i + 1
			return token{kind: kind, s: s, e: l.i}, nil
		}
		i++
	}
	return token{}, errLex
}

// number reads 12, 1.5, 1.5e-3, .5, 0x1F or 0b101; digits followed by letters are a word
// (MariaDB identifiers may start with a digit).
func (l *lexer) number() (token, error) {
	b, s := l.b, l.i
	i := s
	if b[i] == '0' && i+1 < len(b) && (b[i+1] == 'x' || b[i+1] == 'X' || b[i+1] == 'b' || b[i+1] == 'B') {
		j := i + 2
		for j < len(b) && isWordByte(b[j]) {
			j++
		}
		l.i = j
		if ok := validRadix(b[i+1], b[i+2:j]); ok {
			return token{kind: tokNumber, s: s, e: j}, nil
		}
		return token{kind: tokWord, s: s, e: j}, nil
	}
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j < len(b) && isDigit(b[j]) {
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			i = j
		}
	}
	if i < len(b) && isWordByte(b[i]) {
		for i < len(b) && isWordByte(b[i]) {
			i++
		}
		l.i = i
		return token{kind: tokWord, s: s, e: i}, nil
	}
	l.i = i
	return token{kind: tokNumber, s: s, e: i}, nil
}

func validRadix(r byte, digits []byte) bool {
	if len(digits) == 0 {
		return false
	}
	for _, c := range digits {
		ok := isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		if r == 'b' || r == 'B' {
			ok = c == '0' || c == '1'
		}
		if !ok {
			return false
		}
	}
	return true
}

// lexAll returns every token of stmt (tokEOF excluded).
func lexAll(stmt []byte, mode lexMode) ([]token, error) {
	l := lexer{b: stmt, mode: mode}
	var out []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		if t.kind == tokEOF {
			if l.inExec {
				return nil, errLex
			}
			return out, nil
		}
		out = append(out, t)
	}
}

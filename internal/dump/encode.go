package dump

import (
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// colKind decides how a column is selected, written as an SQL literal, and hashed.
type colKind uint8

const (
	kindInt        colKind = iota // integers, YEAR, ENUM (as index), SET (as bitmask): bare integer
	kindDecimal                   // DECIMAL: bare exact text
	kindFloat                     // FLOAT, DOUBLE: read as DOUBLE, written as a round-trip double literal
	kindTemporal                  // DATE, DATETIME, TIMESTAMP, TIME: quoted text
	kindText                      // character strings in an ASCII-safe charset: escaped string
	kindTextHex                   // character strings in a charset whose characters may contain ASCII bytes: hex
	kindBinary                    // binary strings: escaped when valid UTF-8, hex otherwise
	kindHex                       // BIT, spatial, VECTOR: hex
	kindIntroduced                // JSON (MySQL), UUID, INET4, INET6: _utf8mb4'text'
)

// column is one column of a table as information_schema describes it.
type column struct {
	Name       string
	DataType   string // information_schema DATA_TYPE, lower case
	ColumnType string
	Charset    string
	Generated  bool // VIRTUAL or STORED generated: read and checksummed, never inserted
	kind       colKind
	expr       string // the select expression
}

// asciiSafeCharsets are the charsets in which every byte of a multi-byte character is >= 0x80,
// so escaping the bytes one by one yields a literal that any client parses the same way.
var asciiSafeCharsets = map[string]bool{
	"utf8": true, "utf8mb3": true, "utf8mb4": true, "latin1": true, "latin2": true, "latin5": true,
	"latin7": true, "ascii": true, "cp1250": true, "cp1251": true, "cp1256": true, "cp1257": true,
	"cp850": true, "cp852": true, "cp866": true, "dec8": true, "hp8": true, "koi8r": true,
	"koi8u": true, "swe7": true, "greek": true, "hebrew": true, "armscii8": true, "geostd8": true,
	"keybcs2": true, "macce": true, "macroman": true, "tis620": true, "euckr": true, "ujis": true,
	"eucjpms": true, "gb2312": true,
}

// QuotedTextCharset reports whether the dump writes the values of a character column in charset
// cs as quoted strings escaped byte by byte (FORMAT.md "Values"); a column in any other charset
// is written as a hex literal. This is the one table of that fact: restore's LOAD DATA path
// converts exactly these literals and must agree with it.
func QuotedTextCharset(cs string) bool { return asciiSafeCharsets[cs] }

// classify sets the column's kind and select expression; it fails for a type it does not know,
// because guessing would risk a backup that does not restore.
func (c *column) classify() error {
	q := QuoteIdent(c.Name)
	c.expr = q
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		c.kind = kindInt
	case "enum":
		// The index, not the label: an invalid value stored as index 0 and a '' member both read
		// as '', but only the index restores each exactly.
		c.kind, c.expr = kindInt, "("+q+"+0)"
	case "set":
		// |0 yields BIGINT UNSIGNED; +0 would be signed and wrap a 64-member set.
		c.kind, c.expr = kindInt, "("+q+"|0)"
	case "decimal", "numeric":
		c.kind = kindDecimal
	case "float", "double", "real", "double precision":
		// The server prints FLOAT with 6 digits; as a DOUBLE it prints the shortest text that
		// parses back to the same double, which for a FLOAT is its exact value.
		c.kind, c.expr = kindFloat, "("+q+"+0e0)"
	case "date", "datetime", "timestamp", "time":
		c.kind = kindTemporal
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if c.Charset == "binary" {
			c.kind = kindBinary
		} else if QuotedTextCharset(c.Charset) {
			c.kind = kindText
		} else {
			c.kind = kindTextHex
		}
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.kind = kindBinary
	case "bit", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection", "geomcollection", "vector":
		// Spatial values are read in the server's internal format (SRID + WKB), which both
		// MySQL and MariaDB accept back as a binary string.
		c.kind = kindHex
	case "json", "uuid", "inet4", "inet6":
		// These parse text; a binary-charset literal of the right length would be taken as the
		// binary form instead (and MySQL refuses JSON from a binary string).
		c.kind = kindIntroduced
	default:
		return fmt.Errorf("column %s has type %s, which backupd does not know how to dump faithfully", QuoteIdent(c.Name), c.ColumnType)
	}
	return nil
}

// selectColumns is the SELECT list that both the dump and Checksum read a table with. Every
// column is read, including generated and invisible ones, in ordinal order.
func selectColumns(cols []column) string {
	var b strings.Builder
	for i := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(cols[i].expr)
	}
	return b.String()
}

// --- SQL literals ---

var escapeTable = func() (t [256]byte) {
	t[0] = '0'
	t['\n'] = 'n'
	t['\r'] = 'r'
	t['\\'] = '\\'
	t['\''] = '\''
	t[0x1a] = 'Z'
	return t
}()

// appendEscaped appends src with backslash escapes so the literal stays on one line and is read
// back byte for byte under SET NAMES binary (and NO_BACKSLASH_ESCAPES off).
func appendEscaped(dst, src []byte, quote bool) []byte {
	if quote {
		dst = append(dst, '\'')
	}
	start := 0
	for i, c := range src {
		if e := escapeTable[c]; e != 0 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', e)
			start = i + 1
		}
	}
	dst = append(dst, src[start:]...)
	if quote {
		dst = append(dst, '\'')
	}
	return dst
}

func appendHex(dst, src []byte) []byte {
	if len(src) == 0 {
		return append(dst, "''"...)
	}
	dst = append(dst, "0x"...)
	return hex.AppendEncode(dst, src)
}

// appendLiteral appends the SQL literal for one value read with selectColumns.
func appendLiteral(dst []byte, v driver.Value, c *column) ([]byte, error) {
	if v == nil {
		return append(dst, "NULL"...), nil
	}
	switch x := v.(type) {
	case int64:
		if c.kind == kindInt {
			return strconv.AppendInt(dst, x, 10), nil
		}
	case uint64:
		if c.kind == kindInt {
			return strconv.AppendUint(dst, x, 10), nil
		}
	case float64:
		if c.kind == kindFloat {
			return appendFloat(dst, x), nil
		}
	case float32:
		if c.kind == kindFloat {
			return appendFloat(dst, float64(x)), nil
		}
	case []byte:
		return appendBytesLiteral(dst, x, c)
	case string:
		return appendBytesLiteral(dst, []byte(x), c)
	}
	return dst, fmt.Errorf("column %s: unexpected %T value from the driver", QuoteIdent(c.Name), v)
}

func appendBytesLiteral(dst, b []byte, c *column) ([]byte, error) {
	switch c.kind {
	case kindInt, kindDecimal:
		if len(b) == 0 {
			return dst, fmt.Errorf("column %s: empty numeric value", QuoteIdent(c.Name))
		}
		return append(dst, b...), nil
	case kindFloat:
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return dst, fmt.Errorf("column %s: parse %q as a double: %w", QuoteIdent(c.Name), b, err)
		}
		return appendFloat(dst, f), nil
	case kindText, kindTemporal:
		return appendEscaped(dst, b, true), nil
	case kindBinary:
		if utf8.Valid(b) {
			return appendEscaped(dst, b, true), nil
		}
		return appendHex(dst, b), nil
	case kindTextHex, kindHex:
		return appendHex(dst, b), nil
	case kindIntroduced:
		return appendEscaped(append(dst, "_utf8mb4"...), b, true), nil
	}
	return dst, fmt.Errorf("column %s: unknown kind %d", QuoteIdent(c.Name), c.kind)
}

// appendFloat writes the shortest decimal that parses back to f, with an exponent so the server
// parses it as a double (correctly rounded) rather than as a DECIMAL.
func appendFloat(dst []byte, f float64) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
	for _, c := range dst[start:] {
		if c == 'e' {
			return dst
		}
	}
	return append(dst, "e0"...)
}

// --- canonical row encoding for checksums ---

// Value tags of the canonical encoding; see FORMAT.md.
const (
	tagNull  = 0x00
	tagInt   = 0x01 // 8 bytes, little-endian two's complement (or the unsigned value)
	tagFloat = 0x02 // 8 bytes, little-endian IEEE 754 binary64
	tagBytes = 0x03 // uvarint length, then the bytes
)

// appendCanonical appends one value's canonical encoding. It depends only on the value, never on
// how the driver or the server happened to format it.
func appendCanonical(dst []byte, v driver.Value, c *column) ([]byte, error) {
	if v == nil {
		return append(dst, tagNull), nil
	}
	switch c.kind {
	case kindInt:
		var u uint64
		switch x := v.(type) {
		case int64:
			u = uint64(x)
		case uint64:
			u = x
		case []byte:
			if len(x) > 0 && x[0] == '-' {
				n, err := strconv.ParseInt(string(x), 10, 64)
				if err != nil {
					return dst, fmt.Errorf("column %s: %w", QuoteIdent(c.Name), err)
				}
				u = uint64(n)
			} else {
				n, err := strconv.ParseUint(string(x), 10, 64)
				if err != nil {
					return dst, fmt.Errorf("column %s: %w", QuoteIdent(c.Name), err)
				}
				u = n
			}
		default:
			return dst, fmt.Errorf("column %s: unexpected %T value from the driver", QuoteIdent(c.Name), v)
		}
		dst = append(dst, tagInt)
		return binary.LittleEndian.AppendUint64(dst, u), nil
	case kindFloat:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		case []byte:
			var err error
			if f, err = strconv.ParseFloat(string(x), 64); err != nil {
				return dst, fmt.Errorf("column %s: %w", QuoteIdent(c.Name), err)
			}
		default:
			return dst, fmt.Errorf("column %s: unexpected %T value from the driver", QuoteIdent(c.Name), v)
		}
		dst = append(dst, tagFloat)
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	}
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	case int64: // a driver that parses more types than today's
		b = strconv.AppendInt(nil, x, 10)
	case uint64:
		b = strconv.AppendUint(nil, x, 10)
	default:
		return dst, fmt.Errorf("column %s: unexpected %T value from the driver", QuoteIdent(c.Name), v)
	}
	dst = append(dst, tagBytes)
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...), nil
}

package dump

import (
	"database/sql/driver"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestEncodeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"orders", "orders"},
		{"Order_Items-2.v1", "Order_Items-2.v1"},
		{".", "%2E"},
		{"..", "%2E."},
		{".hidden", "%2Ehidden"},
		{"a/b", "a%2Fb"},
		{"back`tick", "back%60tick"},
		{"spa ce", "spa%20ce"},
		{"ü", "%C3%BC"},
		{"%41", "%2541"},
		{"@global", "%40global"},
		{"new\nline", "new%0Aline"},
	}
	for _, tt := range tests {
		if got := encodeName(tt.in); got != tt.want {
			t.Errorf("encodeName(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
	if got, want := dataObject("shop", "orders", 3), "shop/data/orders/00003.sql"; got != want {
		t.Errorf("dataObject: got %q, want %q", got, want)
	}
	if got, want := kindObject("a b", "views", "v`1"), "a%20b/views/v%601.sql"; got != want {
		t.Errorf("kindObject: got %q, want %q", got, want)
	}
}

func TestAppendEscaped(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"plain", "'plain'"},
		{"it's", `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
		{"a\nb\rc", `'a\nb\rc'`},
		{"nul\x00ctrlz\x1a", `'nul\0ctrlz\Z'`},
		{`"double"`, `'"double"'`},
		{"tab\t", "'tab\t'"},
		{"ü😀", "'ü😀'"},
	}
	for _, tt := range tests {
		got := string(appendEscaped(nil, []byte(tt.in), true))
		if got != tt.want {
			t.Errorf("appendEscaped(%q): got %s, want %s", tt.in, got, tt.want)
		}
		if strings.ContainsAny(got, "\n\r") {
			t.Errorf("appendEscaped(%q): got %q, which spans lines", tt.in, got)
		}
	}
}

func TestAppendLiteral(t *testing.T) {
	col := func(dt, cs string) *column {
		c := &column{Name: "c", DataType: dt, ColumnType: dt, Charset: cs}
		if err := c.classify(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		v    driver.Value
		c    *column
		want string
	}{
		{"NULL", nil, col("varchar", "utf8mb4"), "NULL"},
		{"signed", int64(math.MinInt64), col("bigint", ""), "-9223372036854775808"},
		{"unsigned", uint64(math.MaxUint64), col("bigint", ""), "18446744073709551615"},
		{"year 0000 as a number", int64(0), col("year", ""), "0"},
		{"decimal", []byte("-1.500"), col("decimal", ""), "-1.500"},
		{"double with an exponent", 1e22, col("double", ""), "1e+22"},
		{"double without one gets e0", 0.1, col("double", ""), "0.1e0"},
		{"float as its exact double", float64(float32(0.1)), col("float", ""), "0.10000000149011612e0"},
		{"denormal", 5e-324, col("double", ""), "5e-324"},
		{"text", []byte("a'b\n"), col("varchar", "utf8mb4"), `'a\'b\n'`},
		{"latin1 bytes", []byte{0xe9, 0xff}, col("varchar", "latin1"), "'\xe9\xff'"},
		{"sjis is hex", []byte{0x95, 0x5c}, col("varchar", "sjis"), "0x955c"},
		{"ucs2 is hex", []byte{0, 0x27}, col("char", "ucs2"), "0x0027"},
		{"binary valid utf-8 is escaped", []byte("\x00ok"), col("varbinary", ""), `'\0ok'`},
		{"binary invalid utf-8 is hex", []byte{0xff, 0x00}, col("blob", ""), "0xff00"},
		{"empty binary", []byte{}, col("blob", ""), "''"},
		{"bit", []byte{0x01, 0xff}, col("bit", ""), "0x01ff"},
		{"geometry", []byte{0xe6, 0x10, 0, 0, 1}, col("point", ""), "0xe610000001"},
		{"json", []byte(`{"a":"\"x"}`), col("json", ""), `_utf8mb4'{"a":"\\"x"}'`},
		{"inet6", []byte("1:2:3:4:5:6:7:88"), col("inet6", ""), "_utf8mb4'1:2:3:4:5:6:7:88'"},
		{"time", []byte("-838:59:59.000000"), col("time", ""), "'-838:59:59.000000'"},
		{"enum index", int64(0), col("enum", "utf8mb4"), "0"},
		{"set bitmask", uint64(math.MaxUint64), col("set", "utf8mb4"), "18446744073709551615"},
	}
	for _, tt := range tests {
		got, err := appendLiteral(nil, tt.v, tt.c)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

// Every float literal parses back to the identical bits.
func TestFloatLiteralRoundTrip(t *testing.T) {
	c := &column{Name: "f", DataType: "float"}
	c.classify()
	vals := []float64{0, 1, -1, 0.1, 1.0 / 3, math.MaxFloat64, math.SmallestNonzeroFloat64, float64(math.MaxFloat32),
		float64(float32(1.0000001)), float64(math.SmallestNonzeroFloat32), 16777217, 9007199254740993, 123456.789}
	for _, v := range vals {
		lit, err := appendLiteral(nil, v, c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := strconv.ParseFloat(string(lit), 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(v) {
			t.Errorf("%v: literal %s parses back to %v (%v)", v, lit, back, err)
		}
	}
}

func TestCanonicalIndependentOfDriverRepresentation(t *testing.T) {
	tests := []struct {
		dt   string
		a, b driver.Value
	}{
		{"int", int64(-5), []byte("-5")},
		{"bigint", uint64(math.MaxUint64), []byte("18446744073709551615")},
		{"year", int64(0), []byte("0000")},
		{"double", 0.1, []byte("0.1")},
		{"float", float64(float32(0.1)), []byte("0.10000000149011612")},
	}
	for _, tt := range tests {
		c := &column{Name: "c", DataType: tt.dt}
		c.classify()
		a, err1 := appendCanonical(nil, tt.a, c)
		b, err2 := appendCanonical(nil, tt.b, c)
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("%s: %v encodes as %x (%v), %q as %x (%v): want equal", tt.dt, tt.a, a, err1, tt.b, b, err2)
		}
	}
	// NULL, empty and the text NULL are three different encodings.
	c := &column{Name: "c", DataType: "varchar", Charset: "utf8mb4"}
	c.classify()
	n, _ := appendCanonical(nil, nil, c)
	e, _ := appendCanonical(nil, []byte{}, c)
	s, _ := appendCanonical(nil, []byte("NULL"), c)
	if string(n) == string(e) || string(e) == string(s) || string(n) == string(s) {
		t.Errorf("NULL %x, '' %x and 'NULL' %x: want three different encodings", n, e, s)
	}
}

func TestChooseDelimiter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"CREATE VIEW v AS SELECT 1", ";;"},
		{"BEGIN SELECT 1; END;", "$$"}, // "END;" + ";;" would end early
		{"x ;; y", "$$"},
		{"x ;; $$ //", ";;;;"},
		{"a ;; $$ // ;;;; $$$$", "$$1$$"},
		{"ends with $", ";;"},
	}
	for _, tt := range tests {
		if got := chooseDelimiter([]byte(tt.in)); got != tt.want {
			t.Errorf("chooseDelimiter(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestObjTextStatements(t *testing.T) {
	var o objText
	o.stmtString("SET NAMES utf8mb4")
	o.stmt([]byte("CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\nEND"))
	want := "SET NAMES utf8mb4;\nDELIMITER ;;\nCREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\nEND;;\nDELIMITER ;\n"
	if got := string(o.b); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFirstKeyword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"select 1", "SELECT"},
		{"  /* hint */ UPDATE t SET a=1", "UPDATE"},
		{"-- c\n  (SELECT 1)", "SELECT"},
		{"# c\ninsert into t values (1)", "INSERT"},
		{"", ""},
		{"/* unterminated", ""},
		{"ALTER TABLE t", "ALTER"},
	}
	for _, tt := range tests {
		if got := firstKeyword(tt.in); got != tt.want {
			t.Errorf("firstKeyword(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuotedIdentifiersAndViewOrder(t *testing.T) {
	got := quotedIdentifiers([]byte("select `a``b`.`c` AS `x`, '`not`', \"`nor`\", 'it''s `no`' from `v1`"))
	want := []string{"a`b", "c", "x", "v1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("quotedIdentifiers: got %q, want %q", got, want)
	}
	mk := func(name, def string) *table { return &table{name: name, typ: TypeView, create: []byte(def)} }
	views := []*table{
		mk("a_top", "VIEW `a_top` AS select `m_mid`.`x` AS `x` from `m_mid`"),
		mk("b_free", "VIEW `b_free` AS select 1 AS `x`"),
		mk("m_mid", "VIEW `m_mid` AS select `z_base`.`x` AS `x` from `z_base`"),
		mk("z_base", "VIEW `z_base` AS select `t`.`x` AS `x` from `t`"),
	}
	var names []string
	for _, v := range orderViews(&dbInfo{}, views) {
		names = append(names, v.name)
	}
	if got, want := strings.Join(names, ","), "b_free,z_base,m_mid,a_top"; got != want {
		t.Errorf("orderViews: got %s, want %s", got, want)
	}
}

func TestUnqualifySequenceCalls(t *testing.T) {
	in := "CREATE TABLE `t` (\n  `id` int DEFAULT nextval(`d``b`.`s`),\n  `x` int DEFAULT LASTVAL(`d``b`.`s`),\n  `o` int DEFAULT nextval(`other`.`s`),\n  `c` varchar(30) DEFAULT 'nextval(`d``b`.`s`)'\n)"
	want := "CREATE TABLE `t` (\n  `id` int DEFAULT nextval(`s`),\n  `x` int DEFAULT LASTVAL(`s`),\n  `o` int DEFAULT nextval(`other`.`s`),\n  `c` varchar(30) DEFAULT 'nextval(`d``b`.`s`)'\n)"
	if got := string(unqualifySequenceCalls([]byte(in), "d`b")); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUnqualifyOwnDB(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ghost definer",
			"VIEW `v` AS select `d``b`.`t`.`id` AS `id`,`d``b`.`t`.`n` AS `n` from `t`",
			"VIEW `v` AS select `t`.`id` AS `id`,`t`.`n` AS `n` from `t`"},
		{"other database kept", "select `other`.`t`.`id` AS `id` from `other`.`t`", "select `other`.`t`.`id` AS `id` from `other`.`t`"},
		{"two-part name kept (may be an alias)", "select `d``b`.`id` AS `id` from `t` `d``b`", "select `d``b`.`id` AS `id` from `t` `d``b`"},
		{"string literal kept", "select '`d``b`.`t`.`id`' AS `s`", "select '`d``b`.`t`.`id`' AS `s`"},
		{"already unqualified", "select `t`.`id` AS `id` from `t`", "select `t`.`id` AS `id` from `t`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(unqualifyOwnDB([]byte(tc.in), "d`b")); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

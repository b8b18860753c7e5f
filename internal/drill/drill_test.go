package drill

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/backupd/backupd/internal/config"
)

func TestMapSchemas(t *testing.T) {
	m := map[string]string{"shop": "drill_p_3f9a_0001_shop", "we`ird": "drill_x"}
	for _, tc := range []struct{ in, want string }{
		{"SELECT COUNT(*) FROM shop.orders", "SELECT COUNT(*) FROM `drill_p_3f9a_0001_shop`.orders"},
		{"SELECT * FROM `shop`.`orders` o JOIN shop . users u", "SELECT * FROM `drill_p_3f9a_0001_shop`.`orders` o JOIN `drill_p_3f9a_0001_shop` . users u"},
		{"SELECT shop.orders.id FROM shop.orders", "SELECT `drill_p_3f9a_0001_shop`.orders.id FROM `drill_p_3f9a_0001_shop`.orders"},
		// Not a qualifier: a column, a table, the second part of a name, literals, comments.
		{"SELECT shop FROM x.shop WHERE a = 'shop.orders' AND b = \"shop.x\"", "SELECT shop FROM x.shop WHERE a = 'shop.orders' AND b = \"shop.x\""},
		{"SELECT 1 -- shop.orders\n FROM t # shop.t\n /* shop.t */", "SELECT 1 -- shop.orders\n FROM t # shop.t\n /* shop.t */"},
		{"SELECT 'it''s shop.x', 'a\\'shop.y' FROM shop.t", "SELECT 'it''s shop.x', 'a\\'shop.y' FROM `drill_p_3f9a_0001_shop`.t"},
		{"SELECT * FROM `we``ird`.t", "SELECT * FROM `drill_x`.t"},
		{"SELECT * FROM shopping.t, myshop.t", "SELECT * FROM shopping.t, myshop.t"},
	} {
		if got := mapSchemas(tc.in, m); got != tc.want {
			t.Errorf("mapSchemas(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	if got := mapSchemas("SELECT 1 FROM shop.t", nil); got != "SELECT 1 FROM shop.t" {
		t.Errorf("no mapping: got %q", got)
	}
}

func TestEvaluate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name   string
		expect config.Expect
		value  *string
		ok     bool
		reason string
	}{
		{"max ok", config.Expect{Max: f(26)}, s("3"), true, ""},
		{"max equal", config.Expect{Max: f(26)}, s("26"), true, ""},
		{"max over", config.Expect{Max: f(26)}, s("30"), false, "30 is above the maximum 26"},
		{"min under", config.Expect{Min: f(1)}, s("0"), false, "0 is below the minimum 1"},
		{"range decimal", config.Expect{Min: f(0.5), Max: f(1.5)}, s("1.25"), true, ""},
		{"null against bound", config.Expect{Max: f(26)}, nil, false, "NULL"},
		{"text against bound", config.Expect{Min: f(1)}, s("abc"), false, "not a number"},
		{"equals text", config.Expect{Equals: s("ok")}, s("ok"), true, ""},
		{"equals text differs", config.Expect{Equals: s("ok")}, s("OK"), false, `"OK" is not "ok"`},
		{"equals numeric", config.Expect{Equals: s("1")}, s("1.00"), true, ""},
		{"equals empty", config.Expect{Equals: s("")}, s(""), true, ""},
		{"equals null", config.Expect{Equals: s("")}, nil, false, "NULL"},
		{"not null", config.Expect{NotNull: true}, s("x"), true, ""},
		{"not null fails", config.Expect{NotNull: true}, nil, false, "NULL"},
		{"all at once", config.Expect{Min: f(1), Max: f(10), Equals: s("5"), NotNull: true}, s("5"), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := evaluate(tc.expect, tc.value)
			if ok != tc.ok || !strings.Contains(why, tc.reason) || (tc.ok && why != "") {
				t.Errorf("got %v %q, want %v and a reason containing %q", ok, why, tc.ok, tc.reason)
			}
		})
	}
}

func TestDrillDatabaseName(t *testing.T) {
	set := "20261127T030000Z-3f9a"
	if got, want := drillDatabaseName("nightly", set, "0a1b", "shop"), "drill_nightly_3f9a_0a1b_shop"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	long := strings.Repeat("ü", 70)
	a := drillDatabaseName(strings.Repeat("p", 64), set, "0a1b", long+"a")
	b := drillDatabaseName(strings.Repeat("p", 64), set, "0a1b", long+"b")
	for _, n := range []string{a, b} {
		if c := utf8.RuneCountInString(n); c > maxNameLen || !utf8.ValidString(n) {
			t.Errorf("name %q has %d characters (valid UTF-8: %v), want at most %d", n, c, utf8.ValidString(n), maxNameLen)
		}
		if !strings.HasPrefix(n, "drill_") {
			t.Errorf("name %q does not start with drill_", n)
		}
	}
	if a == b {
		t.Errorf("two long source names got the same drill name %q", a)
	}
}

func TestNextTarget(t *testing.T) {
	ts := []string{"a", "b", "c"}
	h := func(targets ...string) []Summary {
		var out []Summary
		for i, t := range targets {
			out = append(out, Summary{ID: fmt.Sprint(i), Target: t})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		targets []string
		history []Summary
		want    string
	}{
		{"no history", ts, nil, "a"},
		{"after a", ts, h("a"), "b"},
		{"after c wraps", ts, h("a", "b", "c"), "a"},
		{"newest decides", ts, h("c", "a"), "b"},
		{"target removed from the policy", ts, h("a", "gone"), "a"},
		{"one target", []string{"x"}, h("x", "x"), "x"},
		{"no targets", nil, h("x"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextTarget(tc.targets, tc.history); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBufferPoolFor(t *testing.T) {
	if got := bufferPoolFor(3<<30, 1); got != 3<<30 {
		t.Errorf("configured: got %d, want %d", got, int64(3<<30))
	}
	if got := bufferPoolFor(0, 1000); got != 128<<20 {
		t.Errorf("tiny set: got %d, want the 128 MiB floor", got)
	}
	got := bufferPoolFor(0, 700<<20)
	if got%(128<<20) != 0 || got < 128<<20 || got > 768<<20 {
		t.Errorf("700 MiB set: got %d, want a multiple of 128 MiB up to 768 MiB", got)
	}
	if got, upper := bufferPoolFor(0, 1<<50), int64(8<<30); got > upper {
		t.Errorf("huge set: got %d, want at most %d", got, upper)
	}
}

// sampleReport has one of everything, including names that need escaping in HTML.
func sampleReport() *Report {
	rows := int64(200)
	other := int64(16044)
	v := "3"
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	return &Report{
		Version: ReportVersion, ID: "20261130T060000Z-20261130T030000Z-3f9a", Policy: "nightly", Result: Fail,
		Reasons:   []string{"table shop.<orders> differs from the backup: checksum bk1:aa, expected bk1:bb"},
		StartedAt: start, FinishedAt: start.Add(90 * time.Second), Host: "db-backup-1", Tool: "backupd test", Target: "offsite",
		Set: &SetInfo{ID: "20261130T030000Z-3f9a", SnapshotAt: start.Add(-3 * time.Hour), Source: "mariadb 10.11 on db1",
			Objects: 12, Bytes: 1 << 20, PlainBytes: 8 << 20, Tables: 2, Rows: 16244},
		Scratch:    ScratchInfo{Kind: scratchEmbedded, Server: "10.11.19-MariaDB"},
		RTOSeconds: 75, RPOSeconds: 3 * 3600, MaxRTOSeconds: 1800, MaxRPOSeconds: 26 * 3600, ScratchSeconds: 2.5,
		Databases: []DatabaseResult{{Source: "shop", RestoredAs: "shop", Tables: []TableResult{
			{Name: "<orders>", Status: TableMismatch, RowsExpected: 200, RowsFound: &rows, ChecksumExpected: "bk1:bb", ChecksumFound: "bk1:aa", Detail: "checksum bk1:aa, expected bk1:bb"},
			{Name: "rental", Status: TableOK, RowsExpected: 16044, RowsFound: &other},
		}}},
		Checks:  []CheckResult{{Name: "recent orders", SQL: "SELECT 3 FROM shop.orders WHERE a < 'x'", Expect: "<= 26", Value: &v, Status: CheckPass}},
		Storage: []StorageResult{{Source: "uploads", FilesExpected: 3, Files: 3, Bytes: 4096}},
		Trend: []TrendPoint{
			{ID: "20261123T060000Z-x", At: start.Add(-7 * 24 * time.Hour), Result: Pass, Target: "primary", RTOSeconds: 60, Bytes: 7 << 20},
			{ID: "20261130T060000Z-20261130T030000Z-3f9a", At: start, Result: Fail, Target: "offsite", RTOSeconds: 75, Bytes: 8 << 20},
		},
	}
}

func TestReportText(t *testing.T) {
	var b strings.Builder
	sampleReport().WriteText(&b)
	out := b.String()
	if !strings.HasPrefix(out, "backupd drill FAIL: policy nightly\n\n1 problem(s):\n  - table shop.<orders> differs") {
		t.Errorf("the text report does not start with the verdict and the reasons:\n%s", out)
	}
	for _, want := range []string{
		"from target offsite", "RTO       1m15s (within the limit of 30m0s)", "RPO       3h0m0s (within the limit of 26h0m0s)",
		"<orders>", "DIFFERENT: checksum bk1:aa", "16044", "equal", "PASS  recent orders: 3 (expected <= 26)",
		"uploads: 3 files", "every file hash verified", "<- this drill",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the text report lacks %q:\n%s", want, out)
		}
	}
}

func TestReportHTML(t *testing.T) {
	r := sampleReport()
	html, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Restoration drill FAIL: nightly", "&lt;orders&gt;", "rental", "16044", "DIFFERENT",
		"recent orders", "uploads", "RTO of the last 2 drills", `bgcolor="#cf222e"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
	// Mail clients: no scripts, no external assets, no style blocks, nothing unescaped.
	for _, bad := range []string{"<script", "<link", "<style", "src=", "http://", "https://", "<orders>", "ZgotmplZ"} {
		if strings.Contains(html, bad) {
			t.Errorf("the HTML report contains %q", bad)
		}
	}
	// The bars scale with the RTO: the longest is the full width.
	widths := regexp.MustCompile(`<td width="(\d+)" height="12"`).FindAllStringSubmatch(html, -1)
	if len(widths) != 2 || widths[0][1] != "240" || widths[1][1] != fmt.Sprint(maxBar) {
		t.Errorf("trend bar widths = %v, want 240 and %d", widths, maxBar)
	}
	if r.Subject() != "[backupd] drill FAIL nightly" {
		t.Errorf("subject = %q", r.Subject())
	}
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

func TestLogFormatFlag(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantFormat string
		wantRest   []string
		wantErr    string
	}{
		{args: []string{"list", "--json"}, wantFormat: logAuto, wantRest: []string{"list", "--json"}},
		{args: []string{"--log-format", "json", "list"}, wantFormat: logJSON, wantRest: []string{"list"}},
		{args: []string{"--log-format=text", "run", "--config", "x"}, wantFormat: logText, wantRest: []string{"run", "--config", "x"}},
		{args: []string{"run", "-log-format", "text", "--config", "x"}, wantFormat: logText, wantRest: []string{"run", "--config", "x"}},
		{args: []string{"run", "--config", "x", "--log-format=json"}, wantFormat: logJSON, wantRest: []string{"run", "--config", "x"}},
		{args: []string{"run", "--", "--log-format=json"}, wantFormat: logAuto, wantRest: []string{"run", "--", "--log-format=json"}},
		{args: []string{"--log-format", "logfmt", "list"}, wantErr: `--log-format "logfmt" is not a log format; use text or json`},
		{args: []string{"list", "--log-format"}, wantErr: "--log-format needs a value: text or json"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			format, rest, err := extractLogFormat(tc.args)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if format != tc.wantFormat || strings.Join(rest, " ") != strings.Join(tc.wantRest, " ") {
				t.Errorf("got format %q, args %q; want %q, %q", format, rest, tc.wantFormat, tc.wantRest)
			}
		})
	}
	t.Run("bad value exits 2", func(t *testing.T) {
		code, _, errOut := runCLI(t, "--log-format", "yaml", "list")
		if code != exitUsage || !strings.Contains(errOut, "use text or json") {
			t.Errorf("got exit %d, stderr %q; want %d and the accepted formats", code, errOut, exitUsage)
		}
	})
	t.Run("help lists it", func(t *testing.T) {
		_, out, _ := runCLI(t, "list", "--help")
		if !strings.Contains(out, "--log-format text|json") {
			t.Errorf("list --help does not mention --log-format:\n%s", out)
		}
	})
}

func TestFormatSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{1520 * time.Millisecond, "1.52s"},
		{1523456789 * time.Nanosecond, "1.52s"},
		{15234 * time.Microsecond, "0.0152s"},
		{3 * time.Millisecond, "0.003s"},
		{152 * time.Second, "152s"},
		{26 * time.Hour, "93600s"},
		{-2 * time.Second, "-2s"},
	} {
		if got := formatSeconds(tc.d); got != tc.want {
			t.Errorf("formatSeconds(%v): got %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestLogDurations checks the handler: a duration anywhere (a top-level value, inside a group,
// added by With) is seconds with a unit in text and a float of seconds in JSON.
func TestLogDurations(t *testing.T) {
	logSome := func(log *slog.Logger) {
		log.With("wait", 250*time.Millisecond).Info("done", "duration", 1520*time.Millisecond,
			slog.Group("phase", "load", 3*time.Second), "rows", 3)
	}
	t.Run("text", func(t *testing.T) {
		var buf bytes.Buffer
		logSome(slog.New(newLogHandler(&buf, logText, slog.LevelInfo)))
		for _, want := range []string{"wait=0.25s", "duration=1.52s", "phase.load=3s", "rows=3"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("text log %q lacks %q", buf.String(), want)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		logSome(slog.New(newLogHandler(&buf, logJSON, slog.LevelInfo)))
		var got struct {
			Wait     any            `json:"wait"`
			Duration any            `json:"duration"`
			Phase    map[string]any `json:"phase"`
		}
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("JSON log %q: %v", buf.String(), err)
		}
		for _, c := range []struct {
			name      string
			got, want any
		}{{"wait", got.Wait, 0.25}, {"duration", got.Duration, 1.52}, {"phase.load", got.Phase["load"], 3.0}} {
			if c.got != c.want {
				t.Errorf("%s: got %v (%T), want %v seconds as a JSON number", c.name, c.got, c.got, c.want)
			}
		}
	})
	t.Run("auto is json off a terminal", func(t *testing.T) {
		var buf bytes.Buffer
		newLogger(context.Background(), &buf, false).Info("x", "d", time.Second)
		if !json.Valid(buf.Bytes()) || !strings.Contains(buf.String(), `"d":1`) {
			t.Errorf("got %q, want a JSON line with d as 1 second", buf.String())
		}
	})
}

// TestLogFormatBackup runs a real backup with --log-format in both places and checks the
// process's stderr: every line in the chosen format, the dump's duration in seconds.
func TestLogFormatBackup(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	db := testenv.SmallDatabase(t, dsn, "bk_logfmt")
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("logfmt")
	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  local: {type: dir, path: %s}
encryption: {recipients: [%s], identity_file: %s}
policies:
  %s:
    schedule: "@daily"
    mysql: {dsn: %s, databases: [%s]}
    targets: [local]
`, t.TempDir(), pub, keyFile, policy, yamlString(dsn), db))

	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI(t, "backup", "--config", cfg, "--log-format", "json")
		if code != 0 {
			t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
		}
		var found bool
		sc := bufio.NewScanner(strings.NewReader(errOut))
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("stderr line %q is not JSON: %v", sc.Text(), err)
			}
			if line["msg"] == "dump finished" {
				found = true
				if _, ok := line["duration"].(float64); !ok {
					t.Errorf("dump finished: got duration %v (%T), want a number of seconds", line["duration"], line["duration"])
				}
			}
		}
		if !found {
			t.Errorf("no \"dump finished\" line in stderr:\n%s", errOut)
		}
	})
	t.Run("text", func(t *testing.T) {
		code, out, errOut := runCLI(t, "--log-format", "text", "backup", "--config", cfg)
		if code != 0 {
			t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
		}
		if !regexp.MustCompile(`(?m)^time=\S+ level=INFO msg="dump finished" .*duration=[0-9.]+s`).MatchString(errOut) {
			t.Errorf("no text line \"dump finished\" with duration=<seconds>s in stderr:\n%s", errOut)
		}
	})
}

// standardLogKeys are the keys every log line spells the same way; logKeyProblem names the
// spellings a log call must not use instead.
var standardLogKeys = map[string]bool{"policy": true, "set": true, "target": true, "table": true, "error": true}

// logKeyProblem returns why key is a non-standard spelling of a standard key, or "".
func logKeyProblem(key string) string {
	if standardLogKeys[key] {
		return ""
	}
	norm := strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(key))
	aliases := map[string]string{"err": "error", "errmsg": "error", "errormessage": "error", "tbl": "table"}
	for _, suffix := range []string{"name", "id"} {
		if s, ok := strings.CutSuffix(norm, suffix); ok && (standardLogKeys[s] || aliases[s] != "") {
			norm = s
		}
	}
	if a, ok := aliases[norm]; ok {
		norm = a
	}
	if standardLogKeys[norm] {
		return fmt.Sprintf("key %q: use %q", key, norm)
	}
	return ""
}

// slogMethods are the *slog.Logger methods and the position of their first key/value argument.
var slogMethods = map[string]int{
	"Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2,
	"Log": 3, "LogAttrs": 3, "With": 0,
}

// slogAttrFuncs are the slog functions that build one attribute from a key.
var slogAttrFuncs = map[string]bool{
	"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true, "Bool": true,
	"Time": true, "Duration": true, "Any": true, "Group": true,
}

// logKeyProblems parses one Go file and lists the log calls that spell a standard key another
// way. It works on the syntax alone: a method named like a slog.Logger method whose key
// positions hold string literals, and slog.String("key", …) and its siblings.
func logKeyProblems(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	var problems []string
	report := func(lit ast.Expr) {
		bl, ok := lit.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return
		}
		key, err := strconv.Unquote(bl.Value)
		if err != nil {
			return
		}
		if p := logKeyProblem(key); p != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", fset.Position(bl.Pos()), p))
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "slog" && slogAttrFuncs[sel.Sel.Name] {
			if len(call.Args) > 0 {
				report(call.Args[0])
			}
			return true
		}
		first, ok := slogMethods[sel.Sel.Name]
		if !ok {
			return true
		}
		// Key/value pairs take two places, an slog.Attr one; stop at anything else (a
		// spread slice, a variable), whose keys are not visible here.
		for i := first; i < len(call.Args); {
			switch a := call.Args[i].(type) {
			case *ast.BasicLit:
				if a.Kind != token.STRING {
					return true
				}
				report(a)
				i += 2
			case *ast.CallExpr:
				if s, ok := a.Fun.(*ast.SelectorExpr); ok {
					if pkg, ok := s.X.(*ast.Ident); ok && pkg.Name == "slog" {
						i++ // checked as an slog.X call on its own
						continue
					}
				}
				return true
			default:
				return true
			}
		}
		return true
	})
	return problems, nil
}

// TestLogKeys fails when a log call anywhere in the tree spells policy, set, target, table or
// error another way (err, policyName, set_id, …): logs are searched by these keys.
func TestLogKeys(t *testing.T) {
	t.Run("detector", func(t *testing.T) {
		for _, tc := range []struct {
			src  string
			want int
		}{
			{`log.Error("failed", "policy", p, "set", id, "error", err)`, 0},
			{`log.Error("failed", "err", err)`, 1},
			{`log.With("policyName", p, "setID", id).Info("x")`, 2},
			{`log.InfoContext(ctx, "x", slog.String("target_name", n), "Table", t)`, 2},
			{`log.LogAttrs(ctx, slog.LevelDebug, "x", slog.Any("err", err))`, 1},
			{`log.Warn("x", "table", t, "tbl_name", t)`, 1},
			{`log.Info("x", args...)`, 0},
			{`t.Errorf("err %v", err)`, 0},
			{`log.Info("x", "sets", 3, "errors", 2, "database", d)`, 0},
		} {
			src := "package p\nfunc f() {\n" + tc.src + "\n}\n"
			got, err := logKeyProblems(token.NewFileSet(), "x.go", src)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%s: got %d problems %q, want %d", tc.src, len(got), got, tc.want)
			}
		}
	})
	t.Run("tree", func(t *testing.T) {
		root := testenv.RepoRoot(t)
		fset := token.NewFileSet()
		files := 0
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			files++
			problems, err := logKeyProblems(fset, path, nil)
			if err != nil {
				return err
			}
			for _, p := range problems {
				t.Error(p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files < 50 {
			t.Errorf("scanned %d Go files under %s, want the whole tree (at least 50)", files, root)
		}
	})
}

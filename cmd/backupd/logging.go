package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Log formats for --log-format. logAuto is the default: text on a terminal, JSON otherwise.
const (
	logAuto = ""
	logText = "text"
	logJSON = "json"
)

// logFormatKey carries the --log-format value from run to the commands, which build their
// loggers themselves (each has its own --verbose).
type logFormatKey struct{}

func withLogFormat(ctx context.Context, format string) context.Context {
	return context.WithValue(ctx, logFormatKey{}, format)
}

// globalUsage is appended to every --help, because --log-format is accepted by every command.
const globalUsage = "  --log-format text|json\n    \tlog format on stderr (default: text on a terminal, json otherwise)\n"

// extractLogFormat removes --log-format (also -log-format, =VALUE or a separate VALUE) from args,
// before or after the command name, so that each command's own flag set never sees it. Nothing
// after a "--" terminator is looked at.
func extractLogFormat(args []string) (format string, rest []string, err error) {
	rest = make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", nil, usageErrorf("--log-format needs a value: text or json")
			}
			i++
			value = args[i]
		}
		switch value {
		case logText, logJSON:
			format = value
		default:
			return "", nil, usageErrorf("--log-format %q is not a log format; use text or json", value)
		}
	}
	return format, rest, nil
}

// newLogger returns the process logger on stderr in the format --log-format chose (text on a
// terminal and JSON otherwise when it was not given). All logging goes through it, so keys and
// value formats are decided here and nowhere else.
func newLogger(ctx context.Context, stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	format, _ := ctx.Value(logFormatKey{}).(string)
	if format == logAuto {
		format = logJSON
		if isTerminal(stderr) {
			format = logText
		}
	}
	return slog.New(newLogHandler(stderr, format, level))
}

// newLogHandler is the handler of newLogger: durations, wherever a call site logs a
// time.Duration, become seconds — "1.52s" for people, 1.52 (a float) for machines — instead of
// slog's defaults ("1.52s" strings of varying units in text, nanosecond integers in JSON).
func newLogHandler(w io.Writer, format string, level slog.Leveler) slog.Handler {
	json := format == logJSON
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() != slog.KindDuration {
			return a
		}
		d := a.Value.Duration()
		if json {
			return slog.Float64(a.Key, d.Seconds())
		}
		return slog.String(a.Key, formatSeconds(d))
	}}
	if json {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// formatSeconds writes d in seconds with three significant digits (at least whole seconds):
// 1.52s, 0.0152s, 152s, 86400s — one unit, so that logs compare at a glance.
func formatSeconds(d time.Duration) string {
	s := d.Seconds()
	if s == 0 {
		return "0s"
	}
	digits := 2 - int(math.Floor(math.Log10(math.Abs(s))))
	if digits < 0 {
		digits = 0
	}
	p := math.Pow10(digits)
	return strconv.FormatFloat(math.Round(s*p)/p, 'f', -1, 64) + "s"
}

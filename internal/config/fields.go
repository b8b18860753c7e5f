package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Field decoders. Each returns a field that stores into dst; a null value leaves the default.

func str(dst *string) field {
	return func(d *decoder, n *yaml.Node, p string) {
		if s, ok := d.scalar(n, p, "a string"); ok {
			*dst = s
		}
	}
}

func oneOf(dst *string, choices ...string) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "one of "+strings.Join(choices, ", "))
		if !ok {
			return
		}
		for _, c := range choices {
			if s == c {
				*dst = s
				return
			}
		}
		hint := ""
		if sg := suggest(s, choices); sg != "" {
			hint = fmt.Sprintf("did you mean `%s`?", sg)
		}
		d.nodeProblem(n, p, fmt.Sprintf("%s is not one of %s", d.quote(p, s), strings.Join(choices, ", ")), hint)
	}
}

func integer(dst *int) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "a whole number")
		if !ok {
			return
		}
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			d.nodeProblem(n, p, fmt.Sprintf("want a whole number, got %s", d.quote(p, s)), "")
			return
		}
		*dst = v
	}
}

func boolean(dst *bool) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "true or false")
		if !ok {
			return
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			d.nodeProblem(n, p, fmt.Sprintf("want true or false, got %s", d.quote(p, s)), "")
		}
	}
}

func size(dst *int64) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "a size")
		if !ok {
			return
		}
		v, err := ParseSize(s)
		if err != nil {
			msg := strings.Replace(err.Error(), strconv.Quote(s), d.quote(p, s), 1)
			d.nodeProblem(n, p, msg, "write a byte count or a size like 16MiB, 64MB, 1GiB")
			return
		}
		*dst = v
	}
}

func duration(dst *time.Duration) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "a duration")
		if !ok {
			return
		}
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			d.nodeProblem(n, p, fmt.Sprintf("%s is not a duration", d.quote(p, s)), "write a Go duration like 30s, 5m or 1h30m")
			return
		}
		*dst = v
	}
}

func strList(dst *[]string) field {
	return func(d *decoder, n *yaml.Node, p string) {
		var out []string
		d.list(n, p, func(d *decoder, n *yaml.Node, p string) {
			s, _ := d.scalar(n, p, "a string")
			out = append(out, s) // kept even when bad, so indexes in later messages stay right
		})
		*dst = out
	}
}

// pathField stores a path resolved against the config file's directory.
func pathField(dst *string) field {
	return func(d *decoder, n *yaml.Node, p string) {
		if s, ok := d.scalar(n, p, "a path"); ok && s != "" {
			*dst = d.abs(s)
		}
	}
}

func object(fs fields) field {
	return func(d *decoder, n *yaml.Node, p string) { d.mapping(n, p, fs) }
}

// secret adds key and key_file to fs: the value given inline, or read from a file (a trailing
// newline trimmed). Giving both is a problem.
func secret(fs fields, key string, dst *string) {
	from := ""
	claim := func(d *decoder, n *yaml.Node, p, k string) bool {
		if from != "" {
			d.nodeProblem(n, p, fmt.Sprintf("both `%s` and `%s_file` are given", key, key),
				"keep one: the value itself, or the file it is read from")
			return false
		}
		from = k
		return true
	}
	fs[key] = func(d *decoder, n *yaml.Node, p string) {
		if !claim(d, n, p, key) {
			return
		}
		if s, ok := d.scalar(n, p, "a string"); ok {
			*dst = s
		}
	}
	fileKey := key + "_file"
	fs[fileKey] = func(d *decoder, n *yaml.Node, p string) {
		if !claim(d, n, p, fileKey) {
			return
		}
		s, ok := d.scalar(n, p, "a file path")
		if !ok {
			return
		}
		if s == "" {
			d.nodeProblem(n, p, "empty file path", "")
			return
		}
		b, err := d.readSecret(d.abs(s), fileKey)
		if err != nil {
			d.nodeProblem(n, p, err.Error(), fmt.Sprintf("the file must be readable by backupd and hold the %s", key))
			return
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			d.nodeProblem(n, p, fmt.Sprintf("%s is empty", d.shown(d.abs(s))), "")
			return
		}
		*dst = v
	}
}

package storage

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"
)

// SourceSpec is one storage source of a policy: a local directory or a bucket on the
// application's own S3 provider. The config's `storage:` list maps onto it one to one.
type SourceSpec struct {
	// Name identifies the source within the policy (`name:`); restore selects it by this name
	// and it appears in object names, so it is limited to letters, digits, '.', '_' and '-'.
	Name string
	// Path is an absolute local directory (`path:`). A symlink as the root itself is followed
	// (deploy tools often make storage/ one); symlinks inside the tree are stored as symlinks.
	Path string
	// S3 is a bucket source (`s3:`); exactly one of Path and S3 is set.
	S3 *S3Source
	// Exclude lists glob patterns (`exclude:`); see Match for their syntax.
	Exclude []string
}

// S3Source is a bucket (or a prefix of one) read as a tree: each object a file, its key
// relative to Prefix its path.
type S3Source struct {
	Endpoint     string // `endpoint:` http(s)://host[:port]
	Region       string // `region:`
	Bucket       string // `bucket:`
	Prefix       string // `prefix:` optional
	AccessKey    string // `access_key:`
	SecretKey    string // `secret_key:`
	BucketLookup string // `bucket_lookup:` optional: auto, path or dns
	CAFile       string // `ca_file:` optional PEM bundle
}

var sourceNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the spec without touching the source.
func (s SourceSpec) Validate() error {
	if !sourceNamePattern.MatchString(s.Name) {
		return fmt.Errorf("storage source name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	switch {
	case s.Path != "" && s.S3 != nil:
		return fmt.Errorf("storage source %s: set either path or s3, not both", s.Name)
	case s.Path == "" && s.S3 == nil:
		return fmt.Errorf("storage source %s: set path (a local directory) or s3 (a bucket)", s.Name)
	case s.Path != "" && !filepath.IsAbs(s.Path):
		return fmt.Errorf("storage source %s: path %q is not absolute", s.Name, s.Path)
	case s.S3 != nil && (s.S3.Endpoint == "" || s.S3.Bucket == ""):
		return fmt.Errorf("storage source %s: s3 needs endpoint and bucket", s.Name)
	}
	if _, err := newMatcher(s.Exclude); err != nil {
		return fmt.Errorf("storage source %s: %w", s.Name, err)
	}
	return nil
}

func (s SourceSpec) kind() string {
	if s.S3 != nil {
		return "s3"
	}
	return "dir"
}

// origin describes where the source is, for the index and logs; never credentials.
func (s SourceSpec) origin() string {
	if s.S3 != nil {
		o := s.S3.Endpoint + "/" + s.S3.Bucket
		if s.S3.Prefix != "" {
			o += "/" + strings.Trim(s.S3.Prefix, "/")
		}
		return o
	}
	return s.Path
}

// matcher implements the exclude syntax:
//
//   - a pattern is matched against the '/'-separated path relative to the source root (for a
//     bucket, the key relative to the prefix);
//   - without a '/' it matches the last path segment at any depth: "*.tmp", ".cache";
//   - with a '/' it is anchored at the root: "cache/*", "/public/thumbs" (a leading '/' is
//     optional);
//   - "**" as a whole segment matches any number of segments, none included: "**/node_modules";
//   - a trailing '/' matches directories only: "logs/";
//   - an excluded directory excludes everything under it;
//   - within a segment, path.Match syntax: *, ?, [a-z], \ to escape.
type matcher struct{ pats []pattern }

type pattern struct {
	segs     []string // nil for an unanchored pattern
	base     string   // the unanchored pattern
	dirOnly  bool
	anchored bool
}

func newMatcher(globs []string) (*matcher, error) {
	m := &matcher{}
	for _, g := range globs {
		p := pattern{}
		s := g
		if strings.HasSuffix(s, "/") {
			p.dirOnly = true
			s = strings.TrimRight(s, "/")
		}
		if s == "" {
			return nil, fmt.Errorf("exclude pattern %q is empty", g)
		}
		if strings.Contains(s, "/") {
			p.anchored = true
			p.segs = strings.Split(strings.TrimPrefix(s, "/"), "/")
		} else {
			p.base = s
		}
		segs := p.segs
		if !p.anchored {
			segs = []string{p.base}
		}
		for _, seg := range segs {
			if seg == "" {
				return nil, fmt.Errorf("exclude pattern %q has an empty segment", g)
			}
			if _, err := path.Match(seg, ""); err != nil {
				return nil, fmt.Errorf("exclude pattern %q: %w", g, err)
			}
		}
		m.pats = append(m.pats, p)
	}
	return m, nil
}

// excluded reports whether rel, or any directory above it, matches a pattern.
func (m *matcher) excluded(rel string, isDir bool) bool {
	if len(m.pats) == 0 {
		return false
	}
	segs := strings.Split(rel, "/")
	for i := 1; i <= len(segs); i++ {
		dir := i < len(segs) || isDir
		for _, p := range m.pats {
			if p.match(segs[:i], dir) {
				return true
			}
		}
	}
	return false
}

func (p pattern) match(segs []string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	if !p.anchored {
		ok, _ := path.Match(p.base, segs[len(segs)-1])
		return ok
	}
	return matchSegs(p.segs, segs)
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for k := 0; k <= len(segs); k++ {
				if matchSegs(pat[1:], segs[k:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// checkRelPath accepts a path that can name something inside a directory on every system we
// restore to: relative, '/'-separated, valid UTF-8, no empty, "." or ".." segment, no NUL.
// Everything read from an index passes through it before it touches a filesystem.
func checkRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case !utf8.ValidString(p):
		return errors.New("path is not valid UTF-8")
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("path contains a NUL byte")
	case strings.HasPrefix(p, "/"):
		return errors.New("path is absolute")
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return errors.New("path has an empty segment")
		case ".", "..":
			return fmt.Errorf("path has a %q segment", seg)
		}
	}
	return nil
}

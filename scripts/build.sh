#!/usr/bin/env bash
# build.sh — the one build of backupd: CI (scripts/test.sh), the Dockerfile and people run it.
#
#   scripts/build.sh                  static binary at bin/backupd
#   scripts/build.sh -o /usr/local/bin/backupd
#   OUTPUT=dist/backupd GOARCH=arm64 scripts/build.sh
#
# The binary is static (CGO_ENABLED=0: it runs on any Linux, in a distroless or Debian image
# alike) and built with -trimpath (no build machine paths in it). Version, commit and commit date
# are injected with -ldflags -X from git: `git describe --tags --always --dirty`,
# `git rev-parse HEAD` and the commit's date (not the build's: the same commit builds the same
# binary). VERSION, COMMIT and BUILD_DATE in the environment override them, for builds from a
# tarball or a container build context without .git; a value neither gives is left out, and
# `backupd version` then reads it from the Go build info. Prints the output path on success.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH="/usr/local/go/bin:$PATH"
fi

out="${OUTPUT:-bin/backupd}"
while [ $# -gt 0 ]; do
	case "$1" in
	-o)
		[ $# -ge 2 ] || { echo "build.sh: -o needs a path" >&2; exit 2; }
		out="$2"
		shift 2
		;;
	-h | --help)
		sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build.sh: unknown argument '$1'; usage: scripts/build.sh [-o OUTPUT]" >&2
		exit 2
		;;
	esac
done

ver="${VERSION:-}"
com="${COMMIT:-}"
dat="${BUILD_DATE:-}"
if git rev-parse --git-dir >/dev/null 2>&1; then
	[ -n "$ver" ] || ver="$(git describe --tags --always --dirty 2>/dev/null || true)"
	if [ -z "$com" ]; then
		com="$(git rev-parse HEAD 2>/dev/null || true)"
		# Same marker as describe's: a binary from a modified tree must not pass for the commit.
		if [ -n "$com" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
			com="$com-dirty"
		fi
	fi
	[ -n "$dat" ] || dat="$(git log -1 --format=%cI 2>/dev/null || true)"
fi

for v in "$ver" "$com" "$dat"; do
	case "$v" in
	*[[:space:]]* | *\'* | *\"*)
		echo "build.sh: '$v' (VERSION, COMMIT or BUILD_DATE) holds a space or quote; -ldflags -X cannot carry it" >&2
		exit 2
		;;
	esac
done

ldflags="-s -w"
[ -z "$ver" ] || ldflags+=" -X main.version=$ver"
[ -z "$com" ] || ldflags+=" -X main.commit=$com"
[ -z "$dat" ] || ldflags+=" -X main.date=$dat"

mkdir -p "$(dirname "$out")"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/backupd
echo "$out"

#!/usr/bin/env bash
# test.sh — the whole test suite in one command, servers included, on a fresh machine:
# installs the test servers, starts them, runs go vet and go test, and stops on exit the
# servers it started.
#
#   scripts/test.sh                         every package
#   scripts/test.sh ./internal/targets/...  only these packages
#   scripts/test.sh -run TestConformance -v ./internal/targets/...
#
# Arguments go to `go test` after its defaults (-count=1 -p 1 -timeout 45m), so a later
# -timeout wins. Arguments that look like packages (./…, …/…, github.com/…) replace the
# default ./... for both go vet and go test. Works from any directory, without a terminal
# or stdin (CI runs it as root with CI=true). Exits with go vet's or go test's status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH="/usr/local/go/bin:$PATH"
fi

step() { printf '\n==> %s\n' "$*"; }

pkgs=()
for a in "$@"; do
	case "$a" in
	./* | ../* | */... | github.com/*) pkgs+=("$a") ;;
	esac
done
# -p 1: packages run one after another. They share one MariaDB server, and some tests measure
# what other sessions feel while a backup waits for its lock (internal/dump's
# TestLockWaitTimeoutNamesBlocker); another package's backup taking the same server-wide backup
# lock at that moment made such a measurement fail in a CI dry run.
test_args=(-count=1 -p 1 -timeout 45m "$@")
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(./...)
	test_args+=(./...)
fi

mkdir -p .tools/run
started_file="$(mktemp "$ROOT/.tools/run/started.XXXXXX")"

# Several test runs may share the servers (two checkouts' sessions, a developer and a
# hook). Each run holds a shared lock for its lifetime; the run that started the servers
# stops them at exit only if no other run still holds one.
exec 8>"$ROOT/.tools/run/test-runs.lock"
flock -s 8

cleanup() {
	local status=$?
	local started=()
	mapfile -t started <"$started_file" 2>/dev/null || true
	rm -f "$started_file"
	if [ ${#started[@]} -gt 0 ]; then
		flock -u 8
		if flock -n -x 8; then
			step "stopping the servers this run started: ${started[*]}"
			scripts/testenv.sh stop "${started[@]}" || true
		else
			step "leaving ${started[*]} running: another test run is using them (scripts/testenv.sh stop ends them)"
		fi
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "installing what the tests need (scripts/testenv.sh install)"
scripts/testenv.sh install

step "starting the test servers (scripts/testenv.sh start)"
scripts/testenv.sh start --started-file "$started_file"

# The Dockerfile's build step, exercised on every run although no container engine runs here:
# the same script, then the static binary must run the commands the image runs.
step "building the static binary (scripts/build.sh) and smoke-testing it"
bin="$(scripts/build.sh -o bin/backupd)"
if ! go version -m "$bin" | grep -q 'CGO_ENABLED=0'; then
	step "$bin is not static: go version -m shows no CGO_ENABLED=0"
	exit 1
fi
"$bin" version
# A private copy: the checked-out file is 0644, which backupd refuses for a config file.
smoke="$(mktemp -d)"
install -m 600 policies/default.yaml "$smoke/backupd.yaml"
"$bin" check-config --config "$smoke/backupd.yaml" >/dev/null
rm -rf "$smoke"

step "go vet ${pkgs[*]}"
if ! go vet "${pkgs[@]}"; then
	step "go vet failed; not running the tests"
	exit 1
fi

step "go test ${test_args[*]}"
set +e
go test "${test_args[@]}"
status=$?
set -e
# Short fuzz runs of the decoders of hostile input (FUZZTIME=0 skips them), only on a whole run.
if [ $status -eq 0 ] && [ $# -eq 0 ] && [ "${FUZZTIME:-5s}" != 0 ]; then
	for f in ./internal/restore:FuzzStatements ./internal/restore:FuzzAppendRows ./internal/config:FuzzParse \
		./internal/signing:FuzzVerify ./internal/storage:FuzzIndexEntries; do
		step "go test -fuzz ${f#*:} -fuzztime ${FUZZTIME:-5s} ${f%%:*}"
		go test -run '^$' -fuzz "^${f#*:}\$" -fuzztime "${FUZZTIME:-5s}" "${f%%:*}" || { status=1; break; }
	done
fi
if [ $status -eq 0 ]; then
	step "all tests passed"
else
	step "tests failed (exit status $status)"
fi
exit $status

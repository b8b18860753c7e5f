#!/usr/bin/env bash
# testenv.sh — the real servers the integration tests talk to, installed and run by the
# project itself so that a fresh machine needs nothing but this script.
#
#   scripts/testenv.sh install   install what is missing (Go-built servers into .tools/bin
#                                at pinned versions; Debian packages with apt-get)
#   scripts/testenv.sh start [--started-file F]
#                                make sure MariaDB runs, start MinIO, versitygw, mailpit
#                                and toxiproxy on loopback, write .tools/testenv.env;
#                                with --started-file, write the names of the servers this
#                                call started (not those already running) to F
#   scripts/testenv.sh stop [NAME...]
#                                stop the servers start started (all, or only NAME...);
#                                MariaDB is left alone: it belongs to the machine
#   scripts/testenv.sh status    say what runs
#   scripts/testenv.sh env       print the export lines (eval "$(scripts/testenv.sh env)")
#
# Ports (override with the variable named): MinIO 19000 (BACKUPD_TESTENV_MINIO_PORT),
# versitygw 19100 (…_VERSITYGW_PORT), mailpit SMTP 19025 / HTTP 19026 (…_MAILPIT_SMTP_PORT,
# …_MAILPIT_HTTP_PORT), toxiproxy API 18474 (…_TOXIPROXY_PORT). Everything lives under
# .tools/: binaries in .tools/bin, data, logs and pid files in .tools/run.
# BACKUPD_TESTENV_REUSE_BIN=DIR makes install link a server from DIR (another checkout's
# .tools/bin) when DIR's binary is built from the pinned version, instead of building it again;
# the clone test (standalone_test.go) uses it so that its fresh clone skips the MinIO build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
RUN="$TOOLS/run"
ENV_FILE="$TOOLS/testenv.env"

# Pins. The module@version is what `go version -m` reports for the built binary, which is
# how install knows whether a binary on disk is the pinned one.
MINIO_PKG="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_MOD="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
VERSITYGW_PKG="github.com/versity/versitygw/cmd/versitygw@v1.8.0"
VERSITYGW_MOD="github.com/versity/versitygw@v1.8.0"
MAILPIT_PKG="github.com/axllent/mailpit@v1.33.1"
MAILPIT_MOD="github.com/axllent/mailpit@v1.33.1"
TOXIPROXY_PKG="github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0"
TOXIPROXY_MOD="github.com/Shopify/toxiproxy/v2@v2.5.0"
APT_PACKAGES=(mariadb-client age zstd mydumper jq openssh-client)

MINIO_PORT="${BACKUPD_TESTENV_MINIO_PORT:-19000}"
VERSITYGW_PORT="${BACKUPD_TESTENV_VERSITYGW_PORT:-19100}"
MAILPIT_SMTP_PORT="${BACKUPD_TESTENV_MAILPIT_SMTP_PORT:-19025}"
MAILPIT_HTTP_PORT="${BACKUPD_TESTENV_MAILPIT_HTTP_PORT:-19026}"
TOXIPROXY_PORT="${BACKUPD_TESTENV_TOXIPROXY_PORT:-18474}"
MYSQL_PORT=3306

# Test-only credentials for servers that listen on loopback and hold throwaway data.
MINIO_USER=backupd-test
MINIO_PASSWORD=backupd-test-minio-secret
VERSITYGW_USER=backupd-test
VERSITYGW_PASSWORD=backupd-test-versitygw-secret
REGION=us-east-1

SERVERS=(minio versitygw mailpit toxiproxy)
WAIT_SECONDS="${BACKUPD_TESTENV_WAIT:-60}"
STARTED_FILE=""

say() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

# CI and cron have minimal PATHs; Go lives at /usr/local/go on our machines.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH="/usr/local/go/bin:$PATH"
fi

# lock FILE: serialise this script across concurrent callers (two test runs starting at
# once must not build the same server twice or start it twice).
lock() {
	mkdir -p "$TOOLS"
	exec 9>"$TOOLS/.$1.lock"
	if ! flock -n 9; then
		say "waiting for another testenv.sh $1 to finish"
		flock 9
	fi
}

# ---------------------------------------------------------------------------- install

# built_mod BIN: the module@version a Go binary was built from, or nothing.
built_mod() {
	[ -x "$1" ] || return 0
	go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $2 "@" $3; exit }'
}

# install_go NAME PKG MOD [INSTALLED_NAME]: go install PKG into .tools/bin unless NAME there
# was already built from MOD. INSTALLED_NAME is the name go install gives the binary when
# it differs from NAME (toxiproxy's is "server").
install_go() {
	local name="$1" pkg="$2" mod="$3" built="${4:-$1}" have
	have="$(built_mod "$BIN/$name")"
	if [ "$have" = "$mod" ]; then
		say "$name: $mod already installed"
		return 0
	fi
	if [ -n "${BACKUPD_TESTENV_REUSE_BIN:-}" ] && [ "$(built_mod "$BACKUPD_TESTENV_REUSE_BIN/$name")" = "$mod" ]; then
		ln -sfn "$BACKUPD_TESTENV_REUSE_BIN/$name" "$BIN/$name"
		say "$name: $mod linked from $BACKUPD_TESTENV_REUSE_BIN"
		return 0
	fi
	# A binary another run built under go install's own name is just as good.
	if [ "$built" != "$name" ] && [ "$(built_mod "$BIN/$built")" = "$mod" ]; then
		mv -f "$BIN/$built" "$BIN/$name"
		say "$name: $mod already installed (renamed from $built)"
		return 0
	fi
	local hint=""
	[ "$name" = minio ] && hint=" (the first build takes about 9 minutes)"
	say "$name: installing $pkg${have:+ (replacing $have)}$hint"
	local log="$TOOLS/install-$name.log"
	if ! GOBIN="$BIN" go install "$pkg" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "go install $pkg failed; full log: $log"
	fi
	if [ "$built" != "$name" ]; then
		mv -f "$BIN/$built" "$BIN/$name"
	fi
	[ "$(built_mod "$BIN/$name")" = "$mod" ] || die "$BIN/$name is not built from $mod after go install"
	say "$name: installed"
}

apt_missing() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

install_apt() {
	command -v dpkg-query >/dev/null 2>&1 || die "no dpkg-query: install ${APT_PACKAGES[*]} with your package manager"
	local want=("${APT_PACKAGES[@]}")
	# The tests need a MariaDB server; the machines we run on usually have one.
	[ -x /usr/sbin/mariadbd ] || want+=(mariadb-server)
	local missing
	mapfile -t missing < <(apt_missing "${want[@]}")
	if [ "${#missing[@]}" -eq 0 ]; then
		say "apt packages: ${want[*]} already installed"
		return 0
	fi
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "need root to install ${missing[*]}: run apt-get install ${missing[*]} as root"
		sudo=(sudo -n)
	fi
	say "apt packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2 ||
		die "apt-get install ${missing[*]} failed"
}

cmd_install() {
	command -v go >/dev/null 2>&1 || die "go is not installed (or not on PATH); install Go 1.26 first"
	lock install
	mkdir -p "$BIN"
	install_apt
	install_go minio "$MINIO_PKG" "$MINIO_MOD"
	install_go versitygw "$VERSITYGW_PKG" "$VERSITYGW_MOD"
	install_go mailpit "$MAILPIT_PKG" "$MAILPIT_MOD"
	install_go toxiproxy-server "$TOXIPROXY_PKG" "$TOXIPROXY_MOD" server
}

# ---------------------------------------------------------------------------- start

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_ok URL: the server answered with any HTTP status (S3 answers 403 to anonymous GETs).
http_answers() {
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null)" || true
	[ -n "$code" ] && [ "$code" != 000 ]
}

# alive NAME: the pid file names a live process of this server.
alive() {
	local pidfile="$RUN/$1.pid" pid
	[ -f "$pidfile" ] || return 1
	pid="$(cat "$pidfile" 2>/dev/null)"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# A recycled pid belongs to some other program: check it runs one of our binaries,
	# comparing resolved paths (a worktree's .tools may be a symlink to another checkout's).
	local exe bin
	exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null)" || return 1
	bin="$(readlink -f "$BIN" 2>/dev/null)" || return 1
	case "$exe" in "$bin"/*) return 0 ;; esac
	grep -qF "$BIN/" "/proc/$pid/cmdline" 2>/dev/null
}

answers() {
	case "$1" in
	minio) http_answers "http://127.0.0.1:$MINIO_PORT/minio/health/live" ;;
	versitygw) http_answers "http://127.0.0.1:$VERSITYGW_PORT/" ;;
	mailpit) http_answers "http://127.0.0.1:$MAILPIT_HTTP_PORT/api/v1/messages" && port_open "$MAILPIT_SMTP_PORT" ;;
	toxiproxy) http_answers "http://127.0.0.1:$TOXIPROXY_PORT/version" ;;
	mariadb) port_open "$MYSQL_PORT" ;;
	esac
}

ports_of() {
	case "$1" in
	minio) echo "$MINIO_PORT" ;;
	versitygw) echo "$VERSITYGW_PORT" ;;
	mailpit) echo "$MAILPIT_SMTP_PORT $MAILPIT_HTTP_PORT" ;;
	toxiproxy) echo "$TOXIPROXY_PORT" ;;
	esac
}

binary_of() {
	case "$1" in
	toxiproxy) echo "$BIN/toxiproxy-server" ;;
	*) echo "$BIN/$1" ;;
	esac
}

# wait_for NAME LOG [PID]: until NAME answers, for at most WAIT_SECONDS.
wait_for() {
	local name="$1" log="$2" pid="${3:-}" i
	for ((i = 0; i < WAIT_SECONDS * 4; i++)); do
		answers "$name" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$log" >&2 || true
			die "$name exited during startup; its log is $log"
		fi
		sleep 0.25
	done
	tail -n 20 "$log" >&2 || true
	die "$name did not answer within ${WAIT_SECONDS}s; its log is $log"
}

# launch NAME CMD...: start a server detached from this shell (its own session, no
# stdin), record its pid and wait until it answers.
launch() {
	local name="$1"
	shift
	local log="$RUN/$name.log" port
	for port in $(ports_of "$name"); do
		if port_open "$port"; then
			die "$name: port $port on 127.0.0.1 is taken by another process (not started by this checkout's testenv.sh); stop it or set BACKUPD_TESTENV_${name^^}_PORT"
		fi
	done
	: >"$log"
	# Closing fds 8 and 9 keeps the server from holding our locks (and test.sh's) forever.
	setsid "$@" </dev/null >>"$log" 2>&1 8>&- 9>&- &
	echo $! >"$RUN/$name.pid"
	wait_for "$name" "$log" "$!"
	say "$name: started (pid $(cat "$RUN/$name.pid"), log $log)"
	# Recorded at once, so that a caller can stop it even if a later server fails.
	[ -z "$STARTED_FILE" ] || echo "$name" >>"$STARTED_FILE"
}

start_server() {
	local name="$1" bin
	bin="$(binary_of "$name")"
	if alive "$name" && answers "$name"; then
		say "$name: already running (pid $(cat "$RUN/$name.pid"))"
		return 0
	fi
	if alive "$name"; then
		# Running but not answering: a previous start may still be coming up.
		wait_for "$name" "$RUN/$name.log" "$(cat "$RUN/$name.pid")"
		say "$name: already running (pid $(cat "$RUN/$name.pid"))"
		return 0
	fi
	[ -x "$bin" ] || die "$name is not installed ($bin missing); run: scripts/testenv.sh install"
	mkdir -p "$RUN/$name"
	case "$name" in
	minio)
		launch minio env MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" \
			MINIO_BROWSER=off MINIO_UPDATE=off MINIO_REGION="$REGION" \
			"$bin" server "$RUN/minio/data" \
			--address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$((MINIO_PORT + 1))"
		;;
	versitygw)
		mkdir -p "$RUN/versitygw/data"
		launch versitygw env ROOT_ACCESS_KEY="$VERSITYGW_USER" ROOT_SECRET_KEY="$VERSITYGW_PASSWORD" \
			"$bin" --port "127.0.0.1:$VERSITYGW_PORT" --region "$REGION" \
			posix "$RUN/versitygw/data"
		;;
	mailpit)
		launch mailpit "$bin" --smtp "127.0.0.1:$MAILPIT_SMTP_PORT" --listen "127.0.0.1:$MAILPIT_HTTP_PORT" \
			--database "$RUN/mailpit/mailpit.db" --disable-version-check \
			--smtp-auth-accept-any --smtp-auth-allow-insecure
		;;
	toxiproxy)
		launch toxiproxy "$bin" -host 127.0.0.1 -port "$TOXIPROXY_PORT"
		;;
	esac
}

start_mariadb() {
	if answers mariadb; then
		say "mariadb: already running on 127.0.0.1:$MYSQL_PORT"
		return 0
	fi
	[ -x /usr/sbin/mariadbd ] || die "mariadb: /usr/sbin/mariadbd is missing; run: scripts/testenv.sh install (installs mariadb-server)"
	[ "$(id -u)" -eq 0 ] || die "mariadb: not running on 127.0.0.1:$MYSQL_PORT and only root can start it; start it with: sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
	say "mariadb: not answering on 127.0.0.1:$MYSQL_PORT, starting it"
	install -d -o mysql -g mysql /run/mysqld
	start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
	local i
	for ((i = 0; i < WAIT_SECONDS * 4; i++)); do
		if answers mariadb; then
			say "mariadb: started"
			return 0
		fi
		sleep 0.25
	done
	die "mariadb did not answer on 127.0.0.1:$MYSQL_PORT within ${WAIT_SECONDS}s; see its error log (journal or /var/log/mysql)"
}

write_env() {
	local tmp="$ENV_FILE.tmp.$$"
	cat >"$tmp" <<EOF
# Written by scripts/testenv.sh start; read by internal/testenv. Safe to source in a shell.
export BACKUPD_TEST_MINIO_ENDPOINT='http://127.0.0.1:$MINIO_PORT'
export BACKUPD_TEST_MINIO_ACCESS_KEY='$MINIO_USER'
export BACKUPD_TEST_MINIO_SECRET_KEY='$MINIO_PASSWORD'
export BACKUPD_TEST_MINIO_REGION='$REGION'
export BACKUPD_TEST_VERSITYGW_ENDPOINT='http://127.0.0.1:$VERSITYGW_PORT'
export BACKUPD_TEST_VERSITYGW_ACCESS_KEY='$VERSITYGW_USER'
export BACKUPD_TEST_VERSITYGW_SECRET_KEY='$VERSITYGW_PASSWORD'
export BACKUPD_TEST_VERSITYGW_REGION='$REGION'
export BACKUPD_TEST_MYSQL_DSN='root@tcp(127.0.0.1:$MYSQL_PORT)/'
export BACKUPD_TEST_MAILPIT_SMTP_PORT='$MAILPIT_SMTP_PORT'
export BACKUPD_TEST_MAILPIT_API='http://127.0.0.1:$MAILPIT_HTTP_PORT'
export BACKUPD_TEST_TOXIPROXY_API='http://127.0.0.1:$TOXIPROXY_PORT'
EOF
	mv -f "$tmp" "$ENV_FILE"
}

cmd_start() {
	local started_file=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--started-file) started_file="${2:?--started-file needs a file}"; shift 2 ;;
		*) die "start: unknown argument $1" ;;
		esac
	done
	command -v curl >/dev/null 2>&1 || die "curl is needed to check the servers; apt-get install curl"
	lock start
	mkdir -p "$RUN"
	STARTED_FILE="$started_file"
	[ -z "$STARTED_FILE" ] || : >"$STARTED_FILE"
	start_mariadb
	local s
	for s in "${SERVERS[@]}"; do
		start_server "$s"
	done
	write_env
	say "ready; addresses in $ENV_FILE"
}

# ---------------------------------------------------------------------------- stop

stop_server() {
	local name="$1" pidfile="$RUN/$1.pid" pid i
	if ! alive "$name"; then
		rm -f "$pidfile"
		say "$name: not running"
		return 0
	fi
	pid="$(cat "$pidfile")"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 40; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.25
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name: still running 10s after SIGTERM, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
	say "$name: stopped"
}

cmd_stop() {
	lock start
	local names=("$@") n
	[ ${#names[@]} -gt 0 ] || names=("${SERVERS[@]}")
	for n in "${names[@]}"; do
		case " ${SERVERS[*]} " in
		*" $n "*) stop_server "$n" ;;
		*) die "stop: unknown server $n (known: ${SERVERS[*]})" ;;
		esac
	done
	# The addresses are only true while every server runs.
	local any=""
	for n in "${SERVERS[@]}"; do alive "$n" && any=1; done
	[ -n "$any" ] || rm -f "$ENV_FILE"
}

cmd_status() {
	local n
	for n in mariadb "${SERVERS[@]}"; do
		if answers "$n"; then
			if alive "$n"; then say "$n: running (pid $(cat "$RUN/$n.pid"))"; else say "$n: answering"; fi
		else
			say "$n: not running"
		fi
	done
}

cmd_env() {
	[ -f "$ENV_FILE" ] || die "no $ENV_FILE; run: scripts/testenv.sh start"
	grep '^export ' "$ENV_FILE"
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

case "${1:-}" in
install) shift; cmd_install "$@" ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) usage ;;
*) usage ;;
esac

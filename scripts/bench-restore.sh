#!/usr/bin/env bash
# bench-restore.sh [DB] — restore benchmark against mydumper/myloader, on the local MariaDB, in one run:
#
#   1. backupd backup of DB to MinIO, then `backupd restore` of it under another name
#      (defaults: --threads = number of CPUs, verification on), with /usr/bin/time -v
#   2. `myloader -t 2` of a `mydumper -t 2` dump of DB
#   3. `age -d | zstd -d | mariadb` as one stream, of a `mariadb-dump --single-transaction
#      --quick | zstd | age` file of DB (slow: about 5 min for the shop database at scale 1; SKIP_STREAM=1
#      leaves it out)
#   4. with COMPARE_DEFER=1, `backupd restore --defer-indexes=false` too
#   5. with COMPARE_INSERTS=1, `backupd restore --load-data=false` too (the INSERT statements
#      as written instead of LOAD DATA)
#
# DB defaults to bench_shop1 (go run ./internal/testenv/cmd/shopgen --scale 1 --database bench_shop1). Every restored copy
# is dropped again; DB itself is only read. Needs the test servers (scripts/testenv.sh start),
# mariadb-client, mydumper, age, zstd and GNU time. Results go to stdout and $WORK/results.txt.
set -euo pipefail

DB=${1:-bench_shop1}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=${WORK:-$(mktemp -d /tmp/backupd-bench-restore.XXXXXX)}
MYSQL=${MYSQL:-mariadb -uroot}
DSN=${DSN:-root@tcp(127.0.0.1:3306)/}
SUFFIX=$$

say() { printf 'bench-restore: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for tool in age zstd mydumper myloader mariadb-dump /usr/bin/time curl; do
	command -v "$tool" >/dev/null || die "$tool is missing (scripts/testenv.sh install, apt-get install time curl)"
done
$MYSQL -N -e "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$DB'" | grep -q 1 ||
	die "database $DB does not exist: make it with go run ./internal/testenv/cmd/shopgen --scale 1 --database $DB"
eval "$("$ROOT/scripts/testenv.sh" env)"
EP=$BACKUPD_TEST_MINIO_ENDPOINT
AK=$BACKUPD_TEST_MINIO_ACCESS_KEY
SK=$BACKUPD_TEST_MINIO_SECRET_KEY
REGION=${BACKUPD_TEST_MINIO_REGION:-us-east-1}
BUCKET=backupd-bench-restore-$SUFFIX
s3() { curl -sS --fail --aws-sigv4 "aws:amz:$REGION:s3" --user "$AK:$SK" "$@"; }

drop() { $MYSQL -e "DROP DATABASE IF EXISTS \`$1\`"; }
cleanup() {
	for d in "${DB}_rs_backupd" "${DB}_rs_nodefer" "${DB}_rs_inserts" "${DB}_rs_myloader" "${DB}_rs_stream"; do drop "$d" || true; done
	# Empty and remove the bucket (its keys are plain ASCII for the shop database).
	if s3 "$EP/$BUCKET?list-type=2" -o "$WORK/list.xml" 2>/dev/null; then
		grep -o '<Key>[^<]*</Key>' "$WORK/list.xml" | sed 's/<[^>]*>//g' | while read -r key; do
			s3 -X DELETE "$EP/$BUCKET/$key" || true
		done
		s3 -X DELETE "$EP/$BUCKET" || true
	fi
	rm -rf "$WORK/mydumper" "$WORK/stream.sql.zst.age" "$WORK/backups" "$WORK/state"
}
trap cleanup EXIT

say "work directory $WORK"
(cd "$ROOT" && go build -o "$WORK/backupd" ./cmd/backupd)
s3 -X PUT "$EP/$BUCKET" >/dev/null
cat >"$WORK/backupd.yaml" <<EOF
state_dir: $WORK/state
targets:
  minio:
    type: s3
    endpoint: $EP
    region: $REGION
    bucket: $BUCKET
    bucket_lookup: path
    access_key: $AK
    secret_key: $SK
encryption:
  identity_file: $WORK/key.txt
policies:
  bench:
    schedule: "@daily"
    mysql:
      dsn: "$DSN"
      databases: [$DB]
      threads: 2
    targets: [minio]
EOF

# timed LABEL CMD...: wall seconds and peak RSS of CMD (a shell pipeline needs bash -c).
timed() {
	local label=$1
	shift
	/usr/bin/time -v -o "$WORK/time.$label" "$@" >"$WORK/out.$label" 2>"$WORK/err.$label" ||
		{ tail -5 "$WORK/err.$label" >&2; die "$label failed"; }
	local wall rss
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$WORK/time.$label")
	rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$WORK/time.$label")
	printf '%-34s %8.1f s  peak RSS %5s MiB\n' "$label" "$wall" "$rss" | tee -a "$WORK/results.txt"
	eval "T_$label=$wall"
}

: >"$WORK/results.txt"
say "backupd backup of $DB to MinIO"
timed backup "$WORK/backupd" backup --config "$WORK/backupd.yaml"
drop "${DB}_rs_backupd"
say "backupd restore from MinIO"
timed backupd_restore "$WORK/backupd" restore --config "$WORK/backupd.yaml" --to "$DSN" --as "${DB}_rs_backupd" --yes
grep -E '^(restored|  verified)' "$WORK/out.backupd_restore" >&2
drop "${DB}_rs_backupd"
if [ "${COMPARE_DEFER:-0}" = 1 ]; then
	say "backupd restore --defer-indexes=false"
	timed backupd_restore_nodefer "$WORK/backupd" restore --config "$WORK/backupd.yaml" --to "$DSN" --as "${DB}_rs_nodefer" --yes --defer-indexes=false
	drop "${DB}_rs_nodefer"
fi
if [ "${COMPARE_INSERTS:-0}" = 1 ]; then
	say "backupd restore --load-data=false"
	timed backupd_restore_inserts "$WORK/backupd" restore --config "$WORK/backupd.yaml" --to "$DSN" --as "${DB}_rs_inserts" --yes --load-data=false
	drop "${DB}_rs_inserts"
fi

say "mydumper -t 2, then myloader -t 2"
rm -rf "$WORK/mydumper"
timed mydumper mydumper -u root -h 127.0.0.1 -t 2 -B "$DB" -o "$WORK/mydumper"
drop "${DB}_rs_myloader"
timed myloader_t2 myloader -u root -h 127.0.0.1 -t 2 -d "$WORK/mydumper" -B "${DB}_rs_myloader"
drop "${DB}_rs_myloader"
rm -rf "$WORK/mydumper"

if [ "${SKIP_STREAM:-0}" != 1 ]; then
	say "mariadb-dump | zstd | age, then age -d | zstd -d | mariadb as one stream (slow)"
	pub=$(age-keygen -y "$WORK/key.txt" 2>/dev/null || grep -o 'age1[0-9a-z]*' "$WORK/key.txt" | head -1)
	timed stream_dump bash -c "mariadb-dump -uroot -h127.0.0.1 --single-transaction --quick '$DB' | zstd -3 -q | age -r '$pub' > '$WORK/stream.sql.zst.age'"
	drop "${DB}_rs_stream"
	$MYSQL -e "CREATE DATABASE \`${DB}_rs_stream\`"
	timed stream_restore bash -c "age -d -i '$WORK/key.txt' '$WORK/stream.sql.zst.age' | zstd -d -q | mariadb -uroot -h127.0.0.1 '${DB}_rs_stream'"
	drop "${DB}_rs_stream"
fi

echo
awk -v b="$T_backupd_restore" -v m="$T_myloader_t2" -v s="${T_stream_restore:-0}" 'BEGIN {
	printf "backupd restore vs myloader -t 2: %.2fx (%s)\n", m / b, (b <= m ? "no slower: target met" : "SLOWER: target missed")
	if (s > 0) printf "backupd restore vs one stream:    %.2fx (%s)\n", s / b, (s / b >= 3 ? "target >= 3x met" : "target >= 3x MISSED")
}' | tee -a "$WORK/results.txt"

#!/usr/bin/env bash
# bench-backup.sh [SCALE [DB]] — backupd backup to MinIO against the reference pipeline
# `mariadb-dump --single-transaction --quick | zstd -3 | age -r KEY > file`, measured in the
# same run on the same data (internal/testenv/cmd/shopgen --scale SCALE, generated once into
# DB, default bench_shop1 for scale 1, bench_shop for 0.1, bench_shop_<SCALE> otherwise, and kept). Prints wall times, the ratio and backupd's peak RSS.
# Needs the test servers: scripts/testenv.sh start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scale="${1:-1}"
case "$scale" in
  1) default_db=bench_shop1 ;;
  0.1) default_db=bench_shop ;;
  *) default_db="bench_shop_${scale//./_}" ;;
esac
db="${2:-$default_db}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! mariadb -uroot -N -e "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='$db'" | grep -q 1; then
  echo "generating $db (shopgen --scale $scale)…"
  go run ./internal/testenv/cmd/shopgen --scale "$scale" --database "$db"
fi
eval "$(scripts/testenv.sh env)"
go build -o "$work/backupd" ./cmd/backupd
bucket="bench-$(date +%s)"
go run ./internal/testenv/cmd/mkbucket minio "$bucket"
age-keygen -o "$work/key.txt" 2>/dev/null
pub="$(age-keygen -y "$work/key.txt")"
cat > "$work/bench.yaml" <<YAML
targets:
  minio:
    type: s3
    endpoint: $BACKUPD_TEST_MINIO_ENDPOINT
    bucket: $bucket
    bucket_lookup: path
    access_key: $BACKUPD_TEST_MINIO_ACCESS_KEY
    secret_key: $BACKUPD_TEST_MINIO_SECRET_KEY
encryption:
  recipients: [$pub]
policies:
  bench:
    schedule: "@daily"
    mysql:
      dsn: "root@tcp(127.0.0.1:3306)/"
      databases: [$db]
      threads: 2
    targets: [minio]
YAML

now() { date +%s.%N; }
sync
t0=$(now)
mariadb-dump -uroot --single-transaction --quick "$db" | zstd -3 -q | age -r "$pub" > "$work/ref.sql.zst.age"
t1=$(now)
ref=$(echo "$t1 - $t0" | bc)
refsize=$(stat -c %s "$work/ref.sql.zst.age")
rm -f "$work/ref.sql.zst.age"

sync
t0=$(now)
/usr/bin/time -v -o "$work/time.txt" "$work/backupd" backup --config "$work/bench.yaml" > "$work/out.txt" 2> "$work/log.txt"
t1=$(now)
ours=$(echo "$t1 - $t0" | bc)
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")

echo "data: $db ($(mariadb -uroot -N -e "SELECT ROUND(SUM(data_length+index_length)/1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA='$db'") MiB in InnoDB)"
printf 'reference  mariadb-dump | zstd -3 | age > file : %6.1f s  (%d MiB)\n' "$ref" $((refsize >> 20))
printf 'backupd    backup to MinIO                     : %6.1f s  peak RSS %d MiB\n' "$ours" $((rss / 1024))
printf 'ratio backupd / reference                      : %6.2f\n' "$(echo "$ours / $ref" | bc -l)"
sed -n '1,3p' "$work/out.txt"

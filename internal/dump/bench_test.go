package dump

import (
	"context"
	"database/sql"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv/shop"
)

// The benchmark database: the shop database (internal/testenv/shop) at SCALE as DB, generated
// once when missing.
// BACKUPD_BENCH_DB (default bench_shop) and BACKUPD_BENCH_SCALE (default 0.1) choose it.
//
//	go test ./internal/dump -run '^$' -bench . -benchtime 3x
//
// BenchmarkDump and BenchmarkMariadbDump read the same database, so their MB/s compare.
func benchDatabase(b *testing.B) (string, *sql.DB, string) {
	b.Helper()
	db, dsn := openRoot(b)
	name := os.Getenv("BACKUPD_BENCH_DB")
	if name == "" {
		name = "bench_shop"
	}
	scale := os.Getenv("BACKUPD_BENCH_SCALE")
	if scale == "" {
		scale = "0.1"
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'events'", name).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		f, err := strconv.ParseFloat(scale, 64)
		if err != nil {
			b.Fatalf("BACKUPD_BENCH_SCALE %q: want a number such as 0.1 or 1", scale)
		}
		if _, err := shop.Generate(context.Background(), shop.Options{DSN: dsn, Database: name, Scale: f}); err != nil {
			b.Fatal(err)
		}
	}
	return name, db, dsn
}

type discardSink struct{}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (discardSink) Create(context.Context, string) (io.WriteCloser, error) {
	return nopCloser{io.Discard}, nil
}

func maxRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

// BenchmarkDump dumps the benchmark database with 2 threads to io.Discard.
func BenchmarkDump(b *testing.B) {
	name, _, dsn := benchDatabase(b)
	var bytes, rows int64
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := Run(context.Background(), Options{DSN: dsn, Databases: []string{name}, Threads: 2}, discardSink{})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		bytes, rows = res.Bytes, res.Rows
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(maxRSSMiB(), "peak-RSS-MiB")
}

// BenchmarkMariadbDump is the reference: mariadb-dump --single-transaction --quick > /dev/null.
func BenchmarkMariadbDump(b *testing.B) {
	name, _, dsn := benchDatabase(b)
	args, env := cliArgs(b, dsn)
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("mariadb-dump", append(args, "--single-transaction", "--quick", name)...)
		cmd.Env = env
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		bytes = n
	}
	b.SetBytes(bytes)
}

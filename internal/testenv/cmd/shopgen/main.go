// Command shopgen generates the "shop" benchmark database (package shop) in a MariaDB server:
//
//	go run ./internal/testenv/cmd/shopgen --scale 0.1 --database bench_shop
//
// It drops the database first if it exists. Scale 1 is 0.5 M users, 4 M orders and 1.5 M
// events; --seed 0 (the default) gives the values the benchmark figures were measured on. The
// server is BACKUPD_TEST_MYSQL_DSN (or .tools/testenv.env, as for the tests) unless --dsn says
// otherwise; it must allow LOAD DATA LOCAL INFILE.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/backupd/backupd/internal/testenv"
	"github.com/backupd/backupd/internal/testenv/shop"
)

func main() {
	fs := flag.NewFlagSet("shopgen", flag.ContinueOnError)
	scale := fs.String("scale", "0.1", "size: 1 = 0.5 M users, 4 M orders, 1.5 M events (at least one row each)")
	database := fs.String("database", "shop", "database to create (dropped first if it exists)")
	seed := fs.Uint64("seed", 0, "0: the reference values; any other number: other values, the same for the same seed")
	dsn := fs.String("dsn", "", "go-sql-driver DSN of the server (default: BACKUPD_TEST_MYSQL_DSN, else root@tcp(127.0.0.1:3306)/)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: shopgen [--scale S] [--database NAME] [--seed N] [--dsn DSN]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "shopgen: unexpected argument %q; give the scale with --scale and the database with --database\n", fs.Arg(0))
		os.Exit(2)
	}
	s, err := strconv.ParseFloat(*scale, 64)
	if err != nil || !(s > 0) {
		fmt.Fprintf(os.Stderr, "shopgen: --scale %q: want a number above 0, such as 0.1 or 1\n", *scale)
		os.Exit(2)
	}
	if *dsn == "" {
		*dsn = testenv.Get("BACKUPD_TEST_MYSQL_DSN")
	}
	if *dsn == "" {
		*dsn = "root@tcp(127.0.0.1:3306)/"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := shop.Generate(ctx, shop.Options{DSN: *dsn, Database: *database, Scale: s, Seed: *seed})
	if err != nil {
		fmt.Fprintf(os.Stderr, "shopgen: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("generated %s at scale %s seed %d in %.1fs: users=%d orders=%d events=%d\n",
		*database, *scale, *seed, time.Since(start).Seconds(), c.Users, c.Orders, c.Events)
}

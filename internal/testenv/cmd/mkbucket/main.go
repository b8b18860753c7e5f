// Command mkbucket creates a bucket on one of the test S3 servers (minio or versitygw), for
// benchmark scripts: `go run ./internal/testenv/cmd/mkbucket minio NAME`. backupd itself never
// creates buckets, so that a typo in a config cannot silently start a new one.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/backupd/backupd/internal/testenv"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "minio" && os.Args[1] != "versitygw") {
		fmt.Fprintln(os.Stderr, "usage: mkbucket minio|versitygw BUCKET")
		os.Exit(2)
	}
	prefix := "BACKUPD_TEST_" + strings.ToUpper(os.Args[1])
	endpoint := testenv.Get(prefix + "_ENDPOINT")
	if endpoint == "" {
		fmt.Fprintf(os.Stderr, "mkbucket: %s_ENDPOINT is not set; %s\n", prefix, testenv.StartHint)
		os.Exit(1)
	}
	c, err := minio.New(strings.TrimPrefix(endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(testenv.Get(prefix+"_ACCESS_KEY"), testenv.Get(prefix+"_SECRET_KEY"), ""),
		BucketLookup: minio.BucketLookupPath,
	})
	if err == nil {
		err = c.MakeBucket(context.Background(), os.Args[2], minio.MakeBucketOptions{})
		if minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			err = nil
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkbucket: %v\n", err)
		os.Exit(1)
	}
}

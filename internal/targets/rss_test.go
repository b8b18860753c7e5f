package targets_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/targets/targettest"
	"github.com/backupd/backupd/internal/testenv"
)

// rssHelperEnv, when set, turns the test binary into the upload process whose memory
// TestPeakRSS measures. A separate process is the only honest measurement: peak RSS is a
// property of the whole process, and the test process has run other tests already.
const rssHelperEnv = "BACKUPD_TARGETS_RSS_HELPER_SPEC"

const (
	rssObjectSize = 100 << 20
	rssLimit      = 200 << 20
	rssSeed       = 42
	rssKey        = "rss/100MiB.bin"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(rssHelperEnv); spec != "" {
		os.Exit(rssHelper(spec))
	}
	os.Exit(m.Run())
}

// rssHelper uploads rssObjectSize bytes from a generated, non-seekable stream (as a dump
// pipe would be) through targets.Open with the default part size, then prints its peak
// RSS.
func rssHelper(specJSON string) int {
	var spec targets.Spec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tgt, err := targets.Open("rss", spec, targets.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	before, err := vmHWM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := tgt.Put(context.Background(), rssKey, targettest.Data(rssSeed, rssObjectSize), rssObjectSize); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	peak, err := vmHWM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("before=%d peak=%d\n", before, peak)
	return 0
}

// vmHWM is the process's peak resident set size in bytes, from /proc/self/status.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// TestPeakRSS is the acceptance check "a 100 MiB upload to MinIO keeps the process's peak
// RSS under 200 MiB".
func TestPeakRSS(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := newBucket(t, srv)
	spec := s3Spec(srv, bucket, "") // default part size, as a config without part_size gets
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), rssHelperEnv+"="+string(specJSON))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("upload process: %v\n%s", err, stderr.String())
	}
	var before, peak int64
	if _, err := fmt.Sscanf(string(out), "before=%d peak=%d", &before, &peak); err != nil {
		t.Fatalf("upload process printed %q: %v", out, err)
	}
	const mib = 1 << 20
	t.Logf("100 MiB streamed upload to MinIO (part size %d MiB): peak RSS %.1f MiB (%.1f MiB before the upload)",
		targets.DefaultPartSize/mib, float64(peak)/mib, float64(before)/mib)
	if peak > rssLimit {
		t.Errorf("peak RSS %.1f MiB, want under %d MiB", float64(peak)/mib, rssLimit/mib)
	}

	// The measurement only counts if the upload was right.
	tgt := openS3(t, srv.Name, spec)
	got, n := targettest.GetSum(t, context.Background(), tgt, rssKey)
	h := sha256.New()
	io.Copy(h, targettest.Data(rssSeed, rssObjectSize))
	if n != rssObjectSize || got != [32]byte(h.Sum(nil)) {
		t.Errorf("uploaded object: %d bytes with sha256 %x, want %d bytes with %x", n, got, rssObjectSize, h.Sum(nil))
	}
}

// Command backupd backs up MySQL/MariaDB databases and storage areas to S3-compatible targets,
// restores them, and proves with scheduled drills that the backups restore.
//
// Exit codes (decided here and nowhere else):
//
//	0  success
//	1  the job failed (backup, restore, verify, drill): see the error printed
//	2  usage or configuration error: fix the command line or the config file
//	   (also: a missing or wrong identity, an unknown set, a destination that already holds
//	   what a restore would create; the message says what to change)
//	3  a target or the database server could not be reached before anything was changed:
//	   check the network, endpoint or server and run the command again
//	130 interrupted by SIGINT/SIGTERM before the job finished
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	_ "time/tzdata" // CRON_TZ= must work in minimal containers without zoneinfo

	"github.com/backupd/backupd/internal/config"
)

// Exit codes; documented in the package comment and the README.
const (
	exitOK          = 0
	exitJobFailed   = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitInterrupted = 130
)

// command is one subcommand: its flags are parsed by run itself, so each command keeps its own
// flag set in its own file.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by each command's file in an init function, so adding a command touches
// only its own file.
var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError marks a mistake on the command line; main exits 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// operatorError is a problem the person fixes by changing what they asked for (another key, set
// or flag) that needs no --help hint; main prints it as one line and exits 2.
type operatorError struct{ err error }

func (e *operatorError) Error() string { return e.err.Error() }
func (e *operatorError) Unwrap() error { return e.err }

// unreachableError marks a target or server that could not be reached before the command
// changed anything; main exits 3, which a script may retry.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	format, args, ferr := extractLogFormat(args)
	if ferr != nil {
		fmt.Fprintf(stderr, "backupd: %v\n", ferr)
		return exitUsage
	}
	ctx = withLogFormat(ctx, format)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printHelp(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "backupd: unknown command %q; run 'backupd --help' for the list of commands\n", args[0])
		return exitUsage
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	return exitCode(ctx, stderr, c.name, err)
}

// exitCode prints err once and maps it to the documented exit code.
func exitCode(ctx context.Context, stderr io.Writer, name string, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var ve *config.ValidationError
	var oe *operatorError
	var unr *unreachableError
	switch {
	case errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ve):
		fmt.Fprintf(stderr, "backupd %s: %v\n", name, err)
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "backupd %s: %v\nrun 'backupd %s --help' for its options\n", name, err, name)
		return exitUsage
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "backupd %s: interrupted: %v\n", name, err)
		return exitInterrupted
	case errors.As(err, &unr):
		fmt.Fprintf(stderr, "backupd %s: %v\n", name, err)
		return exitUnreachable
	case errors.As(err, &oe):
		fmt.Fprintf(stderr, "backupd %s: %v\n", name, err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "backupd %s: %v\n", name, err)
		return exitJobFailed
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "backupd — consistent, encrypted MySQL/MariaDB and storage backups, verified restores and drills")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: backupd [--log-format text|json] COMMAND [options]   (backupd COMMAND --help for its options)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "Global options (before or after the command):\n"+globalUsage)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 the job failed, 2 usage or config error, 3 a server could not be reached, 130 interrupted.")
}

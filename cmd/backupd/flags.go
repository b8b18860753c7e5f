package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelpShown is returned when a command printed its --help; main exits 0 for it.
var errHelpShown = errors.New("help shown")

// newFlagSet returns a flag set whose errors become usage errors instead of exiting, and whose
// --help output goes to stdout.
func newFlagSet(name, usage string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: backupd %s %s\n\nOptions:\n", name, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, "\nGlobal options:\n"+globalUsage)
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors and rejecting stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	rest, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	return nil
}

// parseFlagsAndArgs parses args like parseFlags but returns the arguments that are not flags,
// wherever they stand: `restore storage uploads --to-dir D` and `restore storage --to-dir D
// uploads` mean the same.
func parseFlagsAndArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpShown // the flag package has printed fs.Usage
			}
			return nil, usageErrorf("%v", err)
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// flagGroup is a titled part of a command's --help.
type flagGroup struct {
	title string
	names []string
}

// groupedUsage makes fs's --help list the flags of no group under "Options:", then each group
// under its title, for a command whose flags serve two uses.
func groupedUsage(fs *flag.FlagSet, name, usage string, stdout io.Writer, groups ...flagGroup) {
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: backupd %s %s\n", name, usage)
		grouped := map[string]bool{}
		for _, g := range groups {
			for _, n := range g.names {
				grouped[n] = true
			}
		}
		var rest []string
		fs.VisitAll(func(f *flag.Flag) {
			if !grouped[f.Name] {
				rest = append(rest, f.Name)
			}
		})
		printFlags(stdout, fs, "Options:", rest)
		for _, g := range groups {
			printFlags(stdout, fs, g.title, g.names)
		}
	}
}

// printFlags prints the named flags of fs as PrintDefaults does, under a title.
func printFlags(w io.Writer, fs *flag.FlagSet, title string, names []string) {
	part := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	for _, n := range names {
		f := fs.Lookup(n)
		part.Var(f.Value, f.Name, f.Usage)
		part.Lookup(n).DefValue = f.DefValue // the default, not what the command line set
	}
	fmt.Fprintf(w, "\n%s\n", title)
	part.SetOutput(w)
	part.PrintDefaults()
}

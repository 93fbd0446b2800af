package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"relay/internal/config"
)

// command is one of relay's subcommands. run finds every one in commands, parses its flags,
// prints its help and reports its usage mistakes, the same way for all.
type command struct {
	name    string // as typed after relay: "dev", or a group's "history record"
	args    string // what follows [flags] in its usage line, e.g. "FILE..."; "" if it takes none
	summary string // its line in 'relay --help' ("\n" continues it)
	about   string // what 'relay <name> --help' says above the flags
	// config is set for the commands that run relay: their flags and variables are relay's
	// settings (package config), loaded before start.
	config *configured
	// tool is set for the others: it defines their own flags on fs and returns what runs
	// them, given the arguments left after the flags.
	tool func(fs *flag.FlagSet, stdout, stderr io.Writer) runner
	// more, if set, prints what follows the flags in the help (bench: its scenarios).
	more func(w io.Writer)
}

// runner runs a command whose flags are parsed, with the arguments left over.
type runner func(ctx context.Context, args []string) error

// configured is a command that runs relay: the settings it reads, their defaults, and
// what it starts with them.
type configured struct {
	groups   config.Group
	defaults func() config.Config
	start    func(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout io.Writer) error
}

const devGroups = config.Common | config.HTTP | config.Store | config.Upstream | config.Embedded | config.Sim

var commands = []command{
	{name: "dev",
		summary: "everything in one process: embedded Temporal server and Web UI, upstream\n" +
			"simulators, worker and HTTP API (the way to try relay)",
		about: "Runs everything in one process: an embedded Temporal server (SQLite in the data dir) with\n" +
			"its Web UI, a simulator for every upstream whose URL is not set, the worker and the HTTP API.\n" +
			"Unless RELAY_TRUSTED_PROXIES is set, X-Forwarded-For from loopback is believed.",
		config: &configured{devGroups, config.DevDefault, runDev}},
	{name: "server", summary: "the HTTP API only, against TEMPORAL_ADDRESS",
		about:  "Runs the HTTP API against the Temporal server at TEMPORAL_ADDRESS.",
		config: &configured{config.Common | config.HTTP | config.Store, config.Default, runServer}},
	{name: "worker", summary: "the Temporal worker only, against TEMPORAL_ADDRESS",
		about:  "Runs the Temporal worker (task queues relay, relay-geoip and relay-merge) against TEMPORAL_ADDRESS.",
		config: &configured{config.Common | config.Store | config.Upstream, config.Default, runWorker}},
	{name: "sim", summary: "the four upstream simulators, with their fault knobs",
		about: "Serves the four upstream simulators on ports 9101 (incidents), 9102 (c42), 9103 (geoip)\n" +
			"and 9104 (kf), with the faults RELAY_SIM_KNOBS sets.",
		config: &configured{config.Sim, config.Default, runSim}},
	historyRecordCommand,
	historyReplayCommand,
	benchCommand,
	soakCommand,
}

const usageIntro = `relay turns fragile API glue into durable Temporal jobs.

Usage:
  relay <command> [flags]

Commands:
`

const usageOutro = `
Run 'relay <command> --help' for a command's flags. Each flag can also be set by the
environment variable its help names; a flag wins over the variable.
`

// usageError is a command line relay cannot follow: no or an unknown command, an unknown
// flag or a flag's bad value, an argument missing or too many. Like a *config.Error (a bad
// setting), it exits 2; anything else that fails is a runtime failure and exits 1.
type usageError struct {
	cmd string // the command (or group) whose line it is; "" for relay's own
	msg string
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.msg + " (see 'relay --help')"
	}
	return fmt.Sprintf("%s: %s (see 'relay %s --help')", e.cmd, e.msg, e.cmd)
}

// usagef is a command's usage mistake; run names the command.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode is main's exit status for run's error.
func exitCode(err error) int {
	var usageErr *usageError
	var cfgErr *config.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usageErr), errors.As(err, &cfgErr):
		return 2
	}
	return 1
}

// run is the whole program; main only turns its error into an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return usagef("no command given")
	}
	if isHelp(args[0]) || args[0] == "help" {
		printUsage(stdout)
		return nil
	}
	cmd, rest, err := lookup(args, stdout, stderr)
	if cmd == nil {
		return err
	}
	fs := flag.NewFlagSet("relay "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints help and errors itself, each once
	start := cmd.setup(fs, getenv, stdout, stderr)
	operands, err := parseFlags(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return &usageError{cmd: cmd.name, msg: err.Error()}
	}
	if cmd.args == "" && len(operands) > 0 {
		return &usageError{cmd: cmd.name, msg: fmt.Sprintf("unexpected argument %q", operands[0])}
	}
	err = start(ctx, operands)
	if usageErr, ok := errors.AsType[*usageError](err); ok && usageErr.cmd == "" {
		usageErr.cmd = cmd.name
	}
	return err
}

// lookup finds the command args start with, and returns the arguments after its name. For
// a group's name alone (history) it prints the group's help instead, and returns a nil
// command with the error, if any.
func lookup(args []string, stdout, stderr io.Writer) (*command, []string, error) {
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return &commands[i], args[len(words):], nil
		}
	}
	group := args[0]
	subs := subcommands(group)
	switch {
	case len(subs) == 0:
		return nil, nil, usagef("unknown command %q, want one of %s", group, strings.Join(topNames(), ", "))
	case len(args) == 1:
		printGroupHelp(stderr, group)
		return nil, nil, &usageError{cmd: group, msg: fmt.Sprintf("no subcommand given (%s)", strings.Join(subs, " or "))}
	case isHelp(args[1]):
		printGroupHelp(stdout, group)
		return nil, nil, nil
	}
	return nil, nil, &usageError{cmd: group,
		msg: fmt.Sprintf("unknown subcommand %q (%s)", args[1], strings.Join(subs, " or "))}
}

// subcommands are the second words of the commands in group.
func subcommands(group string) []string {
	var out []string
	for _, c := range commands {
		if sub, ok := strings.CutPrefix(c.name, group+" "); ok {
			out = append(out, sub)
		}
	}
	return out
}

// topNames are the first words of the commands: what may follow relay.
func topNames() []string {
	var out []string
	for _, c := range commands {
		if first, _, _ := strings.Cut(c.name, " "); !slices.Contains(out, first) {
			out = append(out, first)
		}
	}
	return out
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// setup defines cmd's flags on fs and returns what runs it once they are parsed.
func (c *command) setup(fs *flag.FlagSet, getenv func(string) string, stdout, stderr io.Writer) runner {
	if c.config == nil {
		return c.tool(fs, stdout, stderr)
	}
	cfg := c.config.defaults()
	loader := config.Bind(fs, &cfg, c.config.groups)
	return func(ctx context.Context, _ []string) error {
		if err := loader.ReadEnv(getenv); err != nil {
			return fmt.Errorf("%s: %w (see 'relay %s --help')", c.name, err, c.name)
		}
		logger := newLogger(cfg, stderr)
		logger.Debug("configuration", "command", c.name, "settings", cfg.Redacted(c.config.groups))
		return c.config.start(ctx, cfg, logger, stdout)
	}
}

// parseFlags parses args into fs, where flags may come before, between and after the
// command's arguments, and returns those arguments ("--" ends the flags).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(operands, rest...), nil
		}
		operands, args = append(operands, rest[0]), rest[1:]
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usageIntro)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		lines := strings.Split(c.summary, "\n")
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "  %-*s  %s\n", width, "", l)
		}
	}
	fmt.Fprint(w, usageOutro)
}

func printHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	line := "relay " + cmd.name
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		line += " [flags]"
	}
	if cmd.args != "" {
		line += " " + cmd.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", line, cmd.about)
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if cmd.more != nil {
		cmd.more(w)
	}
}

func printGroupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: relay %s <subcommand> [flags]\n\nSubcommands:\n", group)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		if sub, ok := strings.CutPrefix(c.name, group+" "); ok {
			fmt.Fprintf(tw, "  %s\t%s\n", sub, strings.ReplaceAll(c.summary, "\n", " "))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'relay %s <subcommand> --help' for what it does and its flags.\n", group)
}

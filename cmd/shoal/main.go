// Command shoal is both the Shoal daemon (shoal daemon) and the client that
// drives it over its local control socket (shoal swarm, shoal node, ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Set at build time with -ldflags "-X main.version=... -X main.gitCommit=...".
var (
	version   = "dev"
	gitCommit = ""
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one shoal command line and returns the process exit code.
// Every error is printed once, to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(os.Getenv)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		printError(stderr, err)
		return 1
	}
	return 0
}

func printError(w io.Writer, err error) {
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintf(w, "%s\nSee '%s --help'.\n", u.err, u.path)
		return
	}
	fmt.Fprintln(w, strings.TrimRight(err.Error(), "\n"))
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	host string
}

func newRootCmd(getenv func(string) string) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "shoal",
		Short: "A container orchestrator in the style of Docker swarm mode",
		Long: "Shoal runs a swarm of nodes. \"shoal daemon\" runs the node itself; the other\n" +
			"commands talk to the local daemon through its control socket.",
		Version:           versionString(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		Args:              cobra.ArbitraryArgs,
		RunE:              groupRunE,
	}
	root.SetVersionTemplate("Shoal version {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{path: c.CommandPath(), err: err}
	})
	root.PersistentFlags().StringVarP(&g.host, "host", "H", defaultHost(getenv),
		"Daemon socket to connect to (unix:///path only; env SHOAL_HOST)")

	root.AddCommand(
		newDaemonCmd(g),
		newVersionCmd(g),
		newInfoCmd(g),
		newSwarmCmd(g),
		newNodeCmd(g),
		newServiceCmd(g),
		newNetworkCmd(g),
		newStackCmd(g),
	)
	noFlagsInUseLine(root)
	return root
}

// noFlagsInUseLine keeps cobra from appending "[flags]" to usage lines,
// which already say where the options go.
func noFlagsInUseLine(c *cobra.Command) {
	c.DisableFlagsInUseLine = true
	for _, sub := range c.Commands() {
		noFlagsInUseLine(sub)
	}
}

func versionString() string {
	if c := buildCommit(); c != "" {
		return version + ", build " + c
	}
	return version
}

// groupRunE runs a command that only groups subcommands: without arguments
// it shows its help, otherwise the first argument is an unknown command.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("%s: '%s' is not a shoal command.", cmd.CommandPath(), args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return &usageError{path: cmd.CommandPath(), err: errors.New(msg)}
}

func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(subs...)
	return c
}

// usageError is a mistake on the command line. It is reported with a
// pointer to the command's help, before anything is sent to the daemon.
type usageError struct {
	path string
	err  error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{path: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// exactArgs, minArgs and noArgs check the argument count the way docker
// words it.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf(cmd, "%q requires exactly %d argument%s.", cmd.CommandPath(), n, plural(n))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageErrorf(cmd, "%q requires at least %d argument%s.", cmd.CommandPath(), n, plural(n))
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "%q accepts no arguments.", cmd.CommandPath())
	}
	return nil
}

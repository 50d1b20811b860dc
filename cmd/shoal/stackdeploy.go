package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/internal/compose"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// composeEnv is the environment compose files are interpolated from.
var composeEnv = os.Environ

type stackDeployOptions struct {
	files        []string
	prune        bool
	resolveImage *enumValue
	detach       bool
	quiet        bool
}

func newStackDeployCmd(g *globalOptions) *cobra.Command {
	o := &stackDeployOptions{resolveImage: newEnum("resolve-image value", "always", "always", "changed", "never")}
	cmd := &cobra.Command{
		Use:     "deploy [OPTIONS] STACK",
		Aliases: []string{"up"},
		Short:   "Deploy a new stack or update an existing stack",
		Long: "Deploy a new stack or update an existing stack from compose files.\n\n" +
			"The files are read, merged and checked here, then the whole stack is sent to\n" +
			"the managers, which apply it in one write and keep it as a new revision\n" +
			"(see \"shoal stack history\" and \"shoal stack rollback\").",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkStackName(cmd, name); err != nil {
				return err
			}
			if len(o.files) == 0 {
				return usageErrorf(cmd, "Please specify a Compose file (with --compose-file)")
			}
			st, err := compose.Load(cmd.Context(), name, compose.Options{Files: o.files, Env: composeEnv(), Stdin: cmd.InOrStdin()})
			if err != nil {
				return err
			}
			for _, w := range st.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s\n\n", strings.TrimRight(w, "\n"))
			}
			return g.withClient(func(c *client) error {
				before, err := snapshotStack(cmd, c, name)
				if err != nil {
					return err
				}
				resp, err := call(cmd.Context(), c, c.control.DeployStack, &shoalpb.DeployStackRequest{Spec: st.Spec, Prune: o.prune})
				if err != nil {
					return err
				}
				return finishDeploy(cmd, c, name, before, resp.GetStack(), o.detach, o.quiet)
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "compose-file", "c", nil, "Path to a Compose file, or \"-\" to read from stdin (repeat to merge files in order)")
	f.BoolVar(&o.prune, "prune", false, "Prune services that are no longer referenced")
	f.Var(o.resolveImage, "resolve-image", `Query the registry to resolve image digest and supported platforms ("always", "changed", "never"); accepted for compatibility: nodes run the images their engines have`)
	f.BoolVarP(&o.detach, "detach", "d", true, "Exit immediately instead of waiting for the stack services to converge")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

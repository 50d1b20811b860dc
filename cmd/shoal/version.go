package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/node"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// buildCommit is the commit set at link time or, failing that, the one
// the Go toolchain recorded from the working tree.
func buildCommit() string {
	if gitCommit != "" {
		return gitCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				return s.Value[:7]
			}
		}
	}
	return ""
}

// versionInfo is one side of `shoal version`; --format templates see
// .Client and .Server.
type versionInfo struct {
	Version    string
	APIVersion string
	GitCommit  string
	GoVersion  string
	Os         string
	Arch       string
}

type versionView struct {
	Client versionInfo
	Server *versionInfo `json:",omitempty"`
}

type versionOptions struct {
	format string
}

func newVersionCmd(g *globalOptions) *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the Shoal version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(cmd, g, o)
		},
	}
	cmd.Flags().StringVarP(&o.format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func runVersion(cmd *cobra.Command, g *globalOptions, o *versionOptions) error {
	var tmpl *templateFormat
	if o.format != "" {
		var err error
		if tmpl, err = parseFormat(o.format); err != nil {
			return err
		}
	}
	v := versionView{Client: versionInfo{
		Version: version, APIVersion: node.APIVersion, GitCommit: buildCommit(),
		GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH,
	}}
	var srvErr error
	err := g.withClient(func(c *client) error {
		resp, err := call(cmd.Context(), c, c.daemon.Version, &shoalpb.VersionRequest{})
		if err != nil {
			srvErr = err
			return nil
		}
		v.Server = &versionInfo{
			Version: resp.GetVersion(), APIVersion: resp.GetApiVersion(), GitCommit: resp.GetGitCommit(),
			GoVersion: resp.GetGoVersion(), Os: resp.GetOs(), Arch: resp.GetArch(),
		}
		return nil
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if tmpl != nil {
		if srvErr != nil {
			return srvErr
		}
		return tmpl.execute(out, v)
	}
	printVersionSide(out, "Client:", v.Client)
	if srvErr != nil {
		return srvErr
	}
	fmt.Fprintln(out)
	printVersionSide(out, "Server:", *v.Server)
	return nil
}

func printVersionSide(w io.Writer, title string, v versionInfo) {
	commit := v.GitCommit
	if commit == "" {
		commit = "unknown"
	}
	fmt.Fprintln(w, title)
	fmt.Fprintf(w, " Version:      %s\n", v.Version)
	fmt.Fprintf(w, " API version:  %s\n", v.APIVersion)
	fmt.Fprintf(w, " Go version:   %s\n", v.GoVersion)
	fmt.Fprintf(w, " Git commit:   %s\n", commit)
	fmt.Fprintf(w, " OS/Arch:      %s/%s\n", v.Os, v.Arch)
}

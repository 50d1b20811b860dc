package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/internal/compose"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func newStackCmd(g *globalOptions) *cobra.Command {
	return newGroupCmd("stack", "Manage swarm stacks",
		newStackDeployCmd(g),
		newStackHistoryCmd(g),
		newStackLsCmd(g),
		newStackPsCmd(g),
		newStackRmCmd(g),
		newStackRollbackCmd(g),
		newStackServicesCmd(g),
	)
}

// stackFilter selects the services of a stack by its namespace label.
func stackFilter(name string) string { return compose.LabelNamespace + "=" + name }

// checkStackName refuses a bad stack name before anything is sent.
func checkStackName(cmd *cobra.Command, name string) error {
	if err := compose.ValidateStackName(name); err != nil {
		return usageErrorf(cmd, "%v", err)
	}
	return nil
}

// nothingFound is what docker prints for a stack with nothing in it.
func nothingFound(w io.Writer, name string) {
	fmt.Fprintf(w, "Nothing found in stack: %s\n", name)
}

// stackRow is one line of `shoal stack ls`.
type stackRow struct {
	Name     string
	Services string
}

const defaultStackTableFormat = "table {{.Name}}\t{{.Services}}"

func newStackLsCmd(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List stacks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, err := listFormat(format, defaultStackTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := call(cmd.Context(), c, c.control.ListStacks, &shoalpb.ListStacksRequest{})
				if err != nil {
					return err
				}
				items := make([]any, 0, len(resp.GetStacks()))
				for _, st := range resp.GetStacks() {
					items = append(items, stackRow{Name: st.GetName(), Services: strconv.FormatUint(resp.GetServiceCounts()[st.GetName()], 10)})
				}
				return tmpl.render(cmd.OutOrStdout(), headerFor([]string{"Name", "Services"}, nil), items)
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format the output using the given Go template")
	return cmd
}

// stackServices lists the services of a stack that match filters.
func stackServices(cmd *cobra.Command, c *client, name string, filters map[string]*shoalpb.FilterValues) (*shoalpb.ListServicesResponse, error) {
	f := map[string]*shoalpb.FilterValues{}
	for k, v := range filters {
		f[k] = v
	}
	labels := &shoalpb.FilterValues{Values: []string{stackFilter(name)}}
	if user := f["label"]; user != nil {
		// Labels of one key are ORed by the daemon, so the stack's
		// label and the user's cannot share the filter: the stack's
		// is applied here instead.
		resp, err := call(cmd.Context(), c, c.control.ListServices, &shoalpb.ListServicesRequest{Filters: f})
		if err != nil {
			return nil, err
		}
		kept := resp.GetServices()[:0]
		for _, s := range resp.GetServices() {
			if s.GetSpec().GetLabels()[compose.LabelNamespace] == name {
				kept = append(kept, s)
			}
		}
		resp.Services = kept
		return resp, nil
	}
	f["label"] = labels
	return call(cmd.Context(), c, c.control.ListServices, &shoalpb.ListServicesRequest{Filters: f})
}

func newStackServicesCmd(g *globalOptions) *cobra.Command {
	o := &serviceLsOptions{}
	cmd := &cobra.Command{
		Use:   "services [OPTIONS] STACK",
		Short: "List the services in the stack",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkStackName(cmd, name); err != nil {
				return err
			}
			tmpl, err := listFormat(o.format, defaultServiceTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := stackServices(cmd, c, name, o.filters.proto())
				if err != nil {
					return err
				}
				if len(resp.GetServices()) == 0 {
					nothingFound(cmd.ErrOrStderr(), name)
					return nil
				}
				return o.print(cmd.OutOrStdout(), tmpl, resp)
			})
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func newStackPsCmd(g *globalOptions) *cobra.Command {
	o := &taskListOptions{}
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] STACK",
		Short: "List the tasks in the stack",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkStackName(cmd, name); err != nil {
				return err
			}
			tmpl, err := listFormat(o.format, defaultTaskTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := stackServices(cmd, c, name, nil)
				if err != nil {
					return err
				}
				var ids []string
				for _, s := range resp.GetServices() {
					ids = append(ids, s.GetId())
				}
				if len(ids) == 0 {
					nothingFound(cmd.ErrOrStderr(), name)
					return nil
				}
				return listTasks(cmd, c, o, tmpl, "service", ids)
			})
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newStackRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm STACK [STACK...]",
		Aliases: []string{"remove", "down"},
		Short:   "Remove one or more stacks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := checkStackName(cmd, name); err != nil {
					return err
				}
			}
			return g.withClient(func(c *client) error {
				var errs []string
				for _, name := range args {
					before, err := snapshotStack(cmd, c, name)
					if err != nil {
						return err
					}
					_, err = call(cmd.Context(), c, c.control.RemoveStack, &shoalpb.RemoveStackRequest{Name: name})
					var de *daemonError
					switch {
					case isNotFound(err):
						nothingFound(cmd.ErrOrStderr(), name)
						continue
					case errors.As(err, &de):
						errs = append(errs, fmt.Sprintf("Failed to remove stack %s: %v", name, err))
						continue
					case err != nil:
						return err
					}
					out := cmd.OutOrStdout()
					for _, s := range sortedNames(before.services) {
						fmt.Fprintf(out, "Removing service %s\n", s)
					}
					for _, n := range sortedNames(before.networks) {
						fmt.Fprintf(out, "Removing network %s\n", n)
					}
				}
				if len(errs) > 0 {
					return errors.New(strings.Join(errs, "\n"))
				}
				return nil
			})
		},
	}
}

// historyRow is one line of `shoal stack history`.
type historyRow struct {
	Revision string
	Created  string
	Source   string
	Services string
}

const defaultHistoryTableFormat = "table {{.Revision}}\t{{.Created}}\t{{.Source}}\t{{.Services}}"

func newStackHistoryCmd(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] STACK",
		Short: "Show the revisions of a stack",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkStackName(cmd, name); err != nil {
				return err
			}
			tmpl, err := listFormat(format, defaultHistoryTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := call(cmd.Context(), c, c.control.GetStack, &shoalpb.GetStackRequest{Name: name})
				if isNotFound(err) {
					return fmt.Errorf("Error: No such stack: %s", name)
				}
				if err != nil {
					return err
				}
				return renderHistory(cmd.OutOrStdout(), tmpl, resp.GetStack(), time.Now())
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format the output using the given Go template")
	return cmd
}

// renderHistory lists a stack's revisions, newest first. The newest is the
// one in force: every deploy and rollback adds one.
func renderHistory(w io.Writer, tmpl *templateFormat, st *shoalpb.Stack, now time.Time) error {
	revs := st.GetRevisions()
	items := make([]any, 0, len(revs))
	for i := len(revs) - 1; i >= 0; i-- {
		r := revs[i]
		items = append(items, historyRow{
			Revision: strconv.FormatUint(r.GetNumber(), 10),
			Created:  humanDuration(now.Sub(unixNano(r.GetCreatedAt()))) + " ago",
			Source:   r.GetSource(),
			Services: strconv.Itoa(len(r.GetSpec().GetServices())),
		})
	}
	return tmpl.render(w, headerFor([]string{"Revision", "Created", "Source", "Services"}, nil), items)
}

// stackState is what of a stack exists, by name: its services (to their
// IDs and versions) and networks.
type stackState struct {
	services map[string]serviceVersion
	networks map[string]bool
}

type serviceVersion struct {
	id      string
	version uint64
}

func snapshotStack(cmd *cobra.Command, c *client, name string) (stackState, error) {
	st := stackState{services: map[string]serviceVersion{}, networks: map[string]bool{}}
	svcs, err := stackServices(cmd, c, name, nil)
	if err != nil {
		return st, err
	}
	for _, s := range svcs.GetServices() {
		st.services[s.GetSpec().GetName()] = serviceVersion{id: s.GetId(), version: s.GetMeta().GetVersion()}
	}
	nets, err := call(cmd.Context(), c, c.control.ListNetworks, &shoalpb.ListNetworksRequest{Filters: map[string]*shoalpb.FilterValues{
		"label": {Values: []string{stackFilter(name)}},
	}})
	if err != nil {
		return st, err
	}
	for _, n := range nets.GetNetworks() {
		st.networks[n.GetSpec().GetName()] = true
	}
	return st, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// reportChanges prints what a deploy or rollback did, in docker's words:
// networks created, services created, updated and removed. Services left
// as they were are not listed. It returns the services to wait for.
func reportChanges(w io.Writer, before, after stackState) []string {
	for _, n := range sortedNames(after.networks) {
		if !before.networks[n] {
			fmt.Fprintf(w, "Creating network %s\n", n)
		}
	}
	var changed []string
	for _, s := range sortedNames(after.services) {
		a := after.services[s]
		b, existed := before.services[s]
		switch {
		case !existed:
			fmt.Fprintf(w, "Creating service %s\n", s)
			changed = append(changed, a.id)
		case b.version != a.version:
			fmt.Fprintf(w, "Updating service %s (id: %s)\n", s, a.id)
			changed = append(changed, a.id)
		}
	}
	for _, s := range sortedNames(before.services) {
		if _, ok := after.services[s]; !ok {
			fmt.Fprintf(w, "Removing service %s\n", s)
		}
	}
	return changed
}

type stackRollbackOptions struct {
	to     uint64
	detach bool
	quiet  bool
}

func newStackRollbackCmd(g *globalOptions) *cobra.Command {
	o := &stackRollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback [OPTIONS] STACK",
		Short: "Deploy an earlier revision of a stack again, as a new revision",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkStackName(cmd, name); err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				before, err := snapshotStack(cmd, c, name)
				if err != nil {
					return err
				}
				resp, err := call(cmd.Context(), c, c.control.RollbackStack, &shoalpb.RollbackStackRequest{Name: name, ToRevision: o.to})
				if err != nil {
					return err
				}
				return finishDeploy(cmd, c, name, before, resp.GetStack(), o.detach, o.quiet)
			})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&o.to, "to", 0, "Revision to roll back to (default: the one before the current one)")
	f.BoolVarP(&o.detach, "detach", "d", true, "Exit immediately instead of waiting for the stack services to converge")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

// finishDeploy prints what a deploy or rollback changed and the revision
// the stack is at, then waits for the changed services unless detached.
func finishDeploy(cmd *cobra.Command, c *client, name string, before stackState, st *shoalpb.Stack, detach, quiet bool) error {
	after, err := snapshotStack(cmd, c, name)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	changed := reportChanges(out, before, after)
	source := ""
	if revs := st.GetRevisions(); len(revs) > 0 {
		source = revs[len(revs)-1].GetSource()
	}
	fmt.Fprintf(out, "Stack %s is at revision %d (%s)\n", name, st.GetCurrent(), source)
	if detach {
		return nil
	}
	var errs []string
	for _, id := range changed {
		if err := waitForService(cmd.Context(), c, out, id, quiet); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", id, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

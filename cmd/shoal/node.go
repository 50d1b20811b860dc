package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func newNodeCmd(g *globalOptions) *cobra.Command {
	return newGroupCmd("node", "Manage swarm nodes",
		newNodeLsCmd(g),
		newNodeInspectCmd(g),
		newNodePsCmd(g),
		newNodeUpdateCmd(g),
		newNodePromoteCmd(g),
		newNodeDemoteCmd(g),
		newNodeRmCmd(g),
	)
}

// enumWord turns a generated enum name such as NODE_STATE_READY into its
// lower-case word ("ready").
func enumWord(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

func stateWord(s shoalpb.NodeState) string { return enumWord(s.String(), "NODE_STATE_") }
func roleWord(r shoalpb.NodeRole) string   { return enumWord(r.String(), "NODE_ROLE_") }
func availabilityWord(a shoalpb.NodeAvailability) string {
	return enumWord(a.String(), "NODE_AVAILABILITY_")
}
func reachabilityWord(r shoalpb.Reachability) string {
	return enumWord(r.String(), "REACHABILITY_")
}

// nodeRow is one line of `shoal node ls`; --format templates see its fields.
type nodeRow struct {
	ID            string
	Self          bool
	Hostname      string
	Status        string
	Availability  string
	ManagerStatus string
	EngineVersion string
	TLSStatus     string
}

var nodeRowFields = []string{"ID", "Self", "Hostname", "Status", "Availability", "ManagerStatus", "EngineVersion", "TLSStatus"}

var nodeRowTitles = map[string]string{
	"Self":          "",
	"ManagerStatus": "MANAGER STATUS",
	"EngineVersion": "ENGINE VERSION",
	"TLSStatus":     "TLS STATUS",
}

const defaultNodeTableFormat = "table {{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}"

func newNodeRow(n *shoalpb.Node, selfID string) nodeRow {
	r := nodeRow{
		ID:            n.GetId(),
		Self:          selfID != "" && n.GetId() == selfID,
		Hostname:      n.GetDescription().GetHostname(),
		Status:        capitalize(stateWord(n.GetStatus().GetState())),
		Availability:  capitalize(availabilityWord(n.GetSpec().GetAvailability())),
		EngineVersion: n.GetDescription().GetEngineVersion(),
		TLSStatus:     "Ready",
	}
	if ms := n.GetManagerStatus(); ms != nil {
		if ms.GetLeader() {
			r.ManagerStatus = "Leader"
		} else {
			r.ManagerStatus = capitalize(reachabilityWord(ms.GetReachability()))
		}
	}
	return r
}

type nodeLsOptions struct {
	quiet   bool
	format  string
	filters filterValue
}

func newNodeLsCmd(g *globalOptions) *cobra.Command {
	o := &nodeLsOptions{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List nodes in the swarm",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNodeLs(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display IDs")
	f.StringVar(&o.format, "format", "", "Format the output using the given Go template")
	f.VarP(&o.filters, "filter", "f", "Filter output based on conditions provided (key=value)")
	return cmd
}

// nodeListFormat returns the parsed --format of node ls.
func nodeListFormat(format string) (*templateFormat, error) {
	if t := strings.TrimSpace(format); t == "" || t == "table" {
		format = defaultNodeTableFormat
	}
	return parseFormat(format)
}

func runNodeLs(cmd *cobra.Command, g *globalOptions, o *nodeLsOptions) error {
	tmpl, err := nodeListFormat(o.format)
	if err != nil {
		return err
	}
	return g.withClient(func(c *client) error {
		ctx := cmd.Context()
		resp, err := call(ctx, c, c.control.ListNodes, &shoalpb.ListNodesRequest{Filters: o.filters.proto()})
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if o.quiet {
			for _, n := range resp.GetNodes() {
				fmt.Fprintln(out, n.GetId())
			}
			return nil
		}
		self, err := c.selfID(ctx)
		if err != nil {
			return err
		}
		return renderNodeList(out, tmpl, resp.GetNodes(), self)
	})
}

func renderNodeList(w io.Writer, tmpl *templateFormat, nodes []*shoalpb.Node, selfID string) error {
	items := make([]any, 0, len(nodes))
	for _, n := range nodes {
		items = append(items, newNodeRow(n, selfID))
	}
	return tmpl.render(w, headerFor(nodeRowFields, nodeRowTitles), items)
}

type nodeUpdateOptions struct {
	availability *enumValue
	role         *enumValue
	labelAdd     labelAddValue
	labelRm      labelRmValue
}

func newNodeUpdateCmd(g *globalOptions) *cobra.Command {
	o := &nodeUpdateOptions{
		availability: newEnum("availability", "", "active", "pause", "drain"),
		role:         newEnum("role", "", "worker", "manager"),
	}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] NODE",
		Short: "Update a node",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := nodeUpdateRequest(cmd, o, args[0])
			if req == nil {
				return usageErrorf(cmd, "at least one flag must be set")
			}
			return g.withClient(func(c *client) error {
				if _, err := call(cmd.Context(), c, c.control.UpdateNode, req); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), args[0])
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Var(o.availability, "availability", `Availability of the node ("active", "pause", "drain")`)
	f.Var(o.role, "role", `Role of the node ("worker", "manager")`)
	f.Var(&o.labelAdd, "label-add", "Add or update a node label (key=value)")
	f.Var(&o.labelRm, "label-rm", "Remove a node label if exists")
	return cmd
}

// nodeUpdateRequest carries only what was given on the command line, or is
// nil when nothing was.
func nodeUpdateRequest(cmd *cobra.Command, o *nodeUpdateOptions, ref string) *shoalpb.UpdateNodeRequest {
	f := cmd.Flags()
	req := &shoalpb.UpdateNodeRequest{NodeRef: ref}
	set := false
	if f.Changed("availability") {
		req.SetAvailability, req.Availability, set = true, availabilities[o.availability.value], true
	}
	if f.Changed("role") {
		req.SetRole, req.Role, set = true, roles[o.role.value], true
	}
	if len(o.labelAdd.labels) > 0 {
		req.LabelsAdd, set = o.labelAdd.labels, true
	}
	if len(o.labelRm.keys) > 0 {
		req.LabelsRm, set = o.labelRm.keys, true
	}
	if !set {
		return nil
	}
	return req
}

func newNodePromoteCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "promote NODE [NODE...]",
		Short: "Promote one or more nodes to manager in the swarm",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setRoles(cmd, g, args, shoalpb.NodeRole_NODE_ROLE_MANAGER)
		},
	}
}

func newNodeDemoteCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "demote NODE [NODE...]",
		Short: "Demote one or more nodes from manager in the swarm",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setRoles(cmd, g, args, shoalpb.NodeRole_NODE_ROLE_WORKER)
		},
	}
}

// setRoles promotes or demotes nodes one by one, stopping at the first
// error. A node that already has the role is left alone.
func setRoles(cmd *cobra.Command, g *globalOptions, refs []string, role shoalpb.NodeRole) error {
	return g.withClient(func(c *client) error {
		ctx := cmd.Context()
		out := cmd.OutOrStdout()
		for _, ref := range refs {
			cur, err := call(ctx, c, c.control.GetNode, &shoalpb.GetNodeRequest{NodeRef: ref})
			if err != nil {
				return err
			}
			if cur.GetNode().GetSpec().GetDesiredRole() == role {
				fmt.Fprintf(out, "Node %s is already a %s.\n", ref, roleWord(role))
				continue
			}
			req := &shoalpb.UpdateNodeRequest{NodeRef: cur.GetNode().GetId(), SetRole: true, Role: role}
			if _, err := call(ctx, c, c.control.UpdateNode, req); err != nil {
				return err
			}
			if role == shoalpb.NodeRole_NODE_ROLE_MANAGER {
				fmt.Fprintf(out, "Node %s promoted to a manager in the swarm.\n", ref)
			} else {
				fmt.Fprintf(out, "Manager %s demoted in the swarm.\n", ref)
			}
		}
		return nil
	})
}

type nodeRmOptions struct {
	force bool
}

func newNodeRmCmd(g *globalOptions) *cobra.Command {
	o := &nodeRmOptions{}
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] NODE [NODE...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more nodes from the swarm",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client) error {
				var errs []string
				for _, ref := range args {
					_, err := call(cmd.Context(), c, c.control.RemoveNode, &shoalpb.RemoveNodeRequest{NodeRef: ref, Force: o.force})
					var de *daemonError
					if err != nil && !errors.As(err, &de) {
						return err // the daemon is out of reach: no use going on
					}
					if err != nil {
						errs = append(errs, err.Error())
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), ref)
				}
				if len(errs) > 0 {
					return errors.New(strings.Join(errs, "\n"))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&o.force, "force", "f", false, "Force remove a node from the swarm")
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// nodeJSON is a node as `shoal node inspect` shows it: the shape of
// docker's swarm node, so templates written for docker keep working.
type nodeJSON struct {
	ID            string
	Version       objectVersion
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Spec          nodeSpecJSON
	Description   nodeDescriptionJSON
	Status        nodeStatusJSON
	ManagerStatus *managerStatusJSON `json:",omitempty"`
}

type objectVersion struct {
	Index uint64
}

type nodeSpecJSON struct {
	Labels       map[string]string
	Role         string
	Availability string
}

type nodeDescriptionJSON struct {
	Hostname  string
	Platform  platformJSON
	Resources resourcesJSON
	Engine    engineJSON
}

type platformJSON struct {
	Architecture string
	OS           string
}

type resourcesJSON struct {
	NanoCPUs    int64
	MemoryBytes int64
}

type engineJSON struct {
	EngineVersion string
	Labels        map[string]string `json:",omitempty"`
}

type nodeStatusJSON struct {
	State   string
	Message string `json:",omitempty"`
	Addr    string
}

type managerStatusJSON struct {
	Leader       bool `json:",omitempty"`
	Reachability string
	Addr         string
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func newNodeJSON(n *shoalpb.Node) nodeJSON {
	labels := n.GetSpec().GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	d := n.GetDescription()
	v := nodeJSON{
		ID:        n.GetId(),
		Version:   objectVersion{Index: n.GetMeta().GetVersion()},
		CreatedAt: unixNano(n.GetMeta().GetCreatedAt()),
		UpdatedAt: unixNano(n.GetMeta().GetUpdatedAt()),
		Spec: nodeSpecJSON{
			Labels:       labels,
			Role:         roleWord(n.GetSpec().GetDesiredRole()),
			Availability: availabilityWord(n.GetSpec().GetAvailability()),
		},
		Description: nodeDescriptionJSON{
			Hostname:  d.GetHostname(),
			Platform:  platformJSON{Architecture: d.GetPlatform().GetArchitecture(), OS: d.GetPlatform().GetOs()},
			Resources: resourcesJSON{NanoCPUs: d.GetResources().GetNanoCpus(), MemoryBytes: d.GetResources().GetMemoryBytes()},
			Engine:    engineJSON{EngineVersion: d.GetEngineVersion(), Labels: d.GetEngineLabels()},
		},
		Status: nodeStatusJSON{
			State:   stateWord(n.GetStatus().GetState()),
			Message: n.GetStatus().GetMessage(),
			Addr:    n.GetStatus().GetAddr(),
		},
	}
	if ms := n.GetManagerStatus(); ms != nil {
		v.ManagerStatus = &managerStatusJSON{
			Leader:       ms.GetLeader(),
			Reachability: reachabilityWord(ms.GetReachability()),
			Addr:         ms.GetAddr(),
		}
	}
	return v
}

type nodeInspectOptions struct {
	pretty bool
	format string
}

func newNodeInspectCmd(g *globalOptions) *cobra.Command {
	o := &nodeInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] self|NODE [NODE...]",
		Short: "Display detailed information on one or more nodes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runNodeInspect(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.pretty, "pretty", false, "Print the information in a human friendly format")
	f.StringVarP(&o.format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func runNodeInspect(cmd *cobra.Command, g *globalOptions, o *nodeInspectOptions, refs []string) error {
	if o.pretty && o.format != "" {
		return usageErrorf(cmd, "--format is incompatible with human friendly format")
	}
	var tmpl *templateFormat
	if o.format != "" {
		var err error
		if tmpl, err = parseFormat(o.format); err != nil {
			return err
		}
	}
	return g.withClient(func(c *client) error {
		ctx := cmd.Context()
		selfID := ""
		if slices.Contains(refs, "self") {
			id, err := c.selfID(ctx)
			if err != nil {
				return err
			}
			selfID = id
		}
		var nodes []nodeJSON
		var errs []string
		for _, ref := range refs {
			r := ref
			if ref == "self" && selfID != "" {
				r = selfID
			}
			resp, err := call(ctx, c, c.control.GetNode, &shoalpb.GetNodeRequest{NodeRef: r})
			var de *daemonError
			switch {
			case err == nil:
				nodes = append(nodes, newNodeJSON(resp.GetNode()))
			case isNotFound(err):
				errs = append(errs, "Error: No such node: "+ref)
			case errors.As(err, &de):
				errs = append(errs, err.Error())
			default:
				return err
			}
		}
		if err := printNodes(cmd.OutOrStdout(), o, tmpl, nodes); err != nil {
			return err
		}
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "\n"))
		}
		return nil
	})
}

func printNodes(w io.Writer, o *nodeInspectOptions, tmpl *templateFormat, nodes []nodeJSON) error {
	switch {
	case o.pretty:
		for i, n := range nodes {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if err := printNodePretty(w, n); err != nil {
				return err
			}
		}
		return nil
	case tmpl != nil:
		for _, n := range nodes {
			if err := tmpl.execute(w, n); err != nil {
				return err
			}
		}
		return nil
	}
	if nodes == nil {
		nodes = []nodeJSON{}
	}
	return writeJSON(w, nodes)
}

// printNodePretty prints a node for people, as docker's --pretty does:
// "Label:" padded to a fixed column, then the value.
func printNodePretty(w io.Writer, n nodeJSON) error {
	var b strings.Builder
	kv := func(label string, value any) { fmt.Fprintf(&b, "%-24s%v\n", label+":", value) }
	line := func(s string) { b.WriteString(s + "\n") }
	kv("ID", n.ID)
	if len(n.Spec.Labels) > 0 {
		line("Labels:")
		for _, k := range sortedKeys(n.Spec.Labels) {
			if v := n.Spec.Labels[k]; v != "" {
				line(" - " + k + "=" + v)
			} else {
				line(" - " + k)
			}
		}
	}
	kv("Hostname", n.Description.Hostname)
	kv("Joined at", n.CreatedAt.Format("2006-01-02 15:04:05.999999999 -0700 MST"))
	line("Status:")
	kv(" State", capitalize(n.Status.State))
	if n.Status.Message != "" {
		kv(" Message", n.Status.Message)
	}
	kv(" Availability", capitalize(n.Spec.Availability))
	if n.Status.Addr != "" {
		kv(" Address", n.Status.Addr)
	}
	if ms := n.ManagerStatus; ms != nil {
		line("Manager Status:")
		kv(" Address", ms.Addr)
		kv(" Raft Status", capitalize(ms.Reachability))
		leader := "No"
		if ms.Leader {
			leader = "Yes"
		}
		kv(" Leader", leader)
	}
	line("Platform:")
	kv(" Operating System", n.Description.Platform.OS)
	kv(" Architecture", n.Description.Platform.Architecture)
	line("Resources:")
	kv(" CPUs", n.Description.Resources.NanoCPUs/1e9)
	kv(" Memory", binarySize(n.Description.Resources.MemoryBytes))
	if len(n.Description.Engine.Labels) > 0 {
		line("Engine Labels:")
		for _, k := range sortedKeys(n.Description.Engine.Labels) {
			line(" - " + k + "=" + n.Description.Engine.Labels[k])
		}
	}
	kv("Engine Version", n.Description.Engine.EngineVersion)
	_, err := io.WriteString(w, b.String())
	return err
}

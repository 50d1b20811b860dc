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

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// taskRow is one line of `service ps` and `node ps`; --format templates
// see its fields.
type taskRow struct {
	ID           string
	Name         string
	Image        string
	Node         string
	DesiredState string
	CurrentState string
	Error        string
	Ports        string
}

var taskRowFields = []string{"ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports"}

var taskRowTitles = map[string]string{"DesiredState": "DESIRED STATE", "CurrentState": "CURRENT STATE"}

const defaultTaskTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}"

// maxErrorLength is the width of the ERROR column unless --no-trunc.
const maxErrorLength = 30

func taskStateWord(s shoalpb.TaskState) string { return enumWord(s.String(), "TASK_STATE_") }

// taskBaseName is <service>.<slot> for replicated modes and
// <service>.<node ID> for global ones.
func taskBaseName(t *shoalpb.Task) string {
	svc := t.GetServiceName()
	if svc == "" {
		svc = t.GetServiceId()
	}
	if t.GetSlot() != 0 {
		return svc + "." + strconv.FormatUint(t.GetSlot(), 10)
	}
	return svc + "." + t.GetNodeId()
}

// sortTasksForDisplay orders tasks by service, slot (or node), newest
// first within a slot: the order in which older tasks of a slot can be
// shown under the current one.
func sortTasksForDisplay(tasks []*shoalpb.Task, nodeNames map[string]string) {
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		switch {
		case a.GetServiceName() != b.GetServiceName():
			return a.GetServiceName() < b.GetServiceName()
		case a.GetServiceId() != b.GetServiceId():
			return a.GetServiceId() < b.GetServiceId()
		case a.GetSlot() != b.GetSlot():
			return a.GetSlot() < b.GetSlot()
		case a.GetSlot() == 0 && a.GetNodeId() != b.GetNodeId():
			na, nb := nodeNames[a.GetNodeId()], nodeNames[b.GetNodeId()]
			if na != nb {
				return na < nb
			}
			return a.GetNodeId() < b.GetNodeId()
		}
		return a.GetMeta().GetCreatedAt() > b.GetMeta().GetCreatedAt()
	})
}

// taskRows makes the rows of a task table. Older tasks of a slot get
// docker's " \_ " prefix when indent is set (table output).
func taskRows(tasks []*shoalpb.Task, nodeNames map[string]string, noTrunc, indent bool, now time.Time) []any {
	tasks = append([]*shoalpb.Task(nil), tasks...)
	sortTasksForDisplay(tasks, nodeNames)
	rows := make([]any, 0, len(tasks))
	prev := ""
	for _, t := range tasks {
		base := taskBaseName(t)
		name := base
		if noTrunc {
			name += "." + t.GetId()
		}
		if indent && base == prev {
			name = ` \_ ` + name
		}
		prev = base
		r := taskRow{
			ID:           shortID(t.GetId()),
			Name:         name,
			Image:        shortImage(t.GetSpec().GetContainer().GetImage()),
			Node:         nodeNames[t.GetNodeId()],
			DesiredState: capitalize(taskStateWord(t.GetDesiredState())),
			CurrentState: currentState(t.GetStatus(), now),
			Error:        taskError(t.GetStatus().GetErr(), noTrunc),
		}
		if r.Node == "" {
			r.Node = t.GetNodeId()
		}
		if noTrunc {
			r.ID = t.GetId()
			r.Image = t.GetSpec().GetContainer().GetImage()
		}
		rows = append(rows, r)
	}
	return rows
}

// currentState words a task's observed state and its age: "Running 5
// seconds ago".
func currentState(st *shoalpb.TaskStatus, now time.Time) string {
	word := capitalize(taskStateWord(st.GetState()))
	if st.GetTimestamp() == 0 {
		return word
	}
	return word + " " + strings.ToLower(humanDuration(now.Sub(unixNano(st.GetTimestamp())))) + " ago"
}

func taskError(err string, noTrunc bool) string {
	if err == "" {
		return ""
	}
	if r := []rune(err); !noTrunc && len(r) > maxErrorLength {
		err = string(r[:maxErrorLength-1]) + "…"
	}
	return `"` + err + `"`
}

// taskListOptions are the options service ps and node ps share.
type taskListOptions struct {
	noTrunc bool
	quiet   bool
	format  string
	filters filterValue
}

func (o *taskListOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display task IDs")
	f.StringVar(&o.format, "format", "", "Format the output using the given Go template")
	f.VarP(&o.filters, "filter", "f", "Filter output based on conditions provided (desired-state, id, name, node, service)")
}

// renderTasks prints the tasks as the options ask.
func renderTasks(w io.Writer, o *taskListOptions, tmpl *templateFormat, resp *shoalpb.ListTasksResponse, now time.Time) error {
	rows := taskRows(resp.GetTasks(), resp.GetNodeNames(), o.noTrunc, tmpl.table, now)
	if o.quiet {
		for _, r := range rows {
			fmt.Fprintln(w, r.(taskRow).ID)
		}
		return nil
	}
	return tmpl.render(w, headerFor(taskRowFields, taskRowTitles), rows)
}

// listTasks lists the tasks matching the user's filters and the given
// key's values, and prints them.
func listTasks(cmd *cobra.Command, c *client, o *taskListOptions, tmpl *templateFormat, key string, values []string) error {
	filters := o.filters.proto()
	if filters == nil {
		filters = map[string]*shoalpb.FilterValues{}
	}
	filters[key] = &shoalpb.FilterValues{Values: values}
	resp, err := call(cmd.Context(), c, c.control.ListTasks, &shoalpb.ListTasksRequest{Filters: filters})
	if err != nil {
		return err
	}
	return renderTasks(cmd.OutOrStdout(), o, tmpl, resp, time.Now())
}

func newServicePsCmd(g *globalOptions) *cobra.Command {
	o := &taskListOptions{}
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] SERVICE [SERVICE...]",
		Short: "List the tasks of one or more services",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tmpl, err := listFormat(o.format, defaultTaskTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				var ids, missing []string
				for _, ref := range args {
					resp, err := call(cmd.Context(), c, c.control.GetService, &shoalpb.GetServiceRequest{ServiceRef: ref})
					switch {
					case isNotFound(err):
						missing = append(missing, "no such service: "+ref)
					case err != nil:
						return err
					default:
						ids = append(ids, resp.GetService().GetId())
					}
				}
				if len(ids) > 0 {
					if err := listTasks(cmd, c, o, tmpl, "service", ids); err != nil {
						return err
					}
				}
				if len(missing) > 0 {
					return errors.New(strings.Join(missing, "\n"))
				}
				return nil
			})
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newNodePsCmd(g *globalOptions) *cobra.Command {
	o := &taskListOptions{}
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [NODE...]",
		Short: "List tasks running on one or more nodes, defaults to current node",
		RunE: func(cmd *cobra.Command, args []string) error {
			tmpl, err := listFormat(o.format, defaultTaskTableFormat)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{"self"}
			}
			return g.withClient(func(c *client) error {
				var ids, missing []string
				for _, ref := range args {
					r := ref
					if ref == "self" {
						id, err := c.selfID(cmd.Context())
						if err != nil {
							return err
						}
						if id == "" {
							return errors.New("this node is not part of a swarm")
						}
						r = id
					}
					resp, err := call(cmd.Context(), c, c.control.GetNode, &shoalpb.GetNodeRequest{NodeRef: r})
					switch {
					case isNotFound(err):
						missing = append(missing, "Error: No such node: "+ref)
					case err != nil:
						return err
					default:
						ids = append(ids, resp.GetNode().GetId())
					}
				}
				if len(ids) > 0 {
					if err := listTasks(cmd, c, o, tmpl, "node", ids); err != nil {
						return err
					}
				}
				if len(missing) > 0 {
					return errors.New(strings.Join(missing, "\n"))
				}
				return nil
			})
		},
	}
	o.addFlags(cmd)
	return cmd
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

type serviceLogsOptions struct {
	follow     bool
	tail       string
	timestamps bool
	since      string
	noTaskIDs  bool
	noTrunc    bool
	raw        bool
}

func newServiceLogsCmd(g *globalOptions) *cobra.Command {
	o := &serviceLogsOptions{}
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] SERVICE|TASK",
		Short: "Fetch the logs of a service or task",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := o.subscription(time.Now())
			if err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			return g.withClient(func(c *client) error { return runServiceLogs(cmd, c, o, opts, args[0]) })
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	f.StringVarP(&o.tail, "tail", "n", "all", `Number of lines to show from the end of the logs, or "all"`)
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVar(&o.since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	f.BoolVar(&o.noTaskIDs, "no-task-ids", false, "Do not include task IDs in output")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	f.BoolVar(&o.raw, "raw", false, "Do not neatly format logs")
	return cmd
}

// subscription turns the flags into the options of the request.
func (o *serviceLogsOptions) subscription(now time.Time) (*shoalpb.LogSubscriptionOptions, error) {
	tail, err := parseTail(o.tail)
	if err != nil {
		return nil, err
	}
	since, err := parseSince(o.since, now)
	if err != nil {
		return nil, err
	}
	return &shoalpb.LogSubscriptionOptions{Follow: o.follow, Tail: tail, Timestamps: o.timestamps, SinceNs: since}, nil
}

// parseTail reads --tail: "all" (-1) or a count of lines.
func parseTail(s string) (int64, error) {
	if s == "" || strings.EqualFold(s, "all") {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid value %q for --tail: must be a non-negative number of lines or \"all\"", s)
	}
	return n, nil
}

// parseSince reads --since: an RFC 3339 time or date, Unix seconds
// (with an optional fraction), or a duration back from now. It returns
// Unix nanoseconds, 0 for no limit.
func parseSince(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("invalid value %q for --since: a duration back from now must not be negative", s)
		}
		return now.Add(-d).UnixNano(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixNano(), nil
		}
	}
	secs, frac, hasFrac := strings.Cut(s, ".")
	if sec, err := strconv.ParseInt(secs, 10, 64); err == nil && sec >= 0 {
		var nanos int64
		if hasFrac {
			if len(frac) == 0 || len(frac) > 9 {
				return 0, fmt.Errorf("invalid value %q for --since: bad fraction of a second", s)
			}
			n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid value %q for --since: bad fraction of a second", s)
			}
			nanos = n
		}
		return sec*1e9 + nanos, nil
	}
	return 0, fmt.Errorf("invalid value %q for --since: want an RFC 3339 time, Unix seconds or a duration such as 42m", s)
}

func runServiceLogs(cmd *cobra.Command, c *client, o *serviceLogsOptions, opts *shoalpb.LogSubscriptionOptions, ref string) error {
	ctx := cmd.Context()
	sel := &shoalpb.LogSelector{}
	resp, err := call(ctx, c, c.control.GetService, &shoalpb.GetServiceRequest{ServiceRef: ref})
	switch {
	case err == nil:
		sel.ServiceIds = []string{resp.GetService().GetId()}
	case isNotFound(err):
		sel.TaskIds = []string{ref} // not a service: try it as a task
	default:
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := shoalpb.NewLogsClient(c.conn).SubscribeLogs(sctx, &shoalpb.SubscribeLogsRequest{Selector: sel, Options: opts})
	if err != nil {
		return c.convert(err)
	}
	w := &logWriter{opts: o, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), lookup: taskLookup(ctx, c)}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if isNotFound(c.convert(err)) {
				return fmt.Errorf("Error: No such service or task: %s", ref)
			}
			return c.convert(err)
		}
		w.write(msg)
	}
}

// taskLabel is what a line is prefixed with: the task's name and node.
type taskLabel struct {
	base string // <service>.<slot>, or <service>.<node ID> for global tasks
	node string
}

// taskLookup finds the labels of tasks through ListTasks.
func taskLookup(ctx context.Context, c *client) func(ids []string) map[string]taskLabel {
	return func(ids []string) map[string]taskLabel {
		resp, err := call(ctx, c, c.control.ListTasks, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"id": {Values: ids}}})
		if err != nil {
			return nil
		}
		out := map[string]taskLabel{}
		for _, t := range resp.GetTasks() {
			node := resp.GetNodeNames()[t.GetNodeId()]
			if node == "" {
				node = t.GetNodeId()
			}
			out[t.GetId()] = taskLabel{base: taskBaseName(t), node: node}
		}
		return out
	}
}

// logWriter prints log messages as docker does: stdout lines to stdout,
// stderr lines to stderr, each prefixed with its task unless --raw.
type logWriter struct {
	opts           *serviceLogsOptions
	stdout, stderr io.Writer
	lookup         func(ids []string) map[string]taskLabel
	labels         map[string]taskLabel
}

func (w *logWriter) write(msg *shoalpb.SubscribeLogsMessage) {
	if !w.opts.raw {
		w.learn(msg.GetMessages())
	}
	for _, m := range msg.GetMessages() {
		out := w.stdout
		if m.GetStream() == shoalpb.LogStream_LOG_STREAM_STDERR {
			out = w.stderr
		}
		var b strings.Builder
		if w.opts.timestamps && m.GetTimestampNs() != 0 {
			b.WriteString(time.Unix(0, m.GetTimestampNs()).UTC().Format(time.RFC3339Nano))
			b.WriteByte(' ')
		}
		if !w.opts.raw {
			b.WriteString(w.prefix(m))
		}
		b.Write(m.GetData())
		b.WriteByte('\n')
		io.WriteString(out, b.String())
	}
	for _, note := range msg.GetWarnings() {
		fmt.Fprintf(w.stderr, "warning: %s\n", note)
	}
}

// learn looks up, in one call, the tasks not seen before.
func (w *logWriter) learn(msgs []*shoalpb.LogMessage) {
	if w.labels == nil {
		w.labels = map[string]taskLabel{}
	}
	var unknown []string
	seen := map[string]bool{}
	for _, m := range msgs {
		if _, ok := w.labels[m.GetTaskId()]; !ok && !seen[m.GetTaskId()] {
			seen[m.GetTaskId()] = true
			unknown = append(unknown, m.GetTaskId())
		}
	}
	if len(unknown) == 0 || w.lookup == nil {
		return
	}
	found := w.lookup(unknown)
	for _, m := range msgs {
		if _, ok := w.labels[m.GetTaskId()]; ok || !seen[m.GetTaskId()] {
			continue
		}
		l, ok := found[m.GetTaskId()]
		if !ok {
			// Gone from the store: name it after what the line says.
			l = taskLabel{base: m.GetServiceId(), node: m.GetNodeId()}
		}
		w.labels[m.GetTaskId()] = l
	}
}

// prefix is "<service>.<slot>.<task ID>@<node>    | ".
func (w *logWriter) prefix(m *shoalpb.LogMessage) string {
	l := w.labels[m.GetTaskId()]
	name := l.base
	if !w.opts.noTaskIDs {
		id := m.GetTaskId()
		if !w.opts.noTrunc {
			id = shortID(id)
		}
		name += "." + id
	}
	return name + "@" + l.node + "    | "
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Waiting for a service to converge after service create and scale, with
// docker-style progress: an overall line and a line per slot (per node for
// global services), redrawn in place on a terminal and printed as plain
// lines when they change otherwise.

// waitSettings say how the wait polls and when it ends.
type waitSettings struct {
	// poll is the time between two reads of the service and its tasks.
	poll time.Duration
	// stable is how long the service must stay converged.
	stable time.Duration
	// giveUp is how long the wait goes on while a task reports an error.
	giveUp time.Duration
	// now is the clock the durations are measured with.
	now func() time.Time
}

// serviceWait holds the settings the commands use; tests shorten them.
var serviceWait = waitSettings{
	poll:   250 * time.Millisecond,
	stable: time.Second,
	giveUp: 30 * time.Second,
	now:    time.Now,
}

// progressBarWidth is the number of '=' of a full bar.
const progressBarWidth = 50

// slotLine is one line per slot (or node) of the progress display.
type slotLine struct {
	label string
	state string
	// frac is how far the task has come towards running (0 to 1).
	frac float64
	// err replaces state and bar when the task reports an error.
	err string
}

type progressView struct {
	header []string
	slots  []slotLine
}

// convergence is what one poll found.
type convergence struct {
	name      string
	job       bool
	view      progressView
	converged bool
	// failure names a slot whose newest task reports an error.
	failure string
}

// progressOrder is the order tasks go through on their way to running.
var progressOrder = []shoalpb.TaskState{
	shoalpb.TaskState_TASK_STATE_NEW,
	shoalpb.TaskState_TASK_STATE_PENDING,
	shoalpb.TaskState_TASK_STATE_ASSIGNED,
	shoalpb.TaskState_TASK_STATE_ACCEPTED,
	shoalpb.TaskState_TASK_STATE_PREPARING,
	shoalpb.TaskState_TASK_STATE_READY,
	shoalpb.TaskState_TASK_STATE_STARTING,
	shoalpb.TaskState_TASK_STATE_RUNNING,
}

func stateFraction(s shoalpb.TaskState) float64 {
	if s == shoalpb.TaskState_TASK_STATE_COMPLETE {
		return 1
	}
	for i, o := range progressOrder {
		if o == s {
			return float64(i) / float64(len(progressOrder)-1)
		}
	}
	return 0
}

func progressBar(frac float64) string {
	n := int(frac*progressBarWidth + 0.5)
	return "[" + strings.Repeat("=", n) + ">" + strings.Repeat(" ", progressBarWidth-n) + "]"
}

// evaluate computes the progress display and whether the service has
// converged from one read of the service and its tasks.
func evaluate(svc *shoalpb.Service, st *shoalpb.ServiceStatus, tasks []*shoalpb.Task, nodeNames map[string]string) convergence {
	spec := svc.GetSpec()
	job := spec.GetReplicatedJob() != nil || spec.GetGlobalJob() != nil
	iteration := svc.GetJobStatus().GetJobIteration()
	newest := map[string]*shoalpb.Task{}
	for _, t := range tasks {
		if job && t.GetJobIteration() != iteration {
			continue
		}
		k := slotKey(t)
		if cur := newest[k]; cur == nil || t.GetMeta().GetCreatedAt() > cur.GetMeta().GetCreatedAt() {
			newest[k] = t
		}
	}
	c := convergence{name: spec.GetName(), job: job}
	running, desired, completed := st.GetRunningTasks(), st.GetDesiredTasks(), st.GetCompletedTasks()
	var keys, labels []string
	switch {
	case spec.GetReplicated() != nil || spec.GetReplicatedJob() != nil:
		n := spec.GetReplicated().GetReplicas()
		if j := spec.GetReplicatedJob(); j != nil {
			n = jobTotal(j)
		}
		for i := uint64(1); i <= n; i++ {
			keys = append(keys, fmt.Sprint(i))
			labels = append(labels, fmt.Sprintf("%d/%d", i, n))
		}
	default:
		for _, k := range sortedKeys(newest) {
			t := newest[k]
			if t.GetDesiredState() > shoalpb.TaskState_TASK_STATE_RUNNING {
				continue
			}
			keys = append(keys, k)
			label := nodeNames[k]
			if label == "" {
				label = shortID(k)
			}
			labels = append(labels, label)
		}
	}
	for i, k := range keys {
		line := slotLine{label: labels[i], state: "new"}
		if t := newest[k]; t != nil {
			state := t.GetStatus().GetState()
			line.state, line.frac = taskStateWord(state), stateFraction(state)
			if e := t.GetStatus().GetErr(); e != "" && state != shoalpb.TaskState_TASK_STATE_RUNNING && state != shoalpb.TaskState_TASK_STATE_COMPLETE {
				line.err = e
				if c.failure == "" {
					c.failure = taskBaseName(t) + ": " + e
				}
			}
		}
		c.view.slots = append(c.view.slots, line)
	}
	switch {
	case spec.GetReplicatedJob() != nil:
		total := jobTotal(spec.GetReplicatedJob())
		c.view.header = []string{
			fmt.Sprintf("job progress: %d out of %d complete", completed, total),
			fmt.Sprintf("active tasks: %d out of %d tasks", running, desired),
		}
		c.converged = completed >= total
	case spec.GetGlobalJob() != nil:
		c.view.header = []string{
			fmt.Sprintf("job progress: %d out of %d complete", completed, completed+desired),
			fmt.Sprintf("active tasks: %d out of %d tasks", running, desired),
		}
		c.converged = desired == 0 && running == 0
	default:
		c.view.header = []string{fmt.Sprintf("overall progress: %d out of %d tasks", running, desired)}
		c.converged = running == desired
	}
	return c
}

func slotKey(t *shoalpb.Task) string {
	if t.GetSlot() != 0 {
		return fmt.Sprint(t.GetSlot())
	}
	return t.GetNodeId()
}

// progressDisplay shows successive views and messages.
type progressDisplay interface {
	update(v progressView)
	message(s string)
}

type quietDisplay struct{}

func (quietDisplay) update(progressView) {}
func (quietDisplay) message(string)      {}

// plainDisplay prints a line each time the overall count or the state of
// a slot changes.
type plainDisplay struct {
	w    io.Writer
	last map[string]string
}

func (d *plainDisplay) update(v progressView) {
	if d.last == nil {
		d.last = map[string]string{}
	}
	emit := func(key, text string) {
		if d.last[key] != text {
			d.last[key] = text
			fmt.Fprintln(d.w, text)
		}
	}
	for i, h := range v.header {
		emit(fmt.Sprint("header ", i), h)
	}
	for _, s := range v.slots {
		text := s.label + ": " + s.state
		if s.err != "" {
			text = s.label + ": " + s.err
		}
		emit("slot "+s.label, text)
	}
}

func (d *plainDisplay) message(s string) { fmt.Fprintln(d.w, s) }

// ttyDisplay redraws its lines in place with ANSI cursor movements.
type ttyDisplay struct {
	w      io.Writer
	drawn  int
	view   progressView
	footer string
}

func (d *ttyDisplay) update(v progressView) {
	d.view = v
	d.draw()
}

func (d *ttyDisplay) message(s string) {
	d.footer = s
	d.draw()
}

func (d *ttyDisplay) draw() {
	var b strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.drawn)
	}
	b.WriteString("\r\x1b[J")
	lines := append([]string(nil), d.view.header...)
	for _, s := range d.view.slots {
		if s.err != "" {
			lines = append(lines, s.label+": "+s.err)
		} else {
			lines = append(lines, fmt.Sprintf("%s: %-10s%s", s.label, s.state, progressBar(s.frac)))
		}
	}
	if d.footer != "" {
		lines = append(lines, d.footer)
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	d.drawn = len(lines)
	io.WriteString(d.w, b.String())
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newProgressDisplay(w io.Writer, quiet bool) progressDisplay {
	switch {
	case quiet:
		return quietDisplay{}
	case isTerminal(w):
		return &ttyDisplay{w: w}
	}
	return &plainDisplay{w: w}
}

// waitForService polls the service until it has converged and stayed so
// for serviceWait.stable. It fails when a task reports an error and the
// service has not converged serviceWait.giveUp after the start, and it
// stops waiting, without an error, on an interrupt.
func waitForService(ctx context.Context, c *client, out io.Writer, serviceID string, quiet bool) error {
	return serviceWait.wait(ctx, c, newProgressDisplay(out, quiet), out, serviceID)
}

func (w waitSettings) wait(ctx context.Context, c *client, d progressDisplay, out io.Writer, serviceID string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()
	interrupted := func() error {
		fmt.Fprintf(out, "Operation continuing in background.\nUse `shoal service ps %s` to check progress.\n", serviceID)
		return nil
	}
	start := w.now()
	var stableSince time.Time
	for {
		conv, err := pollService(ctx, c, serviceID)
		if err != nil {
			if ctx.Err() != nil {
				return interrupted()
			}
			return err
		}
		d.update(conv.view)
		now := w.now()
		switch {
		case conv.converged:
			if stableSince.IsZero() {
				stableSince = now
				d.message("verify: Waiting " + strings.ToLower(humanDuration(w.stable)) + " to verify that tasks are stable...")
			}
			if now.Sub(stableSince) >= w.stable {
				if conv.job {
					d.message("verify: Job complete")
				} else {
					d.message("verify: Service converged")
				}
				return nil
			}
		default:
			if !stableSince.IsZero() {
				stableSince = time.Time{}
				d.message("verify: Service is no longer converged")
			}
			if conv.failure != "" && now.Sub(start) >= w.giveUp {
				return fmt.Errorf("service %s has not converged after %s: %s", conv.name, w.giveUp, conv.failure)
			}
		}
		select {
		case <-ctx.Done():
			return interrupted()
		case <-ticker.C:
		}
	}
}

// pollService reads the service, its task counts and its tasks.
func pollService(ctx context.Context, c *client, serviceID string) (convergence, error) {
	ls, err := call(ctx, c, c.control.ListServices, &shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"id": {Values: []string{serviceID}}}})
	if err != nil {
		return convergence{}, err
	}
	var svc *shoalpb.Service
	for _, s := range ls.GetServices() {
		if s.GetId() == serviceID {
			svc = s
		}
	}
	if svc == nil {
		return convergence{}, fmt.Errorf("service %s was removed while waiting for it to converge", serviceID)
	}
	ts, err := call(ctx, c, c.control.ListTasks, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{serviceID}}}})
	if err != nil {
		return convergence{}, err
	}
	return evaluate(svc, ls.GetStatuses()[serviceID], ts.GetTasks(), ts.GetNodeNames()), nil
}

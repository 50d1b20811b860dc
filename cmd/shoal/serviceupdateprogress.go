package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Waiting for a rolling update (or rollback) to finish, with docker-style
// progress: the overall count and one line per slot count the tasks of the
// service's current spec only, a "rollback: …" line says why a rollback
// started, and a paused update or rollback ends the wait with its message.

// updateInProgress reports whether svc's update status says an update or
// rollback is under way.
func updateInProgress(svc *shoalpb.Service) bool {
	switch svc.GetUpdateStatus().GetState() {
	case shoalpb.UpdateStatus_STATE_UPDATING, shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED:
		return true
	}
	return false
}

// waitAfterUpdate waits for what an update of svc started: the rolling
// update (or rollback) when one is under way, else plain convergence (a
// change of replicas, say). rollback says the user asked for a rollback.
func waitAfterUpdate(cmd *cobra.Command, c *client, svc *shoalpb.Service, quiet, rollback bool) error {
	out := cmd.OutOrStdout()
	if !updateInProgress(svc) {
		return waitForService(cmd.Context(), c, out, svc.GetId(), quiet)
	}
	return serviceWait.waitUpdate(cmd.Context(), c, newProgressDisplay(out, quiet), out, svc.GetId(), rollback)
}

// upToDate reports whether t was made from svc's current task spec.
func upToDate(svc *shoalpb.Service, t *shoalpb.Task) bool {
	return t.GetSpecVersion() == svc.GetSpecVersion() || proto.Equal(t.GetSpec(), svc.GetSpec().GetTask())
}

// updateProgress is one poll of an update.
type updateProgress struct {
	svc  *shoalpb.Service
	conv convergence
}

// evaluateUpdate computes the progress display of an update from one read
// of the service, its counts and its tasks: only tasks of the current spec
// count.
func evaluateUpdate(svc *shoalpb.Service, st *shoalpb.ServiceStatus, tasks []*shoalpb.Task, nodeNames map[string]string, rollingBack bool) convergence {
	var current []*shoalpb.Task
	var running uint64
	for _, t := range tasks {
		if !upToDate(svc, t) {
			continue
		}
		current = append(current, t)
		if t.GetDesiredState() == shoalpb.TaskState_TASK_STATE_RUNNING && t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_RUNNING {
			running++
		}
	}
	counts := &shoalpb.ServiceStatus{RunningTasks: running, DesiredTasks: st.GetDesiredTasks()}
	c := evaluate(svc, counts, current, nodeNames)
	if rollingBack {
		c.view.header = []string{fmt.Sprintf("overall progress: rolling back update: %d out of %d tasks", running, counts.DesiredTasks)}
	}
	return c
}

func (w waitSettings) waitUpdate(ctx context.Context, c *client, d progressDisplay, out io.Writer, serviceID string, rollback bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()
	var stableSince, finishedAt time.Time
	rollingBack, announced := false, false
	for {
		p, err := pollUpdate(ctx, c, serviceID, &rollingBack)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(out, "Operation continuing in background.\nUse `shoal service ps %s` to check progress.\n", serviceID)
				return nil
			}
			return err
		}
		st := p.svc.GetUpdateStatus()
		state := st.GetState()
		if rollingBack && !announced && st.GetMessage() != "" {
			announced = true
			d.message("rollback: " + st.GetMessage())
		}
		d.update(p.conv.view)
		now := w.now()
		switch state {
		case shoalpb.UpdateStatus_STATE_PAUSED:
			return fmt.Errorf("service update paused: %s", st.GetMessage())
		case shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED:
			return fmt.Errorf("service rollback paused: %s", st.GetMessage())
		case shoalpb.UpdateStatus_STATE_UPDATING, shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED:
			stableSince = time.Time{}
		default:
			// The update is over: wait for the service to stay converged.
			if finishedAt.IsZero() {
				finishedAt = now
			}
			if !p.conv.converged {
				if !stableSince.IsZero() {
					stableSince = time.Time{}
					d.message("verify: Service is no longer converged")
				}
				if p.conv.failure != "" && now.Sub(finishedAt) >= w.giveUp {
					return fmt.Errorf("service %s has not converged %s after its update finished: %s", p.conv.name, w.giveUp, p.conv.failure)
				}
				break
			}
			if stableSince.IsZero() {
				stableSince = now
				d.message("verify: Waiting " + strings.ToLower(humanDuration(w.stable)) + " to verify that tasks are stable...")
			}
			if now.Sub(stableSince) >= w.stable {
				d.message("verify: Service converged")
				if state == shoalpb.UpdateStatus_STATE_ROLLBACK_COMPLETED && !rollback {
					return fmt.Errorf("service rolled back: %s", st.GetMessage())
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "Operation continuing in background.\nUse `shoal service ps %s` to check progress.\n", serviceID)
			return nil
		case <-ticker.C:
		}
	}
}

// pollUpdate reads the service, its counts and its tasks. rollingBack is
// set once the service's status shows a rollback.
func pollUpdate(ctx context.Context, c *client, serviceID string, rollingBack *bool) (updateProgress, error) {
	ls, err := call(ctx, c, c.control.ListServices, &shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"id": {Values: []string{serviceID}}}})
	if err != nil {
		return updateProgress{}, err
	}
	var svc *shoalpb.Service
	for _, s := range ls.GetServices() {
		if s.GetId() == serviceID {
			svc = s
		}
	}
	if svc == nil {
		return updateProgress{}, fmt.Errorf("service %s was removed while waiting for its update", serviceID)
	}
	switch svc.GetUpdateStatus().GetState() {
	case shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED, shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED, shoalpb.UpdateStatus_STATE_ROLLBACK_COMPLETED:
		*rollingBack = true
	}
	ts, err := call(ctx, c, c.control.ListTasks, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{serviceID}}}})
	if err != nil {
		return updateProgress{}, err
	}
	conv := evaluateUpdate(svc, ls.GetStatuses()[serviceID], ts.GetTasks(), ts.GetNodeNames(), *rollingBack)
	return updateProgress{svc: svc, conv: conv}, nil
}

// updateStateSuffix marks the REPLICAS column of service ls while an
// update or rollback is under way or paused; a finished one shows nothing.
func updateStateSuffix(svc *shoalpb.Service) string {
	switch svc.GetUpdateStatus().GetState() {
	case shoalpb.UpdateStatus_STATE_UPDATING:
		return " (updating)"
	case shoalpb.UpdateStatus_STATE_PAUSED:
		return " (update paused)"
	case shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED:
		return " (rolling back)"
	case shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED:
		return " (rollback paused)"
	}
	return ""
}
